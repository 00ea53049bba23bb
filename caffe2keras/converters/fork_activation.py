"""Activations of the converter fork (HardSwish, HardSigmoid) and of later Caffes (Clip, Swish, Mish).

Formulas from each layer's C++ ``Forward_cpu``:

* HardSwish: ``y = x * max(0, min(1, x / 6 + 0.5))``: Keras' ``hard_silu``,
  ``x * relu6(x + 3) / 6``, the same function (round-off apart).
* HardSigmoid: ``y = max(0, min(1, x * alpha + beta))``: a Power (``x * alpha + beta``, in
  that order) then a ReLU capped at 1.
* Clip (BVLC): ``y = max(min, min(x, max))``.
* Swish (BVLC): ``y = x * sigmoid(beta * x)``; Keras' ``silu`` when beta is 1.
* Mish (the Caffe forks' ``mish_layer.cpp``): ``y = x * tanh(log(1 + exp(x)))``: Keras'
  ``mish``, ``x * tanh(softplus(x))`` (softplus computed without overflow; equal in float32).
"""

from __future__ import annotations

from ..lazy import custom_layers, keras
from ..registry import Step, converter
from .common import finite, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Activation", "Clip", "Power", "ReLU", "Swish")


@converter("HardSwish")
def hard_swish(layer, ctx):
    return [Step(keras.layers.Activation("hard_silu", name=name_of(layer)))]


@converter("HardSigmoid")
def hard_sigmoid(layer, ctx):
    p = layer.param.hardsigmoid_param
    finite(layer, p, "alpha", "beta")
    return [Step(custom_layers.Power(power=1.0, scale=p.alpha, shift=p.beta,
                                     name=name_of(layer, "affine"))),
            Step(keras.layers.ReLU(max_value=1.0, name=name_of(layer)))]


@converter("Clip")
def clip(layer, ctx):
    p = layer.param.clip_param
    finite(layer, p, "min", "max")
    return [Step(custom_layers.Clip(min=p.min, max=p.max, name=name_of(layer)))]


@converter("Swish")
def swish(layer, ctx):
    p = layer.param.swish_param
    finite(layer, p, "beta")
    if p.beta == 1:
        return [Step(keras.layers.Activation("silu", name=name_of(layer)))]
    return [Step(custom_layers.Swish(beta=p.beta, name=name_of(layer)))]


@converter("Mish")
def mish(layer, ctx):
    return [Step(keras.layers.Activation("mish", name=name_of(layer)))]
