"""Deconvolution -> Conv2DTranspose (or GroupedConv2DTranspose), then Cropping2D for Caffe's pad.

Caffe: full output ``s(H - 1) + d(k - 1) + 1`` per axis (col2im of W^T x), then ``pad`` rows and
columns dropped on each side. Keras: a 'valid' transposed convolution with ``output_padding=0``
gives the same full output (without it Keras makes ``H*s`` when k < s), then Cropping2D. The blob
(C_in, C_out/g, kh, kw) becomes the kernel (kh, kw, C_out/g, C_in) by ``transpose(2, 3, 1, 0)``,
no flip, for both layers.
"""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..registry import Step, converter
from ..shapes.conv import conv_geometry
from .common import float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Conv2DTranspose", "Cropping2D", "GroupedConv2DTranspose")


@converter("Deconvolution")
def deconvolution(layer, ctx):
    bottom = ctx.bottom_shapes[0]
    g = conv_geometry(layer, bottom)
    if len(bottom) != 4 or g.channel_axis != 1:
        raise StructureError(f"layer {layer.name!r} (Deconvolution): only 2-D deconvolution on "
                             f"N,C,H,W blobs converts, got input {bottom}")
    if len(layer.bottoms) != 1:
        raise StructureError(f"layer {layer.name!r} (Deconvolution): several bottoms sharing one "
                             "filter bank do not convert; split it into one layer per bottom")
    kernel = float32(layer.blobs[0].transpose(2, 3, 1, 0))  # (kh, kw, C_out / group, C_in)
    bias = [float32(layer.blobs[1])] if g.bias_term else []
    cropped = g.pad != (0, 0)
    # The layer that holds the weights gives the top unless a crop follows it.
    deconv_name = name_of(layer, "deconv") if cropped else name_of(layer)
    if g.group == 1 and (max(g.stride) == 1 or max(g.dilation) == 1):
        deconv = keras.layers.Conv2DTranspose(
            filters=g.num_output, kernel_size=g.kernel, strides=g.stride, padding="valid",
            output_padding=0, dilation_rate=g.dilation, use_bias=g.bias_term, name=deconv_name)
    else:
        # Keras' layer has no groups (FCN's bilinear upsampling uses group = channels) and
        # refuses dilation with stride.
        deconv = custom_layers.GroupedConv2DTranspose(
            filters=g.num_output, kernel_size=g.kernel, strides=g.stride,
            dilation_rate=g.dilation, groups=g.group, use_bias=g.bias_term, name=deconv_name)
    steps = [Step(deconv, [kernel] + bias)]
    if cropped:
        (pad_h, pad_w) = g.pad
        steps.append(Step(keras.layers.Cropping2D(((pad_h, pad_h), (pad_w, pad_w)),
                                                  name=name_of(layer))))
    return steps
