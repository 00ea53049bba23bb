"""The .tflite file as caffe2keras writes it: the converter's model (a ``ModelT``) with

* large constants streamed into the file one at a time, so the file never exists twice in
  memory: the kernels that went around the converter as markers (``litert_weights``) and
  any large buffer the converter wrote. Up to 2 GB they are ordinary flatbuffer vectors
  placed after the tables (any TensorFlow Lite runtime reads the file); past it, buffers
  after the flatbuffer found by ``Buffer.offset`` (LiteRT, TensorFlow Lite 2.15 on);
* a metadata entry ``caffe2keras_io``: the canonical input and output names in the Keras
  model's order (a signature lists its keys sorted; LiteRT's own output order is another).
"""

from __future__ import annotations

import json
import math
import mmap

import numpy as np

IO_METADATA = "caffe2keras_io"
LARGE_BYTES = 1 << 20  # buffers from this size on are streamed to the file, not packed
FLATBUFFER_LIMIT = (1 << 31) - 1  # what a flatbuffer's verifier accepts
_ALIGN = 64
_LOCATION = ("buffer_location", b"outside flatbuffers")  # as the converter records it


def write_model_file(tree, path: str, inputs: list[str], outputs: list[str],
                     placed=(), variables=(), scales=None) -> None:
    """Write ``tree`` to ``path``; ``placed`` markers (``litert_weights.Placed``) of
    ``variables`` become constants holding the variables' data, times ``scales[variable
    index]`` where given (a folded normalisation, ``litert_norms``)."""
    from ai_edge_litert import schema_py_generated as schema
    from .litert_weights import laid_out_writer

    large = []  # (buffer index, size, write(handle)): streamed after the flatbuffer's tables
    for item in placed:
        tree.buffers.append(schema.BufferT())
        tree.subgraphs[item.subgraph].tensors[item.tensor].buffer = len(tree.buffers) - 1
        large.append((len(tree.buffers) - 1, math.prod(item.shape) * 4,
                      laid_out_writer(variables[item.variable], item.perm,
                                      (scales or {}).get(item.variable))))
    for g, subgraph in enumerate(tree.subgraphs):
        fills = {item.fill for item in placed if item.subgraph == g and item.fill is not None}
        subgraph.operators = [op for o, op in enumerate(subgraph.operators) if o not in fills]
    for index, buffer in enumerate(tree.buffers):
        if buffer.data is not None and len(buffer.data) >= LARGE_BYTES:
            data, buffer.data = buffer.data, None
            large.append((index, len(data), lambda handle, data=data: handle.write(data)))
    _add_metadata(tree, schema, IO_METADATA,
                  json.dumps({"inputs": inputs, "outputs": outputs}).encode("utf-8"))
    if sum(size + _ALIGN for _, size, _ in large) < FLATBUFFER_LIMIT - len(_pack(tree)):
        _write_with_vectors_after_tables(tree, large, path, schema)
    else:
        _add_metadata(tree, schema, *_LOCATION)
        _write_with_buffers_outside(tree, large, path)


def _write_with_vectors_after_tables(tree, large, path: str, schema) -> None:
    """A plain flatbuffer, as every LiteRT and TensorFlow Lite runtime reads it: each large
    ``Buffer.data`` vector placed after the tables and written there from its source.

    A flatbuffer's vector is referenced by an unsigned offset from the referencing field,
    forwards, so a vector may sit anywhere after its table. The tables are packed with a
    one-byte stand-in vector per large buffer; each stand-in's field is then pointed at the
    real vector appended after the tables."""
    import struct

    for index, _, _ in large:
        tree.buffers[index].data = np.zeros(1, np.uint8)
    head = bytearray(_pack(tree))
    model = schema.Model.GetRootAs(head, 0)
    position, plan = len(head), []
    for index, size, write in large:
        table = model.Buffers(index)._tab
        field = table.Pos + table.Offset(4)  # Buffer.data: the table's first field
        start = _aligned(position + 4)  # the vector's length comes just before its data
        struct.pack_into("<I", head, field, start - 4 - field)
        plan.append((start, size, write))
        position = start + size
    with open(path, "wb") as handle:
        handle.write(head)
        for start, size, write in plan:
            handle.write(b"\0" * (start - 4 - handle.tell()) + struct.pack("<I", size))
            write(handle)
            _check_written(handle, start, size)


def _write_with_buffers_outside(tree, large, path: str) -> None:
    """Past 2 GB: the large buffers after the flatbuffer, found by ``Buffer.offset`` (from
    the file's start) as the converter's own large-model mode writes them (LiteRT and
    TensorFlow Lite 2.15 on)."""
    for index, size, _ in large:  # a non-default offset, so that packing writes the field
        tree.buffers[index].offset, tree.buffers[index].size = 1, size
    sizing = _pack(tree)
    position = _aligned(len(sizing))
    for index, size, _ in large:
        tree.buffers[index].offset = position
        position = _aligned(position + size)
    head = _pack(tree)
    if len(head) != len(sizing):  # offsets are fixed-size fields: only their values change
        raise RuntimeError("the flatbuffer changed size when its buffer offsets were set")
    with open(path, "wb") as handle:
        handle.write(head)
        for index, size, write in large:
            handle.write(b"\0" * (tree.buffers[index].offset - handle.tell()))
            write(handle)
            _check_written(handle, tree.buffers[index].offset, size)


def _check_written(handle, start: int, size: int) -> None:
    if handle.tell() != start + size:
        raise RuntimeError(f"wrote {handle.tell() - start} bytes of a {size}-byte buffer")


def read_io_names(path: str) -> dict | None:
    """The ``caffe2keras_io`` metadata of the file at ``path``, or None."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        content = _metadata_content(view, IO_METADATA)  # a copy: the map closes after this
    return None if content is None else json.loads(content.decode("utf-8"))


def _metadata_content(view, name: str) -> bytes | None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(view, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == name.encode():
            buffer = model.Buffers(entry.Buffer())
            start = buffer.DataAsNumpy() if buffer.DataLength() else None
            return None if start is None else start.tobytes()
    return None


def _add_metadata(tree, schema, name: str, content: bytes) -> None:
    if any(entry.name in (name, name.encode()) for entry in tree.metadata or []):
        return
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(content, np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(tree.buffers) - 1
    tree.metadata = (tree.metadata or []) + [entry]


def _pack(tree) -> bytes:
    import flatbuffers
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _aligned(position: int) -> int:
    return -(-position // _ALIGN) * _ALIGN
