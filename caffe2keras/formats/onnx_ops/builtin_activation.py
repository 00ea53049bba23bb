"""Activation, ReLU, LeakyReLU, ELU, PReLU, Softmax, and the ``activation=`` of other
layers. Element-wise: they work on a value in whatever layout it is stored in."""

from __future__ import annotations

import math

import numpy as np
from keras import activations, layers

from .graph import keras_axis_in, to_numpy
from .registry import lowering, refusal


def _softmax(g, x, rank, layout):
    return g.op("Softmax", x, axis=keras_axis_in(-1, rank, layout))


def _gelu(g, x, rank, layout):
    # Keras' exact gelu: 0.5 x (1 + erf(x / sqrt(2)))
    erf = g.op("Erf", g.op("Div", x, g.const(np.float32(math.sqrt(2.0)))))
    half_x = g.op("Mul", x, g.const(np.float32(0.5)))
    return g.op("Mul", half_x, g.op("Add", erf, g.const(np.float32(1.0))))


def _hard_sigmoid(g, x, rank, layout):
    # Keras 3: relu6(x + 3) / 6
    shifted = g.op("Add", x, g.const(np.float32(3.0)))
    clipped = g.op("Clip", shifted, g.const(np.float32(0.0)), g.const(np.float32(6.0)))
    return g.op("Div", clipped, g.const(np.float32(6.0)))


def _unary(op_type):
    return lambda g, x, rank, layout: g.op(op_type, x)


# Keras activation function -> (g, value, rank, layout) -> value
_ACTIVATIONS = {
    activations.relu: _unary("Relu"),
    activations.sigmoid: _unary("Sigmoid"),
    activations.tanh: _unary("Tanh"),
    activations.softplus: _unary("Softplus"),
    activations.softsign: _unary("Softsign"),
    activations.exponential: _unary("Exp"),
    activations.elu: _unary("Elu"),  # alpha 1
    activations.selu: _unary("Selu"),  # ONNX's default alpha and gamma are selu's
    activations.relu6: lambda g, x, rank, layout: g.op(
        "Clip", x, g.const(np.float32(0.0)), g.const(np.float32(6.0))),
    activations.silu: lambda g, x, rank, layout: g.op("Mul", x, g.op("Sigmoid", x)),
    activations.hard_sigmoid: _hard_sigmoid,
    activations.hard_silu: lambda g, x, rank, layout: g.op("Mul", x, _hard_sigmoid(g, x, rank,
                                                                                  layout)),
    activations.mish: lambda g, x, rank, layout: g.op(
        "Mul", x, g.op("Tanh", g.op("Softplus", x))),
    activations.gelu: _gelu,
    activations.softmax: _softmax,
}


def activation_of(layer):
    """The activation function a layer applies after its main computation."""
    return getattr(layer, "activation", None) or activations.linear


def apply_activation(g, function, x: str, rank: int, layout: str) -> str:
    if function is activations.linear:
        return x
    return _ACTIVATIONS[function](g, x, rank, layout)


def _activation_refusal(layer):
    function = activation_of(layer)
    if function is activations.linear or function in _ACTIVATIONS:
        return None
    return f"activation {getattr(function, '__name__', function)!r} has no ONNX lowering"


# every built-in layer with an ``activation=`` (the lowerings apply it)
refusal(layers.Activation, layers.Conv2D, layers.DepthwiseConv2D, layers.Conv2DTranspose,
        layers.Dense)(_activation_refusal)


@lowering(layers.Activation)
def activation(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    layout = g.layout(inputs[0])
    rank = len(inputs[0].shape)
    g.set(outputs[0], apply_activation(g, activation_of(layer), x, rank, layout), layout)


@lowering(layers.ReLU)
def relu(layer, g, inputs, outputs):
    """Keras' relu(x, negative_slope, max_value, threshold), step by step as Keras does:
    leaky_relu alone when only the slope is set; otherwise x -> (x > threshold ? x : 0)
    (or relu), clipped to max_value, minus slope * relu(threshold - x)."""
    x = g.value(inputs[0], "any")
    layout = g.layout(inputs[0])
    slope, ceiling, threshold = layer.negative_slope, layer.max_value, layer.threshold
    f32 = np.float32
    if slope != 0 and ceiling is None and threshold == 0:
        g.set(outputs[0], g.op("LeakyRelu", x, alpha=float(slope)), layout)
        return
    negative_part = None
    if slope != 0:
        below = g.op("Neg", x) if threshold == 0 else g.op("Sub", g.const(f32(threshold)), x)
        negative_part = g.op("Relu", below)
    if threshold != 0:
        y = g.op("Where", g.op("Greater", x, g.const(f32(threshold))), x, g.const(f32(0)))
    else:
        y = g.op("Relu", x)
    if ceiling is not None:
        y = g.op("Clip", y, g.const(f32(0)), g.const(f32(ceiling)))
    if negative_part is not None:
        y = g.op("Sub", y, g.op("Mul", g.const(f32(slope)), negative_part))
    g.set(outputs[0], y, layout)


@lowering(layers.LeakyReLU)
def leaky_relu(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    g.set(outputs[0], g.op("LeakyRelu", x, alpha=float(layer.negative_slope)),
          g.layout(inputs[0]))


@lowering(layers.ELU)
def elu(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    g.set(outputs[0], g.op("Elu", x, alpha=float(layer.alpha)), g.layout(inputs[0]))


@lowering(layers.PReLU)
def prelu(layer, g, inputs, outputs):
    """Keras: relu(x) - alpha * relu(-x), which is x for x >= 0 and alpha * x below: PRelu.
    alpha has the input's non-batch shape, 1 along the shared axes."""
    x = g.value(inputs[0], "any")
    layout = g.layout(inputs[0])
    rank = len(inputs[0].shape)
    slope = g.const_in_layout(to_numpy(layer.alpha), rank, layout)
    g.set(outputs[0], g.op("PRelu", x, slope), layout)


@lowering(layers.Softmax)
def softmax(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    layout = g.layout(inputs[0])
    rank = len(inputs[0].shape)
    g.set(outputs[0], g.op("Softmax", x, axis=keras_axis_in(layer.axis, rank, layout)), layout)


@refusal(layers.Softmax)
def softmax_refusal(layer):
    if not isinstance(layer.axis, int):
        return f"softmax over several axes {layer.axis} has no ONNX lowering"
    return None
