"""InnerProduct -> Dense, flattening in Caffe's order."""

from __future__ import annotations

import math

import numpy as np

from ..errors import StructureError
from ..lazy import keras
from ..registry import Step, converter
from ..shapes.registry import canonical_axis
from .common import float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Dense", "Flatten", "Permute", "Reshape")


@converter("InnerProduct")
def inner_product(layer, ctx):
    p = layer.param.inner_product_param
    bottom = ctx.bottom_shapes[0]
    axis = canonical_axis(layer, p.axis, len(bottom))
    if axis == 0:
        raise StructureError(f"layer {layer.name!r} (InnerProduct): axis 0 folds the batch into "
                             "the features, which a Keras model with a free batch size cannot do")
    features = math.prod(bottom[axis:])
    weights = layer.blobs[0] if p.transpose else layer.blobs[0].T  # -> (K, N), Keras' layout
    steps = []
    if len(bottom) == 4 and axis == 1:
        # Keras flattens NHWC as H, W, C; Caffe flattens C, H, W. Reorder the weight rows
        # instead of the activations: row (c, h, w) moves to (h, w, c).
        c, h, w = bottom[1:]
        weights = _kernel_in_hwc_order(layer.blobs[0], p.transpose, c, h, w)
        steps.append(Step(keras.layers.Flatten(name=name_of(layer, "flatten"))))
    else:
        # Bring the blob into Caffe's axis order and merge the axes from `axis` on.
        if len(bottom) == 4:
            steps.append(Step(keras.layers.Permute((3, 1, 2), name=name_of(layer, "to_nchw"))))
        if len(bottom) - axis > 1:
            steps.append(Step(keras.layers.Reshape(tuple(bottom[1:axis]) + (features,),
                                                   name=name_of(layer, "flatten"))))
    bias = [float32(layer.blobs[1])] if p.bias_term else []
    # A 4-D result must come out NHWC like every 4-D blob; the permute then takes the name.
    nhwc_result = axis + 1 == 4
    dense = keras.layers.Dense(p.num_output, use_bias=p.bias_term,
                               name=name_of(layer, "dense") if nhwc_result else name_of(layer))
    steps.append(Step(dense, [float32(weights)] + bias))
    if nhwc_result:
        steps.append(Step(keras.layers.Permute((2, 3, 1), name=name_of(layer))))
    return steps


def _kernel_in_hwc_order(blob: np.ndarray, transposed: bool, c: int, h: int, w: int) -> np.ndarray:
    """Caffe's InnerProduct weights, (N, C*H*W) or with ``transpose`` (C*H*W, N), as the Keras
    kernel (H*W*C, N). Copied in blocks of 256 outputs: one big strided transpose is slow on
    VGG-size layers (fc6 is 411 MB)."""
    n = blob.shape[1] if transposed else blob.shape[0]
    out = np.empty((h, w, c, n), np.float32)
    if transposed:
        source = blob.reshape(c, h, w, n)
        for start in range(0, n, 256):
            out[..., start:start + 256] = source[..., start:start + 256].transpose(1, 2, 0, 3)
    else:
        source = blob.reshape(n, c, h, w)
        for start in range(0, n, 256):
            out[..., start:start + 256] = source[start:start + 256].transpose(2, 3, 1, 0)
    return out.reshape(h * w * c, n)
