"""Conv2D, DepthwiseConv2D, Conv2DTranspose and Dense.

Kernels: Keras keeps Conv2D's as (kh, kw, I/groups, O), ONNX's Conv wants (O, I/groups, kh, kw);
DepthwiseConv2D's (kh, kw, C, M) is a grouped Conv with C groups whose output channel
c*M + m is filter (c, m); Conv2DTranspose's (kh, kw, O, I) becomes ConvTranspose's
(I, O, kh, kw). Dense's (K, N) kernel is already MatMul's / Gemm's B: no copy.
"""

from __future__ import annotations

import math

from keras import layers

from .builtin_activation import activation_of, apply_activation
from .graph import to_numpy
from .registry import lowering


def spatial_input(g, layer, tensor):
    """A 4-D input of a layer with ``data_format`` as a channels-first ONNX value, and the
    layout that names its output: "nchw" for channels_last layers (the usual), "keras"
    when the Keras tensor is channels-first already."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return g.value(tensor, "keras"), "keras"
    return g.value(tensor, "nchw"), "nchw"


def spatial_size(layer, tensor) -> tuple[int, int]:
    shape = tensor.shape
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return tuple(shape[2:4])
    return tuple(shape[1:3])


def window_pads(padding: str, size, kernel, strides, dilation=(1, 1)) -> list[int]:
    """ONNX pads (begins, then ends) for Keras' 'valid' or 'same' (TensorFlow's rule:
    out = ceil(in / s), the odd padding row or column at the end)."""
    if padding == "valid":
        return [0, 0, 0, 0]
    begins, ends = [], []
    for length, k, s, d in zip(size, kernel, strides, dilation):
        total = max((math.ceil(length / s) - 1) * s + (k - 1) * d + 1 - length, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _bias(g, layer):
    return g.const(to_numpy(layer.bias), name=f"{layer.name}/bias") if layer.use_bias else ""


def _finish(g, layer, y, layout, output):
    g.set(output, apply_activation(g, activation_of(layer), y, 4, layout), layout)


@lowering(layers.Conv2D)
def conv2d(layer, g, inputs, outputs):
    x, layout = spatial_input(g, layer, inputs[0])
    kernel = to_numpy(layer.kernel).transpose(3, 2, 0, 1)
    y = g.op("Conv", x, g.const(kernel, name=f"{layer.name}/kernel"), _bias(g, layer),
             kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
             dilations=list(layer.dilation_rate), group=layer.groups,
             pads=window_pads(layer.padding, spatial_size(layer, inputs[0]), layer.kernel_size,
                              layer.strides, layer.dilation_rate))
    _finish(g, layer, y, layout, outputs[0])


@lowering(layers.DepthwiseConv2D)
def depthwise_conv2d(layer, g, inputs, outputs):
    x, layout = spatial_input(g, layer, inputs[0])
    kh, kw, channels, multiplier = layer.kernel.shape
    kernel = to_numpy(layer.kernel).transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
    y = g.op("Conv", x, g.const(kernel, name=f"{layer.name}/kernel"), _bias(g, layer),
             kernel_shape=[kh, kw], strides=list(layer.strides),
             dilations=list(layer.dilation_rate), group=channels,
             pads=window_pads(layer.padding, spatial_size(layer, inputs[0]), (kh, kw),
                              layer.strides, layer.dilation_rate))
    _finish(g, layer, y, layout, outputs[0])


@lowering(layers.Conv2DTranspose)
def conv2d_transpose(layer, g, inputs, outputs):
    """The full transposed convolution is s(in - 1) + d(k - 1) + 1 long; Keras keeps
    ``out`` of it starting at the forward convolution's begin padding (0 for 'valid'), and
    appends zeros (bias only) when ``out`` reaches past its end."""
    x, layout = spatial_input(g, layer, inputs[0])
    size_in = spatial_size(layer, inputs[0])
    size_out = spatial_size(layer, outputs[0])
    begins, ends, extra = [], [], []
    for length, out, k, s, d in zip(size_in, size_out, layer.kernel_size, layer.strides,
                                    layer.dilation_rate):
        span = (k - 1) * d + 1
        full = s * (length - 1) + span
        begin = 0 if layer.padding == "valid" else max((length - 1) * s + span - out, 0) // 2
        end = full - begin - out
        begins.append(begin)
        ends.append(max(end, 0))
        extra.append(max(-end, 0))
    kernel = to_numpy(layer.kernel).transpose(3, 2, 0, 1)
    y = g.op("ConvTranspose", x, g.const(kernel, name=f"{layer.name}/kernel"), _bias(g, layer),
             kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
             dilations=list(layer.dilation_rate), pads=begins + ends,
             output_padding=extra if any(extra) else None)
    _finish(g, layer, y, layout, outputs[0])


@lowering(layers.Dense)
def dense(layer, g, inputs, outputs):
    x = g.value(inputs[0], "keras")
    kernel = g.const(to_numpy(layer.kernel), name=f"{layer.name}/kernel")
    rank = len(inputs[0].shape)
    if rank == 2:
        y = g.op("Gemm", x, kernel, _bias(g, layer))
    else:  # Dense works on the last axis of any rank
        y = g.op("MatMul", x, kernel)
        if layer.use_bias:
            y = g.op("Add", y, _bias(g, layer))
    g.set(outputs[0], apply_activation(g, activation_of(layer), y, rank, "keras"), "keras")
