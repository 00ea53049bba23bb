"""Layers that combine several bottoms: Eltwise and Concat."""

from __future__ import annotations

import math

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..proto import caffe_pb2
from ..registry import Step, converter
from .common import name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Add", "Concatenate", "Identity", "Maximum", "Multiply", "WeightedSum")

_ELTWISE = caffe_pb2.EltwiseParameter


@converter("Eltwise")
def eltwise(layer, ctx):
    p = layer.param.eltwise_param
    name = name_of(layer)
    if p.operation == _ELTWISE.PROD:
        return [Step(keras.layers.Multiply(name=name))]
    if p.operation == _ELTWISE.MAX:
        return [Step(keras.layers.Maximum(name=name))]
    coeff = list(p.coeff)
    if coeff and len(coeff) != len(layer.bottoms):
        raise StructureError(f"layer {layer.name!r} (Eltwise): {len(coeff)} coefficients for "
                             f"{len(layer.bottoms)} bottoms")
    if not all(math.isfinite(c) for c in coeff):
        raise StructureError(f"layer {layer.name!r} (Eltwise): coefficients {coeff} are not all "
                             "finite; only finite values convert")
    if not coeff or all(c == 1 for c in coeff):
        return [Step(keras.layers.Add(name=name))]
    return [Step(custom_layers.WeightedSum(coefficients=coeff, name=name))]


@converter("Concat")
def concat(layer, ctx):
    p = layer.param.concat_param
    caffe_axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    if len(layer.bottoms) == 1:
        return [Step(keras.layers.Identity(name=name_of(layer)))]
    return [Step(keras.layers.Concatenate(axis=ctx.keras_axis(caffe_axis), name=name_of(layer)))]
