"""Convolution -> Conv2D / DepthwiseConv2D (with ZeroPadding2D for Caffe's symmetric pad)."""

from __future__ import annotations

import numpy as np

from ..errors import StructureError
from ..lazy import keras
from ..registry import Step, converter
from ..shapes.conv import conv_geometry
from .common import float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Conv2D", "DepthwiseConv2D", "MaxPooling2D", "ZeroPadding2D")


def _require_2d(layer, geometry, bottom_shape):
    if len(bottom_shape) != 4 or geometry.channel_axis != 1:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): only 2-D convolution on "
                             f"N,C,H,W blobs converts, got input {bottom_shape}")


def _padding_step(layer, pad):
    if pad == (0, 0):
        return []
    return [Step(keras.layers.ZeroPadding2D(padding=pad, name=name_of(layer, "pad")))]


@converter("Convolution")
def convolution(layer, ctx):
    bottom = ctx.bottom_shapes[0]
    g = conv_geometry(layer, bottom)
    _require_2d(layer, g, bottom)
    if len(layer.bottoms) != 1:
        raise StructureError(f"layer {layer.name!r} (Convolution): several bottoms sharing one "
                             "filter bank do not convert; split it into one layer per bottom")
    # Keras refuses dilation with stride: convolve with stride 1, then keep every s-th pixel
    # (a 1x1 max pooling with stride s). floor((L1 - 1) / s) + 1 with L1 = H + 2p - d(k-1) is
    # Caffe's floor((H + 2p - d(k-1) - 1) / s) + 1.
    subsample = max(g.dilation) > 1 and max(g.stride) > 1
    strides = (1, 1) if subsample else g.stride
    conv_name = name_of(layer, "dilated") if subsample else name_of(layer)
    weights = layer.blobs[0]  # (C_out, C_in / group, kh, kw)
    kernel = weights.transpose(2, 3, 1, 0)  # HWIO; Caffe and Keras both correlate: no flip
    bias = [float32(layer.blobs[1])] if g.bias_term else []
    depthwise = g.group > 1 and g.group == g.channels and g.num_output == g.channels
    if depthwise:
        # DepthwiseConv2D wants (kh, kw, C, 1): one filter per input channel.
        conv = keras.layers.DepthwiseConv2D(
            kernel_size=g.kernel, strides=strides, padding="valid", dilation_rate=g.dilation,
            use_bias=g.bias_term, name=conv_name)
        kernel = weights[:, 0].transpose(1, 2, 0)[..., np.newaxis]
    else:
        conv = keras.layers.Conv2D(
            filters=g.num_output, kernel_size=g.kernel, strides=strides, padding="valid",
            dilation_rate=g.dilation, groups=g.group, use_bias=g.bias_term, name=conv_name)
    steps = _padding_step(layer, g.pad) + [Step(conv, [float32(kernel)] + bias)]
    if subsample:
        steps.append(Step(keras.layers.MaxPooling2D(pool_size=1, strides=g.stride, padding="valid",
                                                    name=name_of(layer))))
    return steps
