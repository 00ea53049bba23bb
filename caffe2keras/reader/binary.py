"""Binary protobuf files: ``.caffemodel`` weights and ``.binaryproto`` mean files.

A caffemodel is memory-mapped and its wire format walked (``wire.split_payloads``):
protobuf parses everything but the blob values, and each blob becomes a numpy view of
the file's bytes when a layer asks for it. Pages are read from disk only when a value is
used, so the weights of layers nobody asks for are never read, and the pages of a blob
are handed back to the system once the last array viewing them is gone.
"""

from __future__ import annotations

import math
import mmap
import os
import stat
import sys
import weakref
from dataclasses import dataclass

import numpy as np
from google.protobuf import unknown_fields
from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError

from ..errors import ParseError
from ..proto import caffe_pb2
from .wire import PAYLOAD_FIELD, Payload, Run, WireError, split_payloads

# protobuf refuses messages of 2 GiB and more; say so instead of failing obscurely.
MAX_MESSAGE_BYTES = 2**31 - 1


def _read_bytes(path: str, what: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > MAX_MESSAGE_BYTES:
            raise ParseError(f"{what} is {size} bytes; protobuf cannot read messages of 2 GiB or more",
                             path)
        with open(path, "rb") as handle:
            return _read_bounded(handle, path, what)
    except OSError as error:
        raise ParseError(f"cannot read {what}: {error.strerror}", path) from None


def _read_bounded(handle, path: str, what: str) -> bytearray:
    """Read a whole file, refusing devices (a link to /dev/zero would never end) and reading a
    pipe only up to what protobuf could take."""
    mode = os.fstat(handle.fileno()).st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise ParseError(f"{what} is a device, not a file", path)
    data = bytearray(handle.read(MAX_MESSAGE_BYTES + 1))
    if len(data) > MAX_MESSAGE_BYTES:
        raise ParseError(f"{what} is more than 2 GiB; protobuf cannot read messages of 2 GiB or more",
                         path)
    return data


def _looks_like_text(data) -> bool:
    head = bytes(data[:512])
    if not head:
        return False
    printable = sum(32 <= byte < 127 or byte in (9, 10, 13) for byte in head)
    return printable == len(head) and any(key in head for key in (b"layer", b"name", b"input"))


def _parse(data, message, path: str, what: str):
    if not len(data):
        raise ParseError(f"{what} is empty", path)
    if _looks_like_text(data):
        raise ParseError(f"this is a text file (a prototxt?), not a binary {what}", path)
    if len(data) > MAX_MESSAGE_BYTES:
        raise ParseError(f"{what} is {len(data)} bytes; protobuf cannot read messages of 2 GiB or "
                         "more", path)
    try:
        message.ParseFromString(data if isinstance(data, bytes) else memoryview(data))
    except (DecodeError, RuntimeError, ValueError) as error:
        raise ParseError(f"not a valid binary {what} (truncated or corrupt: {error})",
                         path) from None
    return message


def read_binary_message(path: str, message, what: str):
    """Parse a binary protobuf file into ``message``; one clear error for anything else."""
    return _parse(_read_bytes(path, what), message, path, what)


def slow_protobuf_warning() -> str | None:
    """A warning when protobuf runs in pure Python: many times slower on prototxts and on the
    caffemodels the fast reader hands to protobuf."""
    if api_implementation.Type() == "python":
        return ("protobuf is running its pure-Python backend, which reads large caffemodels about "
                "100 times slower; install protobuf >= 5 with its default upb backend (and unset "
                "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION)")
    return None


@dataclass
class Caffemodel:
    """A caffemodel's NetParameter and a way to its blobs' values.

    Read by the fast path, ``net``'s blobs hold no values, only a reference into
    ``payloads`` (places in ``buffer``, the mapped file). Read by protobuf (``fallback``
    says why), the blobs hold their values as usual. ``array`` serves both.
    """

    path: str
    net: caffe_pb2.NetParameter
    buffer: object = None  # the mmap (or bytes) the payloads point into
    payloads: list[Payload] | None = None
    fallback: str | None = None

    def array(self, blob, where: str) -> np.ndarray:
        """A BlobProto as a float32 array of its declared shape (Caffe computes in float)."""
        index = _payload_index(blob) if self.payloads is not None else None
        if index is None:
            return blob_to_array(blob, where)
        payload = self.payloads[index]
        shape = _checked_shape(blob, where)
        count = math.prod(shape)
        runs = payload.doubles if Payload.total(payload.doubles) else payload.floats
        if Payload.total(runs) != count:
            raise ParseError(f"{where}: blob shape {shape} needs {count} values, the file has "
                             f"{Payload.total(runs)}")
        return _values(self.buffer, runs, count).reshape(shape)


def read_caffemodel(path: str) -> Caffemodel:
    """Map ``path`` and parse it, blob values aside; protobuf reads what the walk cannot."""
    buffer = _map(path)
    if not len(buffer):
        raise ParseError("caffemodel is empty", path)
    if _looks_like_text(buffer):
        raise ParseError("this is a text file (a prototxt?), not a binary caffemodel", path)
    try:
        skeleton, payloads = split_payloads(buffer)
        net = caffe_pb2.NetParameter.FromString(skeleton)
        model = Caffemodel(path, net, buffer, payloads)
    except (WireError, DecodeError, RuntimeError, ValueError) as error:
        # Malformed (protobuf says how) or unusual (protobuf reads it, more slowly).
        net = _parse(buffer, caffe_pb2.NetParameter(), path, "caffemodel")
        model = Caffemodel(path, net, fallback=str(error))
    if not model.net.layer and not model.net.layers:
        raise ParseError("caffemodel holds no layers (not a Caffe weights file?)", path)
    return model


def _map(path: str):
    """The file's bytes, memory-mapped copy-on-write (arrays over it stay writable and the
    file unchanged); read into memory where mapping is impossible (pipes, empty files)."""
    try:
        with open(path, "rb") as handle:
            try:
                return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
            except (OSError, ValueError):
                return _read_bounded(handle, path, "caffemodel")
    except OSError as error:
        raise ParseError(f"cannot read caffemodel: {error.strerror}", path) from None


def _payload_index(blob) -> int | None:
    for field in unknown_fields.UnknownFieldSet(blob):
        if field.field_number == PAYLOAD_FIELD:
            return field.data
    return None


def _values(buffer, runs: list[Run], count: int) -> np.ndarray:
    """The values of ``runs`` as one float32 array: a view of the file when they are a single
    packed float run, else a new array."""
    single = len(runs) == 1 and runs[0].stride == 4 and runs[0].dtype == "<f4"
    if single and sys.byteorder == "little":
        return _mapped_view(buffer, runs[0].offset, count)
    out = np.empty(count, np.float32)
    at = 0
    for run in runs:
        out[at:at + run.count] = np.ndarray((run.count,), run.dtype, buffer, run.offset,
                                            (run.stride,))
        at += run.count
    return out


def _mapped_view(buffer, offset: int, count: int) -> np.ndarray:
    array = np.ndarray((count,), np.float32, buffer, offset)
    if isinstance(buffer, mmap.mmap) and hasattr(buffer, "madvise") and count:
        # Every view of this blob has `array` as its base, so this runs when the last goes.
        weakref.finalize(array, _hand_back_pages, buffer, offset, array.nbytes).atexit = False
    return array


def _hand_back_pages(buffer: mmap.mmap, offset: int, size: int) -> None:
    """Drop the pages that lie wholly inside [offset, offset + size) from this process.
    Nothing is lost: unmodified pages come back from the file if touched again, and no
    other blob's bytes share these pages."""
    first = -(-offset // mmap.PAGESIZE) * mmap.PAGESIZE
    last = (offset + size) // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first and not buffer.closed:
        buffer.madvise(mmap.MADV_DONTNEED, first, last - first)


def blob_shape(blob) -> tuple[int, ...]:
    """A BlobProto's shape: ``shape {dim}`` or, in old files, num/channels/height/width."""
    if blob.HasField("num") or blob.HasField("channels") or blob.HasField("height") \
            or blob.HasField("width"):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(blob.shape.dim)


def _checked_shape(blob, where: str) -> tuple[int, ...]:
    shape = blob_shape(blob)
    if any(dim < 0 for dim in shape):
        raise ParseError(f"{where}: negative blob dimension in {shape}")
    return shape


def blob_to_array(blob, where: str) -> np.ndarray:
    """A BlobProto that holds its values as a float32 array of its declared shape."""
    shape = _checked_shape(blob, where)
    count = math.prod(shape)
    values = blob.double_data if len(blob.double_data) else blob.data
    if len(values) != count:
        raise ParseError(f"{where}: blob shape {shape} needs {count} values, the file has {len(values)}")
    return np.array(values, dtype=np.float32).reshape(shape)


def read_mean_file(path: str) -> np.ndarray:
    """A ``mean.binaryproto`` as a float32 array, usually of shape (1, C, H, W)."""
    blob = read_binary_message(path, caffe_pb2.BlobProto(), "binaryproto")
    return blob_to_array(blob, path)
