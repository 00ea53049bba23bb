"""The ONNX graph being built from a Keras model, and its writer.

Values: every Keras tensor has one ONNX value holding it, in the Keras layout or, for a
4-D tensor, channels-first ("nchw"), which is what ONNX's Conv, pooling and friends
want. A lowering asks ``value(t, layout)`` for the layout it needs; the other one is made
by a Transpose, once per tensor, and remembered. So a chain of channels-first layers runs
without any transpose, and one that needs the Keras layout (Reshape, Flatten, Dense on
4-D) pays one.

Weights: ``const`` keeps a reference to the array (no copy) and ``write`` streams each
one into the file straight from its memory: building the ModelProto with the weights
inside and serialising it would hold two more copies of them (553 MB each for VGG16).
"""

from __future__ import annotations

import numpy as np

from ..onnx_file import OPSET  # where the format describes itself, without loading Keras

IR_VERSION = 8  # the IR version that came with opset 17
# A protobuf message, so an .onnx file, cannot exceed 2 GiB - 1 byte.
PROTOBUF_LIMIT = 2**31 - 1
_LAYOUTS = ("keras", "nchw")
_TO_NCHW = (0, 3, 1, 2)
_TO_KERAS = (0, 2, 3, 1)
# constants up to this many elements are shared between nodes that use equal ones
_SHARED_CONSTANT_SIZE = 64


class OnnxGraph:
    def __init__(self, opset: int = OPSET):
        self.opset = opset
        self.scope = "graph"  # the current layer's name: new values are named after it
        self.nodes = []  # onnx NodeProto
        self.initializers: list[tuple[str, np.ndarray]] = []
        self.inputs = []  # onnx ValueInfoProto
        self.outputs = []
        self.domains: set[str] = set()
        self._taken: set[str] = set()
        self._stored: dict[int, _Stored] = {}
        self._small_constants: dict[tuple, str] = {}

    # --- names -------------------------------------------------------------------------
    def reserve(self, name: str) -> None:
        """Claim ``name`` (a graph input or output) so that no internal value takes it."""
        if name in self._taken:
            raise ValueError(f"ONNX value name {name!r} is used twice")
        self._taken.add(name)

    def fresh(self, base: str) -> str:
        name, count = base, 1
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        self._taken.add(name)
        return name

    # --- nodes and constants ------------------------------------------------------------
    def op(self, op_type: str, *inputs: str, outputs: int = 1, domain: str = "",
           **attributes):
        """Append a node; return its output name (a list of them when ``outputs`` > 1)."""
        from onnx import helper
        node_name = self.fresh(f"{self.scope}/{op_type}")
        names = [node_name] if outputs == 1 else [self.fresh(f"{node_name}_{i}")
                                                  for i in range(outputs)]
        attributes = {key: value for key, value in attributes.items() if value is not None}
        inputs = list(inputs)
        while inputs and inputs[-1] == "":  # omitted optional inputs at the end
            inputs.pop()
        self.nodes.append(helper.make_node(op_type, inputs, names, name=node_name,
                                           domain=domain, **attributes))
        if domain:
            self.domains.add(domain)
        return names[0] if outputs == 1 else names

    def const(self, array, dtype=None, name: str | None = None) -> str:
        """An initializer holding ``array`` (float64 becomes float32 unless ``dtype`` says
        otherwise); returns its name."""
        array = np.asarray(array, dtype=dtype)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        array = np.ascontiguousarray(array)  # a no-op (no copy) for the usual weights
        key = None
        if array.size <= _SHARED_CONSTANT_SIZE:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._small_constants:
                return self._small_constants[key]
        value_name = self.fresh(name or f"{self.scope}/const")
        self.initializers.append((value_name, array))
        if key is not None:
            self._small_constants[key] = value_name
        return value_name

    def const_in_layout(self, array, rank: int, layout: str, dtype=None) -> str:
        """A constant given in the Keras layout, broadcasting against a rank-``rank``
        tensor, as it broadcasts against that tensor stored in ``layout`` (a per-channel
        (C,) vector for an nchw tensor becomes (C, 1, 1))."""
        array = np.asarray(array)
        if layout == "nchw" and rank == 4 and array.ndim:
            array = array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(_TO_NCHW)
            while array.ndim > 1 and array.shape[0] == 1:
                array = array[0]  # leading ones broadcast anyway
        return self.const(array, dtype)

    def axis_const(self, vector, axis: int, rank: int, layout: str, dtype=None) -> str:
        """A 1-D constant laid along Keras axis ``axis`` of a rank-``rank`` tensor stored
        in ``layout`` (BatchNormalization's per-channel factors, say)."""
        vector = np.asarray(vector).reshape(-1)
        shape = [1] * rank
        shape[keras_axis_in(axis, rank, layout)] = vector.size
        while len(shape) > 1 and shape[0] == 1:
            shape.pop(0)
        return self.const(vector.reshape(shape), dtype)

    # --- values of Keras tensors -----------------------------------------------------------
    def set(self, tensor, name: str, layout: str = "keras") -> None:
        """Record that ONNX value ``name`` holds ``tensor`` in ``layout``."""
        if layout not in _LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {_LAYOUTS}")
        if len(tensor.shape) != 4:
            layout = "keras"  # only 4-D tensors have a channels-first form
        self._stored[id(tensor)] = _Stored(tensor, layout, {layout: name})

    def value(self, tensor, layout: str = "keras") -> str:
        """The ONNX value of ``tensor`` in ``layout`` ("keras", "nchw", or "any": as stored,
        see ``layout(tensor)``)."""
        stored = self._find(tensor)
        if layout == "any" or len(tensor.shape) != 4:
            return stored.names[stored.layout]
        if layout not in _LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {_LAYOUTS} or 'any'")
        if layout not in stored.names:
            source = stored.names[stored.layout]
            perm = _TO_NCHW if layout == "nchw" else _TO_KERAS
            scope, self.scope = self.scope, source
            stored.names[layout] = self.op("Transpose", source, perm=list(perm))
            self.scope = scope
        return stored.names[layout]

    def layout(self, tensor) -> str:
        return self._find(tensor).layout

    def shape(self, tensor) -> tuple:
        """The static Keras shape of ``tensor`` (batch None)."""
        return tuple(tensor.shape)

    def has(self, tensor) -> bool:
        return id(tensor) in self._stored

    def _find(self, tensor) -> "_Stored":
        stored = self._stored.get(id(tensor))
        if stored is None:
            raise KeyError(f"no ONNX value holds Keras tensor {tensor.name!r} yet")
        return stored

    # --- graph inputs and outputs ----------------------------------------------------------
    def add_input(self, tensor, name: str) -> None:
        self.reserve(name)
        self.inputs.append(_value_info(name, tensor))
        self.set(tensor, name, "keras")

    def add_output(self, tensor, name: str) -> None:
        """Declare ``tensor`` a graph output called ``name`` (reserved beforehand, so that
        no internal value took it), in the Keras layout."""
        if name not in self._taken:
            self.reserve(name)
        scope, self.scope = self.scope, name
        source = self.value(tensor, "keras")
        self.scope = scope
        from onnx import helper
        if source != name:  # else a graph input returned as it is
            self.nodes.append(helper.make_node("Identity", [source], [name],
                                               name=f"{name}/output"))
        self.outputs.append(_value_info(name, tensor))

    # --- the file ----------------------------------------------------------------------------
    def weight_bytes(self) -> int:
        return sum(array.nbytes for _, array in self.initializers)

    def write(self, path: str, graph_name: str, producer_version: str = "") -> int:
        """Write the model to ``path``, streaming the weights; return the file's size.
        Raises ValueError when the model exceeds protobuf's 2 GiB limit (before writing)."""
        from onnx import helper, onnx_pb
        self._drop_unused()
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs)
        graph_head = graph.SerializeToString()
        tensor_heads = [_tensor_head(name, array) for name, array in self.initializers]
        graph_size = len(graph_head) + sum(
            _field_size(_INITIALIZER_FIELD, len(head) + _field_size(_RAW_DATA_FIELD, array.nbytes))
            for head, (_, array) in zip(tensor_heads, self.initializers))
        opsets = [helper.make_opsetid("", self.opset)]
        opsets += [helper.make_opsetid(domain, 1) for domain in sorted(self.domains)]
        model = onnx_pb.ModelProto(ir_version=IR_VERSION, producer_name="caffe2keras",
                                   producer_version=producer_version, opset_import=opsets)
        model_head = model.SerializeToString()
        total = len(model_head) + _field_size(_GRAPH_FIELD, graph_size)
        if total > PROTOBUF_LIMIT:
            raise ValueError(f"the ONNX model would be {total / 2**30:.2f} GiB; a single .onnx "
                             "file holds at most 2 GiB (protobuf's limit)")
        with open(path, "wb") as file:
            file.write(model_head)
            file.write(_key(_GRAPH_FIELD, graph_size))
            file.write(graph_head)
            for head, (_, array) in zip(tensor_heads, self.initializers):
                file.write(_key(_INITIALIZER_FIELD,
                                len(head) + _field_size(_RAW_DATA_FIELD, array.nbytes)))
                file.write(head)
                file.write(_key(_RAW_DATA_FIELD, array.nbytes))
                file.write(memoryview(array.reshape(-1)).cast("B"))
        return total

    def _drop_unused(self) -> None:
        """Remove nodes and initializers no graph output depends on (a lowering may make a
        value it ends up not using; onnxruntime warns about such initializers)."""
        needed = {value.name for value in self.outputs}
        kept = []
        for node in reversed(self.nodes):
            if any(name in needed for name in node.output):
                kept.append(node)
                needed.update(_names_read(node))
        self.nodes = kept[::-1]
        self.initializers = [(name, array) for name, array in self.initializers
                             if name in needed]


def _names_read(node) -> set[str]:
    """The values a node reads: its inputs, and whatever its subgraphs (Loop, If bodies)
    read from the enclosing graph (over-approximated by every name they read)."""
    names = set(node.input)
    for attribute in node.attribute:
        for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            for inner in subgraph.node:
                names |= _names_read(inner)
    return names


class _Stored:
    __slots__ = ("tensor", "layout", "names")

    def __init__(self, tensor, layout: str, names: dict[str, str]):
        self.tensor = tensor  # held so that id(tensor) stays this tensor's
        self.layout = layout
        self.names = names


def keras_axis_in(axis: int, rank: int, layout: str) -> int:
    """Where Keras axis ``axis`` (negative counts from the end) of a rank-``rank`` tensor is
    in a value stored in ``layout``."""
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for a {rank}-D tensor")
    return _TO_NCHW.index(axis) if layout == "nchw" and rank == 4 else axis


def to_layout_shape(shape, layout: str) -> tuple:
    """A Keras-layout shape as it is stored in ``layout``."""
    shape = tuple(shape)
    return tuple(shape[i] for i in _TO_NCHW) if layout == "nchw" and len(shape) == 4 else shape


def to_numpy(variable) -> np.ndarray:
    """A Keras variable's value as a numpy array, sharing the variable's memory where the
    backend allows (TensorFlow's ``Variable.numpy()`` copies: 411 MB for VGG16's fc6)."""
    value = variable.value
    if hasattr(value, "read_value"):  # a tf.Variable: a read aliases its buffer on CPU
        return np.asarray(value.read_value())
    from keras import ops
    return np.asarray(ops.convert_to_numpy(value))


def onnx_dtype(dtype) -> int:
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(str(dtype)))


def _value_info(name: str, tensor):
    from onnx import helper
    dims = ["N" if i == 0 else dim for i, dim in enumerate(tensor.shape)]
    return helper.make_tensor_value_info(name, onnx_dtype(tensor.dtype), dims)


# Protobuf field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer,
# TensorProto.raw_data. Each is a length-delimited field: key, length, payload.
_GRAPH_FIELD, _INITIALIZER_FIELD, _RAW_DATA_FIELD = 7, 5, 9


def _tensor_head(name: str, array: np.ndarray) -> bytes:
    """A TensorProto without its raw_data: name, type and dims."""
    from onnx import onnx_pb
    return onnx_pb.TensorProto(name=name, data_type=onnx_dtype(array.dtype),
                               dims=array.shape).SerializeToString()


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _key(field: int, length: int) -> bytes:
    return _varint(field << 3 | 2) + _varint(length)


def _field_size(field: int, length: int) -> int:
    return len(_key(field, length)) + length
