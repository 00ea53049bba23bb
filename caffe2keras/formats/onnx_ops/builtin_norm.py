"""BatchNormalization at inference, the way TensorFlow's batch_normalization computes it:
inv = gamma / sqrt(var + eps), y = x * inv + (beta - mean * inv); the two per-channel
vectors are formed in float32 like TensorFlow's, and laid along the channel axis of
whatever layout the value is stored in."""

from __future__ import annotations

import numpy as np
from keras import layers

from .graph import to_numpy
from .registry import lowering


@lowering(layers.BatchNormalization)
def batch_normalization(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    layout = g.layout(inputs[0])
    rank = len(inputs[0].shape)
    mean = to_numpy(layer.moving_mean).astype(np.float32)
    variance = to_numpy(layer.moving_variance).astype(np.float32)
    inv = (np.float32(1) / np.sqrt(variance + np.float32(layer.epsilon))).astype(np.float32)
    if layer.scale:
        inv = inv * to_numpy(layer.gamma)
    shift = -mean * inv
    if layer.center:
        shift = to_numpy(layer.beta) + shift
    y = g.op("Mul", x, g.axis_const(inv, layer.axis, rank, layout))
    y = g.op("Add", y, g.axis_const(shift, layer.axis, rank, layout))
    g.set(outputs[0], y, layout)
