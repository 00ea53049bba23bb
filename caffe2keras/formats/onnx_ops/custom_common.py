"""Small pieces the custom-layer lowerings share: constants, axes in a stored layout,
reductions across opsets, and a parameter broadcast like the layers' own."""

from __future__ import annotations

import numpy as np

from .graph import keras_axis_in

FLOAT = 1  # onnx TensorProto.FLOAT
BOOL = 9  # onnx TensorProto.BOOL
INT64 = 7  # onnx TensorProto.INT64


def f32(g, value) -> str:
    """A float32 scalar constant: what a Python float becomes in a float32 Keras op."""
    return g.const(np.float32(value))


def i64(g, values) -> str:
    """An int64 constant (a list gives a 1-D tensor, a number a scalar)."""
    return g.const(np.asarray(values, dtype=np.int64))


def scalar_i64(g, value: int) -> str:
    """A 0-D int64 (a single Gather index, Range's bounds, Loop's trip count, CumSum's axis).
    OnnxGraph.const stores every array at least 1-D, so a 1-element one is squeezed."""
    return g.op("Squeeze", i64(g, [value]))


def stored_axis(g, tensor, axis: int) -> int:
    """Where Keras axis ``axis`` of ``tensor`` is in its stored ONNX value."""
    return keras_axis_in(axis, len(g.shape(tensor)), g.layout(tensor))


def stored_axes(g, tensor, axes) -> list[int]:
    return [stored_axis(g, tensor, axis) for axis in axes]


def stored_dims(rank: int, layout: str) -> list[int]:
    """The Keras dimension each dimension of a value stored in ``layout`` holds."""
    return [0, 3, 1, 2] if layout == "nchw" and rank == 4 else list(range(rank))


def reduce(g, op_type: str, x: str, axes, keepdims: bool = True) -> str:
    """``op_type`` (ReduceSum, ReduceMax, ...) over ``axes``: an input from opset 13 for
    ReduceSum, from 18 for the others, an attribute before."""
    axes = [int(a) for a in axes]
    if op_type == "ReduceSum" and g.opset >= 13 or g.opset >= 18:
        return g.op(op_type, x, i64(g, axes), keepdims=int(keepdims))
    return g.op(op_type, x, axes=axes, keepdims=int(keepdims))


def unsqueeze(g, x: str, axes) -> str:
    return g.op("Unsqueeze", x, i64(g, list(axes)))


def squeeze(g, x: str, axes) -> str:
    return g.op("Squeeze", x, i64(g, list(axes)))


def batch_size(g, x: str) -> str:
    """The dynamic batch size of ``x`` as a 1-D int64 of one element."""
    return g.op("Slice", g.op("Shape", x), i64(g, [0]), i64(g, [1]))


def broadcast_order(targets) -> tuple[list[int], list[int]]:
    """For a parameter whose dimension j lands on position ``targets[j]`` of the tensor it
    scales: the transpose that puts its dimensions in ascending position order, and the
    sorted positions (every other position becomes a broadcast 1)."""
    order = sorted(range(len(targets)), key=lambda j: targets[j])
    return order, sorted(targets)


def broadcast_param(g, array, axes, rank: int, layout: str) -> str:
    """A learned parameter (dimensions ordered as the Keras tensor ``axes`` it covers) as a
    constant broadcasting against a rank-``rank`` tensor stored in ``layout``, as the
    layers' own ``_broadcastable`` does in the Keras layout."""
    targets = [keras_axis_in(a, rank, layout) for a in axes]
    order, positions = broadcast_order(targets)
    array = np.asarray(array).transpose(order)
    shape = [1] * rank
    for position, size in zip(positions, array.shape):
        shape[position] = size
    array = array.reshape(shape)
    # drop the leading ones so the constant stays unbatched (numpy broadcasting adds them)
    while array.ndim > 1 and array.shape[0] == 1:
        array = array[0]
    return g.const(array)


def broadcast_value(g, tensor, axes, rank: int, layout: str) -> str:
    """The Keras tensor ``tensor`` (dimensions ordered as the ``axes`` it covers of a
    rank-``rank`` tensor) made to broadcast against that tensor stored in ``layout``."""
    name = g.value(tensor, "any")
    own = len(g.shape(tensor))
    keras_dims = stored_dims(own, g.layout(tensor))
    targets = [keras_axis_in(axes[d], rank, layout) for d in keras_dims]
    order, positions = broadcast_order(targets)
    if order != list(range(own)):
        name = g.op("Transpose", name, perm=order)
    missing = [p for p in range(rank) if p not in positions]
    return unsqueeze(g, name, missing) if missing else name
