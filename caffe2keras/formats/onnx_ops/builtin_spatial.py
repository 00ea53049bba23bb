"""ZeroPadding2D, Cropping2D, UpSampling1D and UpSampling2D (nearest). They move or
repeat whole rows and columns, so they work in whatever layout the value is stored in."""

from __future__ import annotations

import numpy as np
from keras import layers

from .graph import keras_axis_in, to_layout_shape
from .registry import lowering, refusal


def _spatial_axes(layer, g, tensor) -> tuple[int, int]:
    """Where the layer's height and width axes are in ``tensor``'s stored value."""
    keras_axes = (2, 3) if layer.data_format == "channels_first" else (1, 2)
    layout = g.layout(tensor)
    return tuple(keras_axis_in(axis, 4, layout) for axis in keras_axes)


@lowering(layers.ZeroPadding2D)
def zero_padding2d(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    (top, bottom), (left, right) = layer.padding
    axis_h, axis_w = _spatial_axes(layer, g, inputs[0])
    begins, ends = [0] * 4, [0] * 4
    begins[axis_h], ends[axis_h], begins[axis_w], ends[axis_w] = top, bottom, left, right
    y = g.op("Pad", x, g.const(np.array(begins + ends, np.int64)), mode="constant")
    g.set(outputs[0], y, g.layout(inputs[0]))


@lowering(layers.Cropping2D)
def cropping2d(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    (top, bottom), (left, right) = layer.cropping
    axis_h, axis_w = _spatial_axes(layer, g, inputs[0])
    stored = to_layout_shape(inputs[0].shape, g.layout(inputs[0]))
    starts = np.array([top, left], np.int64)
    ends = np.array([stored[axis_h] - bottom, stored[axis_w] - right], np.int64)
    y = g.op("Slice", x, g.const(starts), g.const(ends), g.const(np.array([axis_h, axis_w],
                                                                          np.int64)))
    g.set(outputs[0], y, g.layout(inputs[0]))


def repeat_each(g, x: str, stored_shape, factors: dict[int, int]) -> str:
    """Repeat every element ``factor`` times along each of the given axes (numpy's
    ``repeat``: a, a, b, b), by a broadcast: insert a length-1 axis after each, Expand it
    to the factor, merge it back. Exact, and any batch size passes (0 = keep)."""
    split, grown, merged = [], [], []
    for axis, size in enumerate(stored_shape):
        dim = 0 if axis == 0 else size
        split.append(dim)
        grown.append(1)
        merged.append(dim if axis not in factors else size * factors[axis])
        if axis in factors:
            split.append(1)
            grown.append(factors[axis])
    x = g.op("Reshape", x, g.const(np.array(split, np.int64)))
    x = g.op("Expand", x, g.const(np.array(grown, np.int64)))
    return g.op("Reshape", x, g.const(np.array(merged, np.int64)))


@lowering(layers.UpSampling2D)
def up_sampling2d(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    axis_h, axis_w = _spatial_axes(layer, g, inputs[0])
    stored = to_layout_shape(inputs[0].shape, g.layout(inputs[0]))
    height, width = layer.size
    y = repeat_each(g, x, stored, {axis_h: height, axis_w: width})
    g.set(outputs[0], y, g.layout(inputs[0]))


@refusal(layers.UpSampling2D)
def up_sampling2d_refusal(layer):
    if layer.interpolation != "nearest":
        return f"{layer.interpolation} interpolation has no ONNX lowering (only nearest)"
    return None


@lowering(layers.UpSampling1D)
def up_sampling1d(layer, g, inputs, outputs):
    x = g.value(inputs[0], "keras")
    g.set(outputs[0], repeat_each(g, x, inputs[0].shape, {1: layer.size}), "keras")
