"""LRN, Normalize and MVN.

LRN works channels-first (ONNX's LRN and AveragePool want it); Normalize and MVN reduce
over their axes wherever the input is stored."""

from __future__ import annotations

from .custom_common import broadcast_param, f32, reduce, stored_axes, stored_axis
from .registry import lowering


@lowering("LRN")
def lrn(layer, g, inputs, outputs):
    n = layer.local_size
    x = g.value(inputs[0], "nchw")
    if layer.norm_region == "across_channels":
        # Caffe: x * (k + alpha/n * sum_{n channels} x^2)^-beta, channels zero-padded,
        # (n - 1) / 2 before and the rest after. ONNX's own LRN op states the same formula, but
        # OpenVINO's ONNX frontend computes it otherwise (0.22 off for n = 3), so the window
        # mean is an AveragePool over the channel axis of (N, 1, C, H*W), padding counted.
        _, height, width, channels = g.shape(inputs[0])
        before = (n - 1) // 2
        squares = g.op("Reshape", g.op("Mul", x, x), g.const([0, 1, channels, -1], "int64"))
        mean = g.op("AveragePool", squares, kernel_shape=[n, 1],
                    pads=[before, 0, n - 1 - before, 0], count_include_pad=1)
        mean = g.op("Reshape", mean, g.const([0, channels, height, width], "int64"))
        scale = g.op("Add", f32(g, layer.k), g.op("Mul", f32(g, layer.alpha), mean))
        y = g.op("Mul", x, g.op("Pow", scale, f32(g, -layer.beta)))
    else:
        # Caffe: x * (1 + alpha/n^2 * sum_{n x n window} x^2)^-beta, zero-padded, always
        # n^2 in the divisor: the window mean (padding counted) is sum / n^2.
        radius = (n - 1) // 2
        mean = g.op("AveragePool", g.op("Mul", x, x), kernel_shape=[n, n],
                    pads=[radius] * 4, count_include_pad=1)
        scale = g.op("Add", f32(g, 1.0), g.op("Mul", f32(g, layer.alpha), mean))
        y = g.op("Mul", x, g.op("Pow", scale, f32(g, -layer.beta)))
    g.set(outputs[0], y, "nchw")


@lowering("Normalize")
def normalize(layer, g, inputs, outputs):
    """across_spatial: y = x * (1 / sqrt(sum_{c,h,w} x^2 + eps)) * s; else
    y = x / sqrt(sum_c x^2 + eps) * s (s one value or one per channel)."""
    x_tensor = inputs[0]
    rank, layout = len(g.shape(x_tensor)), g.layout(x_tensor)
    x = g.value(x_tensor, "any")
    squares = g.op("Mul", x, x)
    if layer.across_spatial:
        total = reduce(g, "ReduceSum", squares, range(1, rank))
        norm = g.op("Sqrt", g.op("Add", total, f32(g, layer.eps)))
        y = g.op("Mul", x, g.op("Div", f32(g, 1.0), norm))
    else:
        total = reduce(g, "ReduceSum", squares, [stored_axis(g, x_tensor, layer._axis)])
        y = g.op("Div", x, g.op("Sqrt", g.op("Add", total, f32(g, layer.eps))))
    scale = layer.get_weights()[0]
    if layer.channel_shared:
        factor = f32(g, scale[0])
    else:
        factor = broadcast_param(g, scale, [layer._axis], rank, layout)
    g.set(outputs[0], g.op("Mul", y, factor), layout)


@lowering("MVN")
def mvn(layer, g, inputs, outputs):
    """y = x - mean; with normalize_variance y / (sqrt(mean(y^2)) + eps), means over the
    layer's axes (none: each value alone, so y = x - x)."""
    x_tensor = inputs[0]
    axes = stored_axes(g, x_tensor, layer.axes)

    def mean(value):
        return reduce(g, "ReduceMean", value, axes) if axes else value

    x = g.value(x_tensor, "any")
    centred = g.op("Sub", x, mean(x))
    if layer.normalize_variance:
        std = g.op("Sqrt", mean(g.op("Mul", centred, centred)))
        centred = g.op("Div", centred, g.op("Add", std, f32(g, layer.eps)))
    g.set(outputs[0], centred, g.layout(x_tensor))
