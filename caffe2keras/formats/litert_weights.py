"""Large weights travel around TensorFlow's converter, not through it.

The converter holds every constant several times (the SavedModel tensors, MLIR attributes
that are never freed, transposed copies folded element by element, the flatbuffer, the
Python bytes): VGG16's 553 MB of weights took 5 GB and 40 s. So each large kernel of a
layer whose use we know is traced as a *marker* instead: a constant filled with one
float32 value of its own (``marker_value``), which MLIR keeps as a single number and the
converter writes as a FILL op. After conversion each marker is found again
(``find_markers``) and the op reading it tells how the converter laid the kernel out
(``_layouts``, e.g. CONV_2D's OHWI from Keras' HWIO); ``litert_file`` then drops the FILL
ops and streams the real kernels, so laid out, into buffers after the flatbuffer.

A following BatchNormalization is folded here instead of by the converter
(``litert_norms``); kernels a following Scale or Rescaling would be multiplied into are
left real (``FOLDING_LAYERS``). A marker the converter still folded into something else is
not found; ``litert_convert`` then converts again with that kernel real.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MARKER_BYTES = 1 << 20  # kernels from this size on go around the converter
# float32 bit patterns of the markers: about 1.2361 + k * 2**-23 (the golden ratio's bits,
# not a round number a real constant could be made of)
_MARKER_BASE = 0x3F9E3779

# Keras layer class -> the variable that may be a marker
MARKED_KERNELS = {"Dense": "kernel", "Conv2D": "kernel", "DepthwiseConv2D": "kernel",
                  "Conv2DTranspose": "kernel"}
# layers whose per-channel factor the converter multiplies into the kernel before them:
# such a kernel would come back folded, not as its marker (costing a second conversion).
# A BatchNormalization is folded here instead (litert_norms).
FOLDING_LAYERS = ("Scale", "Rescaling")


def marker_value(index: int) -> np.float32:
    return np.array([_MARKER_BASE + index], np.uint32).view(np.float32)[0]


def markable(model, threshold: int = None) -> list:
    """The Keras variables to trace as markers: the kernels (of at least ``threshold``
    bytes) of layers in MARKED_KERNELS, each layer called once (so the converter sees one
    use of each kernel) and not followed by one of FOLDING_LAYERS."""
    threshold = MARKER_BYTES if threshold is None else threshold
    chosen = []
    for layer in model.layers:
        wanted = MARKED_KERNELS.get(type(layer).__name__)
        if wanted is None or len(layer._inbound_nodes) != 1 or any(
                type(node.operation).__name__ in FOLDING_LAYERS
                for node in layer._outbound_nodes):
            continue
        for variable in layer.weights:
            if variable.path.rsplit("/", 1)[-1] == wanted \
                    and math.prod(variable.shape) * 4 >= threshold:
                chosen.append(variable)
    return chosen


@dataclass
class Placed:
    """A marker found in the converted model: tensor ``tensor`` of subgraph ``subgraph``
    holds variable ``variable`` transposed by ``perm`` and reshaped to ``shape``; ``fill``
    the FILL op that makes it (None: an inline constant); ``readers`` the ops reading it."""
    variable: int
    subgraph: int
    tensor: int
    fill: int | None
    perm: tuple[int, ...]
    shape: tuple[int, ...]
    readers: tuple[int, ...] = ()


def _layouts():
    from ai_edge_litert import schema_py_generated as schema
    ops = schema.BuiltinOperator
    # op -> (input slot, permutation of the Keras kernel's axes, reshape allowed)
    return {ops.CONV_2D: (1, (3, 0, 1, 2), False),            # HWIO -> OHWI
            ops.FULLY_CONNECTED: (1, (1, 0), False),          # (in, out) -> (out, in)
            ops.TRANSPOSE_CONV: (1, (2, 0, 1, 3), False),     # HWOI -> OHWI
            ops.DEPTHWISE_CONV_2D: (1, (0, 1, 2, 3), True)}   # HWCM -> 1HW(C*M)


def _opcode(model, operator) -> int:
    code = model.operatorCodes[operator.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _scalar_marker(model, subgraph, tensor_index, markers) -> int | None:
    """The variable index of a marker constant (a float32 splat), else None."""
    from ai_edge_litert import schema_py_generated as schema
    tensor = subgraph.tensors[tensor_index]
    data = model.buffers[tensor.buffer].data if tensor.buffer else None
    if tensor.type != schema.TensorType.FLOAT32 or data is None or len(data) < 4 \
            or len(data) % 4:
        return None
    values = np.frombuffer(data, np.uint32)  # a view: real kernels can be large
    first = int(values[0])
    if first not in markers or not np.all(values == first):
        return None
    return markers[first]


def find_markers(model, variables) -> tuple[list[Placed], set[int]]:
    """Every marker of ``variables`` in ``model`` (a ``ModelT``) with a known layout, and
    the indices of the variables not found so (folded, or read by an op we do not know)."""
    from ai_edge_litert import schema_py_generated as schema
    markers = {int(marker_value(i).view(np.uint32)): i for i in range(len(variables))}
    layouts = _layouts()
    placed, bad = [], set()
    for g, subgraph in enumerate(model.subgraphs):
        sources = {}  # tensor -> (variable, FILL op index or None)
        for o, operator in enumerate(subgraph.operators):
            if _opcode(model, operator) == schema.BuiltinOperator.FILL:
                found = _scalar_marker(model, subgraph, operator.inputs[1], markers)
                if found is not None:
                    sources[operator.outputs[0]] = (found, o)
        for t in range(len(subgraph.tensors)):  # markers the converter left inline
            found = _scalar_marker(model, subgraph, t, markers)
            if found is not None and subgraph.tensors[t].shape is not None and \
                    math.prod(subgraph.tensors[t].shape) == math.prod(variables[found].shape):
                sources[t] = (found, None)
        readers = {}  # tensor -> [(op code, input slot, op index)]
        for o, operator in enumerate(subgraph.operators):
            for slot, t in enumerate(operator.inputs):
                if t in sources:
                    readers.setdefault(t, []).append((_opcode(model, operator), slot, o))
        for t, (variable, fill) in sources.items():
            uses = readers.get(t, [])
            shape = tuple(int(d) for d in subgraph.tensors[t].shape)
            layout = _layout_of(uses, layouts, tuple(variables[variable].shape), shape)
            if layout is None or t in subgraph.outputs:
                bad.add(variable)
            else:
                placed.append(Placed(variable, g, t, fill, layout, shape,
                                     tuple(o for _, _, o in uses)))
    found = {p.variable for p in placed}
    bad |= set(range(len(variables))) - found
    return [p for p in placed if p.variable not in bad], bad


def _layout_of(uses, layouts, keras_shape, shape):
    """The permutation for a marker read as ``uses``, if they all agree and fit."""
    perms = set()
    for code, slot, _ in uses:
        rule = layouts.get(code)
        if rule is None or rule[0] != slot:
            return None
        _, perm, reshape = rule
        if len(perm) != len(keras_shape):
            return None
        moved = tuple(keras_shape[a] for a in perm)
        if reshape:  # depthwise: (kh, kw, C, M) -> (1, kh, kw, C*M), same element order
            moved = (1, moved[0], moved[1], moved[2] * moved[3])
        if moved != shape:
            return None
        perms.add(perm)
    return perms.pop() if len(perms) == 1 else None


def laid_out_writer(variable, perm, scale=None):
    """A function writing the variable's array transposed by ``perm`` to a file, in slices
    of the first axis (a 400 MB kernel never needs a second 400 MB), times ``scale`` when
    given (float32, shaped to broadcast against the laid-out array)."""
    def write(handle):
        laid_out = np.transpose(np.asarray(variable.value, dtype=np.float32), perm)
        row_bytes = max(laid_out[0].nbytes, 1)
        step = max(1, _CHUNK_BYTES // row_bytes)
        for start in range(0, laid_out.shape[0], step):
            chunk = laid_out[start:start + step]
            if scale is not None:
                chunk = chunk * (scale[start:start + step] if scale.shape[0] > 1 else scale)
            handle.write(np.ascontiguousarray(chunk, dtype="<f4"))
    return write


_CHUNK_BYTES = 16 << 20
