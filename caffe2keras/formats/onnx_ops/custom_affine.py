"""Scale, Bias, ScaleByInput, BiasByInput and Axpy: a factor or offset broadcast over the
covered axes, in whichever layout the input is stored (no transpose of the big tensor).

``layer._axes`` are the covered Keras axes the layer resolved when it was built: the ones
its ``call`` broadcasts over."""

from __future__ import annotations

from .custom_common import broadcast_param, broadcast_value, i64, stored_axis
from .graph import to_layout_shape
from .registry import lowering


@lowering("Scale")
def scale(layer, g, inputs, outputs):
    """y = x * gamma (+ beta)."""
    x_tensor = inputs[0]
    rank, layout = len(g.shape(x_tensor)), g.layout(x_tensor)
    axes = layer._axes
    weights = layer.get_weights()
    y = g.op("Mul", g.value(x_tensor, "any"), broadcast_param(g, weights[0], axes, rank, layout))
    if layer.bias_term:
        y = g.op("Add", y, broadcast_param(g, weights[1], axes, rank, layout))
    g.set(outputs[0], y, layout)


@lowering("ScaleByInput")
def scale_by_input(layer, g, inputs, outputs):
    """Inputs [x, s]: y = x * s (+ beta)."""
    x_tensor, s_tensor = inputs
    rank, layout = len(g.shape(x_tensor)), g.layout(x_tensor)
    axes = layer._axes
    y = g.op("Mul", g.value(x_tensor, "any"), broadcast_value(g, s_tensor, axes, rank, layout))
    if layer.bias_term:
        y = g.op("Add", y, broadcast_param(g, layer.get_weights()[0], axes, rank, layout))
    g.set(outputs[0], y, layout)


@lowering("Bias")
def bias(layer, g, inputs, outputs):
    """y = x + bias."""
    x_tensor = inputs[0]
    rank, layout = len(g.shape(x_tensor)), g.layout(x_tensor)
    axes = layer._axes
    offset = broadcast_param(g, layer.get_weights()[0], axes, rank, layout)
    g.set(outputs[0], g.op("Add", g.value(x_tensor, "any"), offset), layout)


@lowering("BiasByInput")
def bias_by_input(layer, g, inputs, outputs):
    """Inputs [x, b]: y = x + b."""
    x_tensor, b_tensor = inputs
    rank, layout = len(g.shape(x_tensor)), g.layout(x_tensor)
    axes = layer._axes
    offset = broadcast_value(g, b_tensor, axes, rank, layout)
    g.set(outputs[0], g.op("Add", g.value(x_tensor, "any"), offset), layout)


@lowering("Axpy")
def axpy(layer, g, inputs, outputs):
    """Inputs [a, x, y]: a * x + y, a holding one factor per item and channel of x."""
    a_tensor, x_tensor, y_tensor = inputs
    layout = g.layout(x_tensor)
    x_shape = g.shape(x_tensor)
    channel = stored_axis(g, x_tensor, layer.axis)
    # a's C values per item are in the same order whatever its layout: (N, C), (N, 1, 1, C)
    # or (N, C, 1, 1); reshape them onto x's stored channel axis
    shape = [1] * len(x_shape)
    shape[0] = -1
    shape[channel] = to_layout_shape(x_shape, layout)[channel]
    factor = g.op("Reshape", g.value(a_tensor, "any"), i64(g, shape))
    product = g.op("Mul", factor, g.value(x_tensor, "any"))
    g.set(outputs[0], g.op("Add", product, g.value(y_tensor, layout)), layout)
