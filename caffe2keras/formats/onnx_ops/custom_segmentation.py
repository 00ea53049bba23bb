"""CaffeMaxPoolingWithMask and MaxUnpool2D, channels-first, as their layers compute them.

Pooling with its mask: the input cropped/padded with -FLT_MAX as CaffePooling2D's, then one
strided Slice per window offset in Caffe's scan order, each taken where strictly greater than
the best so far (Greater, Where), its flat input index with it. Unpooling: input and mask
repeated ``stride`` times per axis (Unsqueeze, Expand, Reshape: exact copies), padded, cut to
the output and kept where the mask equals the pixel's own index (Equal, Where)."""

from __future__ import annotations

import numpy as np

from .custom_common import f32, i64, unsqueeze
from .custom_pooling import FLT_MAX, padded_nchw
from .registry import lowering


@lowering("CaffeMaxPoolingWithMask")
def max_pooling_with_mask(layer, g, inputs, outputs):
    x = padded_nchw(layer, g, g.value(inputs[0], "nchw"), -FLT_MAX)
    (oh, ow), (sh, sw) = layer.output_size, layer.stride
    best, mask = f32(g, -FLT_MAX), f32(g, -1.0)
    for dy, dx, index in layer.offset_plan():
        value = g.op("Slice", x, i64(g, [dy, dx]), i64(g, [dy + (oh - 1) * sh + 1,
                                                          dx + (ow - 1) * sw + 1]),
                     i64(g, [2, 3]), i64(g, [sh, sw]))
        take = g.op("Greater", value, best)
        best = g.op("Where", take, value, best)
        mask = g.op("Where", take, g.const(index[None, None]), mask)
    g.set(outputs[0], best, "nchw")
    g.set(outputs[1], mask, "nchw")


def _spread(layer, g, t: str, fill: float) -> str:
    """``layer._spread`` in NCHW: repeat each pixel stride_h x stride_w times, pad, cut."""
    (sh, sw), (height, width) = layer.stride, layer.output_size
    h, w = layer.input_size
    t = g.op("Expand", unsqueeze(g, t, [3, 5]), i64(g, [1, 1, 1, sh, 1, sw]))
    t = g.op("Reshape", t, i64(g, [0, 0, h * sh, w * sw]))
    (start_h, after_h), (start_w, after_w) = layer._plans
    if after_h or after_w:
        t = g.op("Pad", t, i64(g, [0, 0, 0, 0, 0, 0, after_h, after_w]), f32(g, fill),
                 mode="constant")
    return g.op("Slice", t, i64(g, [start_h, start_w]),
                i64(g, [start_h + height, start_w + width]), i64(g, [2, 3]))


@lowering("MaxUnpool2D")
def max_unpool(layer, g, inputs, outputs):
    x = _spread(layer, g, g.value(inputs[0], "nchw"), 0.0)
    mask = _spread(layer, g, g.value(inputs[1], "nchw"), -1.0)
    positions = layer.positions().transpose(0, 3, 1, 2)
    hit = g.op("Equal", mask, g.const(np.ascontiguousarray(positions)))
    g.set(outputs[0], g.op("Where", hit, x, f32(g, 0.0)), "nchw")
