"""CaffePooling2D, channels-first, as its layer computes it: crop what no window reaches, pad
(-FLT_MAX for MAX, zeros for AVE), 'valid' pooling, and for AVE the layer's constant map
``k_h*k_w / divisor`` (Caffe's divisor counts symmetric padding, not the ceil overhang).

The padding is an explicit Pad rather than the pooling's ``pads``: a window that lies wholly
in the padding must give Caffe's -FLT_MAX (MAX) or NaN (AVE), which the runtimes' own
padding does not promise."""

from __future__ import annotations

import numpy as np

from .custom_common import f32, i64
from .registry import lowering

FLT_MAX = float(np.finfo(np.float32).max)


def padded_nchw(layer, g, x: str, filler: float) -> str:
    """The layer's plan, made when it was built: crop (negative padding after an axis) or pad
    with ``filler`` so that 'valid' windows are Caffe's (CaffePooling2D and
    CaffeMaxPoolingWithMask)."""
    after_h, after_w = layer._pad_after
    if after_h < 0 or after_w < 0:
        ends = [after_h if after_h < 0 else np.iinfo(np.int64).max,
                after_w if after_w < 0 else np.iinfo(np.int64).max]
        x = g.op("Slice", x, i64(g, [0, 0]), i64(g, ends), i64(g, [2, 3]))
    pads = [0, 0, layer.pad[0], layer.pad[1], 0, 0, max(after_h, 0), max(after_w, 0)]
    if any(pads):
        x = g.op("Pad", x, i64(g, pads), f32(g, filler), mode="constant")
    return x


@lowering("CaffePooling2D")
def caffe_pooling(layer, g, inputs, outputs):
    # for AVE, the layer's (1, H_out, W_out, 1) map turns the 'valid' mean into Caffe's average
    x = padded_nchw(layer, g, g.value(inputs[0], "nchw"), -FLT_MAX if layer.pool == "max" else 0.0)
    window = dict(kernel_shape=list(layer.kernel), strides=list(layer.stride))
    if layer.pool == "max":
        y = g.op("MaxPool", x, **window)
    else:
        mean = g.op("AveragePool", x, **window)
        factor = layer._ave_factor.transpose(0, 3, 1, 2)[0]  # (1, H, W, 1) -> (1, H, W)
        y = g.op("Mul", mean, g.const(factor))
    g.set(outputs[0], y, "nchw")
