"""Binary protobuf files: ``.caffemodel`` weights and ``.binaryproto`` mean files."""

from __future__ import annotations

import math
import os

import numpy as np
from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError

from ..errors import ParseError
from ..proto import caffe_pb2

# protobuf refuses messages of 2 GiB and more; say so instead of failing obscurely.
MAX_MESSAGE_BYTES = 2**31 - 1


def _read_bytes(path: str, what: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > MAX_MESSAGE_BYTES:
            raise ParseError(f"{what} is {size} bytes; protobuf cannot read messages of 2 GiB or more",
                             path)
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ParseError(f"cannot read {what}: {error.strerror}", path) from None


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    if not head:
        return False
    printable = sum(32 <= byte < 127 or byte in (9, 10, 13) for byte in head)
    return printable == len(head) and any(key in head for key in (b"layer", b"name", b"input"))


def read_binary_message(path: str, message, what: str):
    """Parse a binary protobuf file into ``message``; one clear error for anything else."""
    data = _read_bytes(path, what)
    if not data:
        raise ParseError(f"{what} is empty", path)
    if _looks_like_text(data):
        raise ParseError(f"this is a text file (a prototxt?), not a binary {what}", path)
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise ParseError(f"not a valid binary {what} (truncated or corrupt: {error})", path) from None
    return message


def slow_protobuf_warning() -> str | None:
    """A warning when protobuf runs in pure Python: about 100x slower on large caffemodels."""
    if api_implementation.Type() == "python":
        return ("protobuf is running its pure-Python backend, which reads large caffemodels about "
                "100 times slower; install protobuf >= 5 with its default upb backend (and unset "
                "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION)")
    return None


def read_caffemodel(path: str) -> caffe_pb2.NetParameter:
    net = read_binary_message(path, caffe_pb2.NetParameter(), "caffemodel")
    if not net.layer and not net.layers:
        raise ParseError("caffemodel holds no layers (not a Caffe weights file?)", path)
    return net


def blob_shape(blob) -> tuple[int, ...]:
    """A BlobProto's shape: ``shape {dim}`` or, in old files, num/channels/height/width."""
    if blob.HasField("num") or blob.HasField("channels") or blob.HasField("height") \
            or blob.HasField("width"):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(blob.shape.dim)


def blob_to_array(blob, where: str) -> np.ndarray:
    """A BlobProto as a float32 array of its declared shape (Caffe computes in float)."""
    shape = blob_shape(blob)
    if any(dim < 0 for dim in shape):
        raise ParseError(f"{where}: negative blob dimension in {shape}")
    count = math.prod(shape)
    values = blob.double_data if len(blob.double_data) else blob.data
    if len(values) != count:
        raise ParseError(f"{where}: blob shape {shape} needs {count} values, the file has {len(values)}")
    return np.array(values, dtype=np.float32).reshape(shape)


def read_mean_file(path: str) -> np.ndarray:
    """A ``mean.binaryproto`` as a float32 array, usually of shape (1, C, H, W)."""
    blob = read_binary_message(path, caffe_pb2.BlobProto(), "binaryproto")
    return blob_to_array(blob, path)
