"""Element-wise activations and Softmax."""

from __future__ import annotations

import numpy as np

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..registry import Step, converter
from .common import finite, float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = (
    "AbsVal", "Activation", "ELU", "Exp", "Log", "PReLU", "Power", "ReLU", "Softmax", "Threshold")


@converter("ReLU")
def relu(layer, ctx):
    slope = layer.param.relu_param.negative_slope
    if slope < 0:
        # Caffe: y = max(0, x) + slope * min(0, x) for any slope; Keras' ReLU refuses a
        # negative one, PReLU with one shared alpha computes the same.
        rank = len(ctx.bottom_shapes[0])
        alpha = np.full((1,) * (rank - 1), slope, np.float32)
        return [Step(keras.layers.PReLU(shared_axes=list(range(1, rank)) or None,
                                        name=name_of(layer)), [alpha])]
    return [Step(keras.layers.ReLU(negative_slope=slope, name=name_of(layer)))]


@converter("PReLU")
def prelu(layer, ctx):
    shape = ctx.bottom_shapes[0]
    rank = len(shape)
    channel_axis = ctx.keras_axis(1)
    shared = layer.param.prelu_param.channel_shared
    # Keras' alpha spans every non-batch axis; the shared axes collapse to 1.
    shared_axes = [axis for axis in range(1, rank) if shared or axis != channel_axis]
    alpha_shape = [1] * (rank - 1)
    if not shared:
        alpha_shape[channel_axis - 1] = shape[1]
    alpha = layer.blobs[0].reshape(alpha_shape)
    return [Step(keras.layers.PReLU(shared_axes=shared_axes or None, name=name_of(layer)),
                 [float32(alpha)])]


@converter("ELU")
def elu(layer, ctx):
    return [Step(keras.layers.ELU(alpha=layer.param.elu_param.alpha, name=name_of(layer)))]


def _activation(function: str):
    def convert(layer, ctx):
        return [Step(keras.layers.Activation(function, name=name_of(layer)))]
    return convert


converter("Sigmoid")(_activation("sigmoid"))
converter("TanH")(_activation("tanh"))
# Caffe's BNLL, log(1 + e^x) computed stably, is the softplus function.
converter("BNLL")(_activation("softplus"))


@converter("AbsVal")
def absval(layer, ctx):
    return [Step(custom_layers.AbsVal(name=name_of(layer)))]


@converter("Power")
def power(layer, ctx):
    p = layer.param.power_param
    finite(layer, p, "power", "scale", "shift")
    return [Step(custom_layers.Power(power=p.power, scale=p.scale, shift=p.shift, name=name_of(layer)))]


@converter("Exp")
def exp(layer, ctx):
    p = layer.param.exp_param
    finite(layer, p, "base", "scale", "shift")
    try:  # the layer precomputes base^shift
        return [Step(custom_layers.Exp(base=p.base, scale=p.scale, shift=p.shift,
                                       name=name_of(layer)))]
    except OverflowError:
        raise StructureError(f"layer {layer.name!r} (Exp): base {p.base} to the power shift "
                             f"{p.shift} overflows") from None


@converter("Log")
def log(layer, ctx):
    p = layer.param.log_param
    finite(layer, p, "base", "scale", "shift")
    return [Step(custom_layers.Log(base=p.base, scale=p.scale, shift=p.shift, name=name_of(layer)))]


@converter("Threshold")
def threshold(layer, ctx):
    finite(layer, layer.param.threshold_param, "threshold")
    return [Step(custom_layers.Threshold(threshold=layer.param.threshold_param.threshold,
                                         name=name_of(layer)))]


@converter("Softmax")
def softmax(layer, ctx):
    axis = ctx.keras_axis(layer.param.softmax_param.axis)
    return [Step(keras.layers.Softmax(axis=axis, name=name_of(layer)))]
