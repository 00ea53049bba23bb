"""InnerProduct -> Dense, flattening in Caffe's order."""

from __future__ import annotations

import math

from ..errors import StructureError
from ..lazy import keras
from ..registry import Step, converter
from ..shapes.registry import canonical_axis
from .common import float32, name_of


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
        weights = weights.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(features, -1)
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
