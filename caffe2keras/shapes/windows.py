"""Shape rules of Im2col, SPP and Parameter."""

from __future__ import annotations

import math

from .conv import conv_output_size, conv_window, pool_clip, pool_output_size
from .registry import blob_rule, expect_bottoms, expect_ndim, layer_error, shape_rule, sub_param


def im2col_geometry(layer, bottom):
    """(channel axis, kernel, stride, pad, dilation, output size), per spatial axis, of an
    Im2col layer: Convolution's fields without num_output."""
    axis, kernel, stride, pad, dilation = conv_window(layer, bottom)
    out = []
    for size, k, s, p, d in zip(bottom[axis + 1:], kernel, stride, pad, dilation):
        if size + 2 * p < d * (k - 1) + 1:
            raise layer_error(layer, f"the window does not fit the input {tuple(bottom)}")
        out.append(conv_output_size(size, k, s, p, d))
    return axis, kernel, stride, pad, dilation, tuple(out)


@shape_rule("Im2col")
def _im2col(layer, bottoms):
    """(N, C*k_h*k_w, H_out, W_out): each output pixel's window, channel-major."""
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    axis, kernel, _, _, _, out = im2col_geometry(layer, bottom)
    return [bottom[:axis] + (bottom[axis] * math.prod(kernel),) + out]


def spp_levels(layer, bottom):
    """[(kernel, stride, pad, output)] per pyramid level, each a (h, w) pair: level i pools
    with kernel ceil(L / 2^i), stride = kernel, pad (kernel * 2^i - L + 1) // 2 and Caffe's
    ceil rounding (spp_layer.cpp's GetPoolingParam)."""
    height = sub_param(layer, "spp_param").pyramid_height
    if height < 1:
        raise layer_error(layer, "pyramid_height must be at least 1")
    levels = []
    for level in range(height):
        bins = 2 ** level
        kernel, pad, out = [], [], []
        for size in bottom[2:]:
            k = -(-size // bins)
            p = (k * bins - size + 1) // 2
            if p >= k:
                raise layer_error(layer, f"level {level} pads {p} >= its kernel {k} on an input "
                                         f"of {size}: Caffe's pooling refuses it")
            o = pool_clip(pool_output_size(size, k, k, p, True), size, k, p)
            kernel.append(k)
            pad.append(p)
            out.append(o)
        levels.append((tuple(kernel), tuple(kernel), tuple(pad), tuple(out)))
    return levels


@shape_rule("SPP")
def _spp(layer, bottoms):
    """One level: its pooling's (N, C, h, w); more: the levels flattened and concatenated."""
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    expect_ndim(layer, bottom, 4)
    levels = spp_levels(layer, bottom)
    if len(levels) == 1:
        return [bottom[:2] + levels[0][3]]
    return [(bottom[0], sum(bottom[1] * out[0] * out[1] for *_, out in levels))]


def _parameter_shape(layer):
    shape = tuple(sub_param(layer, "parameter_param").shape.dim)
    if not shape:
        raise layer_error(layer, "parameter_param.shape has no dimensions")
    return shape


@shape_rule("Parameter")
def _parameter(layer, bottoms):
    expect_bottoms(layer, bottoms, 0)
    return [_parameter_shape(layer)]


@blob_rule("Parameter")
def _parameter_blobs(layer, bottoms):
    return [_parameter_shape(layer)]
