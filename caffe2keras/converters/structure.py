"""Layers that move values around: Split, Silence, Dropout, Flatten."""

from __future__ import annotations

from ..lazy import keras
from ..registry import Step, converter
from .common import caffe_order_reshape, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Dropout", "Identity", "Permute", "Reshape")


@converter("Split", "Silence")
def passthrough(layer, ctx):
    """Split's tops are its bottom; Silence has no tops. Neither needs a Keras layer."""
    return []


@converter("Dropout")
def dropout(layer, ctx):
    p = layer.param.dropout_param
    if not 0 <= p.dropout_ratio < 1:
        # Keras refuses such a rate; Caffe's TEST phase copies the input whatever the ratio.
        ctx.net.warn(f"layer {layer.name!r} (Dropout): dropout_ratio {p.dropout_ratio} is not in "
                     "[0, 1); converted as an identity, which is what Caffe computes at inference")
        return [Step(keras.layers.Identity(name=name_of(layer)))]
    # Kept as a real Dropout so that fine-tuning drops units like Caffe training; identity at inference.
    return [Step(keras.layers.Dropout(rate=p.dropout_ratio, name=name_of(layer)))]


@converter("Flatten")
def flatten(layer, ctx):
    in_shape, out_shape = ctx.bottom_shapes[0], ctx.top_shapes[0]
    if tuple(in_shape) == tuple(out_shape):
        return [Step(keras.layers.Identity(name=name_of(layer)))]
    return caffe_order_reshape(layer, in_shape, out_shape, name_of(layer))
