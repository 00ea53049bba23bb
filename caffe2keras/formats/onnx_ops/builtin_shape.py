"""Flatten, Reshape, Permute, and the layers that are the identity at inference.

Flatten and Reshape order elements the Keras way, so they take the Keras layout. Permute
composes its axes with the layout the input is stored in: Permute((3, 1, 2)) of a value
held channels-first, as the converters emit to reorder a blob like Caffe, needs no node.
"""

from __future__ import annotations

import numpy as np
from keras import layers

from .registry import lowering

_TO_KERAS = (0, 2, 3, 1)  # channels-first value -> Keras layout
_TO_NCHW = (0, 3, 1, 2)


@lowering(layers.Flatten)
def flatten(layer, g, inputs, outputs):
    rank = len(inputs[0].shape)
    if layer.data_format == "channels_first" and rank > 2:
        # Keras moves the channels last before flattening
        perm = [0, *range(2, rank), 1]
        x = g.op("Transpose", g.value(inputs[0], "keras"), perm=perm)
    else:
        x = g.value(inputs[0], "keras")
    g.set(outputs[0], g.op("Flatten", x, axis=1), "keras")


@lowering(layers.Reshape)
def reshape(layer, g, inputs, outputs):
    x = g.value(inputs[0], "keras")
    # 0 keeps the batch size; the other sizes are static
    shape = [0] + [-1 if size is None else size for size in outputs[0].shape[1:]]
    g.set(outputs[0], g.op("Reshape", x, g.const(np.array(shape, np.int64))), "keras")


@lowering(layers.Permute)
def permute(layer, g, inputs, outputs):
    stored = g.layout(inputs[0])
    x = g.value(inputs[0], "any")
    wanted = [0, *layer.dims]  # of the input's Keras layout
    # the Keras input is the stored value transposed by to_keras
    to_keras = _TO_KERAS if stored == "nchw" else tuple(range(len(wanted)))
    keras_perm = [to_keras[axis] for axis in wanted]  # of the stored value
    candidates = [("keras", keras_perm)]
    if len(wanted) == 4:
        candidates.append(("nchw", [keras_perm[axis] for axis in _TO_NCHW]))
    for layout, perm in candidates:
        if perm == sorted(perm):  # the data is already in that order
            g.set(outputs[0], x, layout)
            return
    g.set(outputs[0], g.op("Transpose", x, perm=keras_perm), "keras")


def identity(layer, g, inputs, outputs):
    g.set(outputs[0], g.value(inputs[0], "any"), g.layout(inputs[0]))


# Training-only layers: the identity at inference.
lowering(layers.Identity, layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
         layers.GaussianNoise, layers.GaussianDropout, layers.AlphaDropout,
         layers.ActivityRegularization)(identity)
