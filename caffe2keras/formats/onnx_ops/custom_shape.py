"""Slice, Crop, Tile, ArgMax and Reduction, on the input as stored wherever the layer's axes
can be mapped there (Reduction and the flattening ArgMax need the Keras order)."""

from __future__ import annotations

import math

import numpy as np

from .custom_common import (FLOAT, f32, i64, reduce, stored_axes, stored_axis, stored_dims,
                            unsqueeze)
from .graph import to_layout_shape
from .registry import lowering


@lowering("Slice")
def slice_(layer, g, inputs, outputs):
    """One input cut at ``points`` along ``axis`` into len(points) + 1 outputs."""
    x_tensor = inputs[0]
    layout = g.layout(x_tensor)
    axis = stored_axis(g, x_tensor, layer.axis)
    size = to_layout_shape(g.shape(x_tensor), layout)[axis]
    edges = [0, *layer.points, size]
    sizes = [stop - start for start, stop in zip(edges, edges[1:])]
    parts = g.op("Split", g.value(x_tensor, "any"), i64(g, sizes), axis=axis,
                 outputs=len(sizes))
    for tensor, name in zip(outputs, parts):
        g.set(tensor, name, layout)


@lowering("Crop")
def crop(layer, g, inputs, outputs):
    """x[..., offset : offset + size, ...] on the layer's axes; a reference input is never read."""
    x_tensor = inputs[0]
    starts = list(layer.offsets)
    ends = [offset + size for offset, size in zip(layer.offsets, layer.sizes)]
    y = g.op("Slice", g.value(x_tensor, "any"), i64(g, starts), i64(g, ends),
             i64(g, stored_axes(g, x_tensor, layer.axes)))
    g.set(outputs[0], y, g.layout(x_tensor))


@lowering("Tile")
def tile(layer, g, inputs, outputs):
    """The whole block repeated ``tiles`` times along ``axis`` (np.tile)."""
    x_tensor = inputs[0]
    repeats = [1] * len(g.shape(x_tensor))
    repeats[stored_axis(g, x_tensor, layer.axis)] = layer.tiles
    y = g.op("Tile", g.value(x_tensor, "any"), i64(g, repeats))
    g.set(outputs[0], y, g.layout(x_tensor))


def _caffe_top_k(g, x: str, axis: int, size: int, rank: int, k: int):
    """(indices, values), float32, of the k largest entries of ``x`` along ``axis``: descending
    value, equal values by descending index (Caffe's partial_sort on (value, index) pairs).
    k passes, each the layer's: the largest value not taken yet, then the highest position
    holding it. No TopK: runtimes differ in how TopK orders ties."""
    shape = [1] * rank
    shape[axis] = size
    position = g.const(np.arange(size, dtype=np.float32).reshape(shape))
    minus_one, minus_inf = f32(g, -1.0), f32(g, -np.inf)
    taken = None
    indices, values = [], []
    for _ in range(k):
        if taken is None:  # nothing taken: every value is a candidate
            best = reduce(g, "ReduceMax", x, [axis])
            candidate = g.op("Equal", x, best)
        else:
            best = reduce(g, "ReduceMax", g.op("Where", taken, minus_inf, x), [axis])
            candidate = g.op("And", g.op("Equal", x, best), g.op("Not", taken))
        index = reduce(g, "ReduceMax", g.op("Where", candidate, position, minus_one), [axis])
        hit = g.op("Equal", position, index)
        taken = hit if taken is None else g.op("Or", taken, hit)
        indices.append(index)
        values.append(best)
    if k == 1:
        return indices[0], values[0]
    return g.op("Concat", *indices, axis=axis), g.op("Concat", *values, axis=axis)


@lowering("ArgMax")
def arg_max(layer, g, inputs, outputs):
    """top_k indices (or values, with out_max_val) along ``axis``; without an axis each
    item's features flattened in the Keras order, output (N, 1, top_k) indices or
    (N, 2, top_k) indices then values."""
    x_tensor = inputs[0]
    shape = g.shape(x_tensor)
    if layer.axis is not None:
        layout = g.layout(x_tensor)
        x = _as_float(g, x_tensor, g.value(x_tensor, "any"))
        axis = stored_axis(g, x_tensor, layer.axis)
        size = to_layout_shape(shape, layout)[axis]
        indices, values = _caffe_top_k(g, x, axis, size, len(shape), layer.top_k)
        g.set(outputs[0], values if layer.out_max_val else indices, layout)
        return
    features = math.prod(shape[1:])
    flat = g.op("Reshape", _as_float(g, x_tensor, g.value(x_tensor, "keras")),
                i64(g, [-1, features]))
    indices, values = _caffe_top_k(g, flat, 1, features, 2, layer.top_k)
    parts = [indices, values] if layer.out_max_val else [indices]
    parts = [unsqueeze(g, part, [1]) for part in parts]
    y = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
    g.set(outputs[0], y, "keras")


def _as_float(g, tensor, name: str) -> str:
    """The layer ranks in float32 (``ops.cast(inputs, "float32")``)."""
    if str(tensor.dtype) == "float32":
        return name
    return g.op("Cast", name, to=FLOAT)


@lowering("Reduction")
def reduction(layer, g, inputs, outputs):
    """coeff * SUM / ASUM / SUMSQ / MEAN over ``axes``, which leave the output."""
    x_tensor = inputs[0]
    rank = len(g.shape(x_tensor))
    layout = g.layout(x_tensor)
    kept = [d for d in stored_dims(rank, layout) if d not in layer.axes]
    if kept != sorted(kept):  # the axes left would not be in the Keras order
        layout = "keras"
    x = g.value(x_tensor, layout)
    if layer.operation == "ASUM":
        x = g.op("Abs", x)
    elif layer.operation == "SUMSQ":
        x = g.op("Mul", x, x)
    axes = [d for d, keras in enumerate(stored_dims(rank, layout)) if keras in layer.axes]
    y = reduce(g, "ReduceSum", x, axes, keepdims=False)
    # Caffe: coeff /= count for MEAN (in float32), then top *= coeff
    factor = np.float32(layer.coeff)
    if layer.operation == "MEAN":
        shape = g.shape(x_tensor)
        factor = factor / np.float32(math.prod(shape[a] for a in layer.axes))
    if factor != 1:
        y = g.op("Mul", y, f32(g, factor))
    g.set(outputs[0], y, "keras")
