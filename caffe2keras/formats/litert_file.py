"""The .tflite file as caffe2keras writes it: the converter's model (a ``ModelT``) with

* large constants stored after the flatbuffer (LiteRT's ``Buffer.offset``, counted from the
  file's start, as the converter's own large-model mode writes them): the kernels that went
  around the converter as markers (``litert_weights``) and any large buffer the converter
  wrote inline, streamed one at a time, so the file never exists twice in memory;
* a metadata entry ``caffe2keras_io``: the canonical input and output names in the Keras
  model's order (a signature lists its keys sorted; LiteRT's own output order is another).
"""

from __future__ import annotations

import json
import math
import mmap

import numpy as np

IO_METADATA = "caffe2keras_io"
OUTSIDE_BYTES = 1 << 20  # buffers from this size on are stored after the flatbuffer
_ALIGN = 64
_LOCATION = ("buffer_location", b"outside flatbuffers")  # as the converter records it


def write_model_file(tree, path: str, inputs: list[str], outputs: list[str],
                     placed=(), variables=(), scales=None) -> None:
    """Write ``tree`` to ``path``; ``placed`` markers (``litert_weights.Placed``) of
    ``variables`` become constants holding the variables' data, times ``scales[variable
    index]`` where given (a folded normalisation, ``litert_norms``)."""
    from ai_edge_litert import schema_py_generated as schema
    from .litert_weights import laid_out_writer

    outside = []  # (buffer index, size, write(handle))
    for item in placed:
        buffer = schema.BufferT()
        tree.buffers.append(buffer)
        tree.subgraphs[item.subgraph].tensors[item.tensor].buffer = len(tree.buffers) - 1
        outside.append((len(tree.buffers) - 1, math.prod(item.shape) * 4,
                        laid_out_writer(variables[item.variable], item.perm,
                                        (scales or {}).get(item.variable))))
    for g, subgraph in enumerate(tree.subgraphs):
        fills = {item.fill for item in placed if item.subgraph == g and item.fill is not None}
        subgraph.operators = [op for o, op in enumerate(subgraph.operators) if o not in fills]
    for index, buffer in enumerate(tree.buffers):
        if buffer.data is not None and len(buffer.data) >= OUTSIDE_BYTES:
            data, buffer.data = buffer.data, None
            outside.append((index, len(data), lambda handle, data=data: handle.write(data)))
    _add_metadata(tree, schema, IO_METADATA,
                  json.dumps({"inputs": inputs, "outputs": outputs}).encode("utf-8"))
    if outside:
        _add_metadata(tree, schema, *_LOCATION)

    for index, size, _ in outside:  # a non-default offset, so that packing writes the field
        tree.buffers[index].offset, tree.buffers[index].size = 1, size
    sizing = _pack(tree)
    position = _aligned(len(sizing))
    for index, size, _ in outside:
        tree.buffers[index].offset = position
        position = _aligned(position + size)
    head = _pack(tree)
    if len(head) != len(sizing):  # offsets are fixed-size fields: only their values change
        raise RuntimeError("the flatbuffer changed size when its buffer offsets were set")
    with open(path, "wb") as handle:
        handle.write(head)
        for index, size, write in outside:
            handle.write(b"\0" * (tree.buffers[index].offset - handle.tell()))
            write(handle)
            if handle.tell() != tree.buffers[index].offset + size:
                raise RuntimeError(f"buffer {index}: wrote {handle.tell() - tree.buffers[index].offset}"
                                   f" bytes for {size}")


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
