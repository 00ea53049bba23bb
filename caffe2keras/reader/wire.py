"""The protobuf wire format, as far as caffemodels need it.

Nearly every byte of a caffemodel is a packed float payload: the ``data`` field of a
BlobProto. ``split_payloads`` walks the NetParameter's wire format down to its blobs and
returns two things: the same message with each blob's value fields (``data``,
``double_data``, ``diff``, ``double_diff``) cut out and a reference left in their place,
and the places in the file where the cut values lie. protobuf then parses the small
remainder as usual, so every other field (names, types, shapes, the V0/V1 layouts)
means what it always did, and the values are read straight from the file's bytes.

The reference is an unknown field (``PAYLOAD_FIELD``) holding an index into the list of
payloads; protobuf keeps unknown fields through ``CopyFrom`` and ``extend``, so it
travels with its blob through ``upgrade.upgrade_net``.

Anything the walk does not expect (a malformed or truncated message, groups, a value
field of the wrong wire type) raises ``WireError``; the caller then hands the whole file
to protobuf, which reads what it can and reports the rest.

The writer half (``write_caffemodel``) streams arrays to a caffemodel without building
the message in memory; the benchmarks and tests use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..proto import caffe_pb2

VARINT, I64, LEN, START_GROUP, END_GROUP, I32 = 0, 1, 2, 3, 4, 5

# Field number of the reference left in a blob in place of its values. Not in caffe.proto.
PAYLOAD_FIELD = 0x1CAFE


def _number(message, field: str) -> int:
    return message.DESCRIPTOR.fields_by_name[field].number


_BLOB_DATA = _number(caffe_pb2.BlobProto, "data")
_BLOB_DOUBLE_DATA = _number(caffe_pb2.BlobProto, "double_data")
_BLOB_DROPPED = frozenset({_number(caffe_pb2.BlobProto, "diff"),
                           _number(caffe_pb2.BlobProto, "double_diff"), PAYLOAD_FIELD})

# Where BlobProtos sit: message -> {field number: the message type of that field}.
_BLOB = "BlobProto"
_NESTING = {
    "NetParameter": {_number(caffe_pb2.NetParameter, "layer"): "LayerParameter",
                     _number(caffe_pb2.NetParameter, "layers"): "V1LayerParameter"},
    "LayerParameter": {_number(caffe_pb2.LayerParameter, "blobs"): _BLOB},
    "V1LayerParameter": {_number(caffe_pb2.V1LayerParameter, "blobs"): _BLOB,
                         _number(caffe_pb2.V1LayerParameter, "layer"): "V0LayerParameter"},
    "V0LayerParameter": {_number(caffe_pb2.V0LayerParameter, "blobs"): _BLOB},
}


class WireError(ValueError):
    """The bytes are not a message this walk understands (protobuf may still)."""


@dataclass(frozen=True)
class Run:
    """``count`` little-endian values of ``dtype`` ('<f4' or '<f8') at ``offset``, one every
    ``stride`` bytes (the item size when packed; tag + item when written unpacked)."""
    offset: int
    count: int
    stride: int
    dtype: str


@dataclass
class Payload:
    """Where one blob's values are: its ``data`` and ``double_data`` runs, in file order."""
    floats: list[Run]
    doubles: list[Run]

    @staticmethod
    def total(runs: list[Run]) -> int:
        return sum(run.count for run in runs)


def split_payloads(buffer) -> tuple[bytes, list[Payload]]:
    """A serialized NetParameter -> (the message without blob values, the values' places).

    ``buffer`` is anything ``memoryview`` accepts (bytes, an mmap); offsets refer to it.
    """
    view = memoryview(buffer).cast("B")
    payloads: list[Payload] = []
    skeleton = _rewrite(view, 0, len(view), "NetParameter", payloads)
    return skeleton, payloads


# ------------------------------------------------------------------ reading

def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def _next_field(buf, pos: int, end: int) -> tuple[int, int, int, int]:
    """The field at ``pos``: (number, wire type, where its value starts, where it ends)."""
    key, pos = _varint(buf, pos, end)
    number, wire_type = key >> 3, key & 7
    if number == 0:
        raise WireError("field number 0")
    start = pos
    if wire_type == VARINT:
        _, pos = _varint(buf, pos, end)
    elif wire_type == I64:
        pos += 8
    elif wire_type == I32:
        pos += 4
    elif wire_type == LEN:
        length, start = _varint(buf, pos, end)
        pos = start + length
    else:
        raise WireError(f"wire type {wire_type} (groups) in field {number}")
    if pos > end:
        raise WireError(f"field {number} runs past the end of its message")
    return number, wire_type, start, pos


def _rewrite(buf, pos: int, end: int, message: str, payloads: list[Payload]) -> bytes:
    if message == _BLOB:
        return _rewrite_blob(buf, pos, end, payloads)
    nested = _NESTING[message]
    pieces = []
    while pos < end:
        field_start = pos
        number, wire_type, start, pos = _next_field(buf, pos, end)
        child = nested.get(number)
        if child is not None and wire_type == LEN:
            pieces.append(length_delimited(number, _rewrite(buf, start, pos, child, payloads)))
        else:
            pieces.append(buf[field_start:pos])
    return b"".join(pieces)


def _rewrite_blob(buf, pos: int, end: int, payloads: list[Payload]) -> bytes:
    pieces, floats, doubles = [], [], []
    while pos < end:
        field_start = pos
        number, wire_type, start, pos = _next_field(buf, pos, end)
        if number == _BLOB_DATA or number == _BLOB_DOUBLE_DATA:
            runs, dtype = (floats, "<f4") if number == _BLOB_DATA else (doubles, "<f8")
            size = np.dtype(dtype).itemsize
            if wire_type == LEN:
                if (pos - start) % size:
                    raise WireError(f"packed field {number} of {pos - start} bytes")
                runs.append(Run(start, (pos - start) // size, size, dtype))
            elif wire_type == (I32 if size == 4 else I64):
                # Written unpacked: a tag before every value. Take the whole run at once.
                count, pos = _unpacked_run(buf, field_start, start, pos, end)
                runs.append(Run(start, count, start - field_start + size, dtype))
            else:
                raise WireError(f"blob field {number} with wire type {wire_type}")
        elif number not in _BLOB_DROPPED:
            pieces.append(buf[field_start:pos])
    pieces.append(encode_varint(PAYLOAD_FIELD << 3 | VARINT) + encode_varint(len(payloads)))
    payloads.append(Payload(floats, doubles))
    return b"".join(pieces)


def _unpacked_run(buf, field_start: int, value_start: int, pos: int, end: int) -> tuple[int, int]:
    """How many values of the same field follow one another from the one at ``field_start``,
    and where the run ends. The tags are compared in vectorised chunks."""
    tag = bytes(buf[field_start:value_start])
    stride = pos - field_start
    count, chunk = 1, 1 << 20
    while pos + stride <= end:
        n = min(chunk, (end - pos) // stride)
        records = np.frombuffer(buf, np.uint8, count=n * stride, offset=pos).reshape(n, stride)
        same = np.all(records[:, :len(tag)] == np.frombuffer(tag, np.uint8), axis=1)
        first_other = int(np.argmin(same)) if not same.all() else n
        count += first_other
        pos += first_other * stride
        if first_other < n:
            break
    return count, pos


# ------------------------------------------------------------------ writing

def encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # protobuf writes negative int32/int64 as ten-byte varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, payload) -> bytes:
    return encode_varint(number << 3 | LEN) + encode_varint(len(payload)) + bytes(payload)


def blob_header(shape: tuple[int, ...], legacy: bool = False, double: bool = False) -> bytes:
    """A BlobProto's bytes up to and including the tag and length of its packed values,
    which follow as raw little-endian ``float32`` (``float64`` with ``double``)."""
    fields = caffe_pb2.BlobProto()
    if legacy:
        if len(shape) > 4:
            raise ValueError(f"a legacy blob has at most 4 axes, got {shape}")
        fields.num, fields.channels, fields.height, fields.width = (1,) * (4 - len(shape)) + shape
    else:
        fields.shape.dim.extend(shape)
    count = int(np.prod(shape, dtype=np.int64))
    number, size = (_BLOB_DOUBLE_DATA, 8) if double else (_BLOB_DATA, 4)
    return (fields.SerializeToString() + encode_varint(number << 3 | LEN)
            + encode_varint(count * size))


def write_caffemodel(path: str, net: caffe_pb2.NetParameter,
                     blobs: dict[str, list[np.ndarray]], legacy: bool = False,
                     double: bool = False) -> None:
    """Write ``net`` (V2 ``layer`` or V1 ``layers``; its own blobs are kept) with the arrays
    of ``blobs`` appended to the layers of those names, streaming each array to the file."""
    if any(entry.HasField("layer") for entry in net.layers):
        raise ValueError("write_caffemodel writes V2 and V1 nets, not V0")
    header = caffe_pb2.NetParameter()
    header.CopyFrom(net)
    header.ClearField("layer")
    header.ClearField("layers")
    v1 = len(net.layers) > 0
    net_field = _number(caffe_pb2.NetParameter, "layers" if v1 else "layer")
    blob_field = _number(caffe_pb2.V1LayerParameter if v1 else caffe_pb2.LayerParameter, "blobs")
    dtype = "<f8" if double else "<f4"
    with open(path, "wb") as out:
        out.write(header.SerializeToString())
        for layer in (net.layers if v1 else net.layer):
            arrays = [np.ascontiguousarray(a, dtype=dtype) for a in blobs.get(layer.name, [])]
            heads = [blob_header(a.shape, legacy, double) for a in arrays]
            fields = [encode_varint(blob_field << 3 | LEN) + encode_varint(len(h) + a.nbytes)
                      for h, a in zip(heads, arrays)]
            own = layer.SerializeToString()
            size = len(own) + sum(len(f) + len(h) + a.nbytes
                                  for f, h, a in zip(fields, heads, arrays))
            out.write(encode_varint(net_field << 3 | LEN) + encode_varint(size) + own)
            for field, head, array in zip(fields, heads, arrays):
                out.write(field + head)
                out.write(memoryview(array).cast("B"))
