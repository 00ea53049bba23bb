"""Power, Exp, Log, AbsVal, Threshold and WeightedSum: element-wise, so they work on the
input as stored (channels-first or not) and leave the result in the same layout.

Each follows its layer's ``call`` step for step, skipping the same identity steps, with the
same float32 constants (a Python float in a Keras op is a float32 scalar)."""

from __future__ import annotations

import numpy as np

from .custom_common import FLOAT, f32
from .registry import lowering


def _scaled_shifted(g, x: str, scale: float, shift: float) -> str:
    """shift + scale * x, computed as (x * scale) + shift like the layers."""
    if scale != 1:
        x = g.op("Mul", x, f32(g, scale))
    if shift != 0:
        x = g.op("Add", x, f32(g, shift))
    return x


@lowering("Power")
def power(layer, g, inputs, outputs):
    """y = (shift + scale * x) ^ power; a constant when power * scale == 0 (Caffe)."""
    x_tensor = inputs[0]
    x = g.value(x_tensor, "any")
    if layer.power * layer.scale == 0:
        value = 1.0 if layer.power == 0 else np.power(np.float32(layer.shift),
                                                      np.float32(layer.power))
        y = g.op("Expand", f32(g, value), g.op("Shape", x))
    else:
        y = _scaled_shifted(g, x, layer.scale, layer.shift)
        if layer.power != 1:
            y = g.op("Pow", y, f32(g, layer.power))
    g.set(outputs[0], y, g.layout(x_tensor))


@lowering("Exp")
def exp(layer, g, inputs, outputs):
    """y = base ^ (shift + scale * x) = e^(ln(base) * scale * x) * base^shift; the layer
    holds the two factors as ``_inner`` = ln(base) * scale and ``_outer`` = base^shift."""
    x_tensor = inputs[0]
    y = g.value(x_tensor, "any")
    if layer._inner != 1:
        y = g.op("Mul", y, f32(g, layer._inner))
    y = g.op("Exp", y)
    if layer._outer != 1:
        y = g.op("Mul", y, f32(g, layer._outer))
    g.set(outputs[0], y, g.layout(x_tensor))


@lowering("Log")
def log(layer, g, inputs, outputs):
    """y = ln(shift + scale * x) * (1 / ln(base)); ``_base_scale`` = 1 / ln(base)."""
    x_tensor = inputs[0]
    y = g.op("Log", _scaled_shifted(g, g.value(x_tensor, "any"), layer.scale, layer.shift))
    if layer._base_scale != 1:
        y = g.op("Mul", y, f32(g, layer._base_scale))
    g.set(outputs[0], y, g.layout(x_tensor))


@lowering("AbsVal")
def abs_val(layer, g, inputs, outputs):
    g.set(outputs[0], g.op("Abs", g.value(inputs[0], "any")), g.layout(inputs[0]))


@lowering("Threshold")
def threshold(layer, g, inputs, outputs):
    """y = 1 where x > threshold, else 0."""
    above = g.op("Greater", g.value(inputs[0], "any"), f32(g, layer.threshold))
    g.set(outputs[0], g.op("Cast", above, to=FLOAT), g.layout(inputs[0]))


@lowering("WeightedSum")
def weighted_sum(layer, g, inputs, outputs):
    """y = sum_i coefficients[i] * x_i, summed left to right; every input in the first
    input's layout."""
    layout = g.layout(inputs[0])
    total = None
    for coefficient, tensor in zip(layer.coefficients, inputs):
        term = g.value(tensor, layout)
        if coefficient != 1:
            term = g.op("Mul", term, f32(g, coefficient))
        total = term if total is None else g.op("Add", total, term)
    g.set(outputs[0], total, layout)
