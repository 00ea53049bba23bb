"""Layers that move values around: Split, Silence, Dropout, Flatten."""

from __future__ import annotations

from ..lazy import keras
from ..registry import Step, converter
from .common import caffe_order_reshape, name_of


@converter("Split", "Silence")
def passthrough(layer, ctx):
    """Split's tops are its bottom; Silence has no tops. Neither needs a Keras layer."""
    return []


@converter("Dropout")
def dropout(layer, ctx):
    p = layer.param.dropout_param
    # Kept as a real Dropout so that fine-tuning drops units like Caffe training; identity at inference.
    return [Step(keras.layers.Dropout(rate=p.dropout_ratio, name=name_of(layer)))]


@converter("Flatten")
def flatten(layer, ctx):
    in_shape, out_shape = ctx.bottom_shapes[0], ctx.top_shapes[0]
    if tuple(in_shape) == tuple(out_shape):
        return [Step(keras.layers.Identity(name=name_of(layer)))]
    return caffe_order_reshape(layer, in_shape, out_shape, name_of(layer))
