"""Depthwise convolutions of the MobileNet forks, converted as the BVLC Convolution with
group = C that they equal.

caffe2keras.shapes.forks says how each fork reads convolution_param."""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import keras
from ..registry import converter
from ..shapes.forks import FARMINGYARD_DEPTHWISE, YONGHENGLH6_DEPTHWISE, as_convolution
from .conv import convolution

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("DepthwiseConv2D", "MaxPooling2D", "ZeroPadding2D")


@converter(FARMINGYARD_DEPTHWISE, YONGHENGLH6_DEPTHWISE)
def depthwise_convolution(layer, ctx):
    steps = convolution(as_convolution(layer, ctx.bottom_shapes[0]), ctx)
    # group = num_output = C: Convolution's converter emits one DepthwiseConv2D, after a
    # ZeroPadding2D for a pad and before a 1x1 MaxPooling2D for a dilated strided kernel.
    emitted = (keras.layers.DepthwiseConv2D, keras.layers.MaxPooling2D,
               keras.layers.ZeroPadding2D)
    for step in steps:
        if not isinstance(step.layer, emitted):
            raise StructureError(f"layer {layer.name!r} ({layer.type}): converted to an "
                                 f"unexpected {type(step.layer).__name__}")
    return steps
