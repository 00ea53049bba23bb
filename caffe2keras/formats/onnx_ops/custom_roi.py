"""ROIPooling and PSROIPooling (caffe2keras.layers.roi), computed as the layers do:
each ROI's image gathered, bin masks from the rounded box, a masked max or sum per bin."""

from __future__ import annotations

import numpy as np

from .custom_common import BOOL, FLOAT, INT64, f32, i64, reduce, scalar_i64, unsqueeze
from .registry import lowering

_LOWEST = float(np.finfo(np.float32).min)  # -FLT_MAX, as in the layers


def _column(g, rois: str, k: int) -> str:
    return g.op("Gather", rois, scalar_i64(g, k), axis=1)


def _c_round(g, x: str) -> str:
    """half away from zero, as the layers compute it"""
    zero = f32(g, 0.0)
    up = g.op("Floor", g.op("Add", g.op("Max", x, zero), f32(g, 0.5)))
    down = g.op("Ceil", g.op("Add", g.op("Min", x, zero), f32(g, -0.5)))
    return g.op("Add", up, down)


def _bin_masks(g, start: str, size: str, pooled: int, extent: int, start_inside: bool):
    """(R, pooled, extent) bool masks and (R, pooled) bin lengths, as layers.roi._bin_masks."""
    p = g.const(np.arange(pooled, dtype=np.float32))
    p1 = g.const(np.arange(1, pooled + 1, dtype=np.float32))
    bin_size = unsqueeze(g, g.op("Div", size, f32(g, float(pooled))), [1])
    start = unsqueeze(g, start, [1])
    if start_inside:
        low = g.op("Floor", g.op("Add", g.op("Mul", p, bin_size), start))
        high = g.op("Ceil", g.op("Add", g.op("Mul", p1, bin_size), start))
    else:
        low = g.op("Add", g.op("Floor", g.op("Mul", p, bin_size)), start)
        high = g.op("Add", g.op("Ceil", g.op("Mul", p1, bin_size)), start)
    low = g.op("Clip", low, f32(g, 0.0), f32(g, float(extent)))
    high = g.op("Clip", high, f32(g, 0.0), f32(g, float(extent)))
    i = g.const(np.arange(extent, dtype=np.float32).reshape(1, 1, extent))
    inside = g.op("And", g.op("GreaterOrEqual", i, unsqueeze(g, low, [2])),
                  g.op("Less", i, unsqueeze(g, high, [2])))
    return inside, g.op("Sub", high, low)


def _maps_and_rois(g, inputs):
    """Each ROI's feature map (R, H, W, C) and the float rois (R, 5)."""
    features, rois_tensor = inputs
    rois = g.op("Cast", g.value(rois_tensor, "keras"), to=FLOAT)
    index = g.op("Cast", _column(g, rois, 0), to=INT64)
    maps = g.op("Gather", g.value(features, "keras"), index, axis=0)
    return maps, rois, tuple(features.shape[1:4])


def _row(g, mask: str, k: int, shape) -> str:
    return g.op("Reshape", g.op("Gather", mask, scalar_i64(g, k), axis=1), i64(g, shape))


def _stacked(g, parts: list[str]) -> str:
    return g.op("Concat", *[unsqueeze(g, part, [1]) for part in parts], axis=1)


@lowering("ROIPooling")
def roi_pooling(layer, g, inputs, outputs):
    maps, rois, (height, width, channels) = _maps_and_rois(g, inputs)
    scale = f32(g, layer.spatial_scale)
    x1, y1, x2, y2 = (_c_round(g, g.op("Mul", _column(g, rois, k), scale)) for k in (1, 2, 3, 4))

    def size(start, end):
        return g.op("Max", g.op("Add", g.op("Sub", end, start), f32(g, 1.0)), f32(g, 1.0))

    rows, _ = _bin_masks(g, y1, size(y1, y2), layer.pooled_h, height, False)
    cols, _ = _bin_masks(g, x1, size(x1, x2), layer.pooled_w, width, False)
    lowest = f32(g, _LOWEST)
    pooled = []
    for ph in range(layer.pooled_h):
        masked = g.op("Where", _row(g, rows, ph, [-1, height, 1, 1]), maps, lowest)
        over_rows = reduce(g, "ReduceMax", masked, [1], keepdims=False)
        for pw in range(layer.pooled_w):
            masked = g.op("Where", _row(g, cols, pw, [-1, width, 1]), over_rows, lowest)
            pooled.append(reduce(g, "ReduceMax", masked, [1], keepdims=False))
    top = _stacked(g, pooled)

    def empty(mask, axis):
        return g.op("Not", g.op("Cast", reduce(g, "ReduceMax", g.op("Cast", mask, to=FLOAT),
                                                [2], keepdims=False), to=BOOL)), axis

    no_rows, no_cols = empty(rows, 2), empty(cols, 1)
    either = g.op("Or", unsqueeze(g, no_rows[0], [no_rows[1]]),
                  unsqueeze(g, no_cols[0], [no_cols[1]]))
    either = g.op("Reshape", either, i64(g, [-1, layer.pooled_h * layer.pooled_w, 1]))
    top = g.op("Where", either, f32(g, 0.0), top)
    g.set(outputs[0], g.op("Reshape", top, i64(g, [-1, layer.pooled_h, layer.pooled_w,
                                                   channels])), "keras")


@lowering("PSROIPooling")
def psroi_pooling(layer, g, inputs, outputs):
    maps, rois, (height, width, channels) = _maps_and_rois(g, inputs)
    groups, scale = layer.group_size, f32(g, layer.spatial_scale)
    x1, y1 = (g.op("Mul", _c_round(g, _column(g, rois, k)), scale) for k in (1, 2))
    x2, y2 = (g.op("Mul", g.op("Add", _c_round(g, _column(g, rois, k)), f32(g, 1.0)), scale)
              for k in (3, 4))

    def size(start, end):
        return g.op("Max", g.op("Sub", end, start), f32(g, 0.1))

    rows, row_len = _bin_masks(g, y1, size(y1, y2), groups, height, True)
    cols, col_len = _bin_masks(g, x1, size(x1, x2), groups, width, True)
    zero = f32(g, 0.0)
    area = g.op("Mul", unsqueeze(g, g.op("Max", row_len, zero), [2]),
                unsqueeze(g, g.op("Max", col_len, zero), [1]))
    pooled = []
    for ph in range(groups):
        row = g.op("Cast", _row(g, rows, ph, [-1, height, 1, 1]), to=FLOAT)
        over_rows = reduce(g, "ReduceSum", g.op("Mul", row, maps), [1], keepdims=False)
        for pw in range(groups):
            col = g.op("Cast", _row(g, cols, pw, [-1, width, 1]), to=FLOAT)
            total = reduce(g, "ReduceSum", g.op("Mul", col, over_rows), [1], keepdims=False)
            pooled.append(g.op("Slice", total, i64(g, [ph * groups + pw]), i64(g, [channels]),
                               i64(g, [1]), i64(g, [groups * groups])))
    top = g.op("Reshape", _stacked(g, pooled), i64(g, [-1, groups, groups, layer.output_dim]))
    area = unsqueeze(g, area, [3])
    mean = g.op("Div", top, g.op("Max", area, f32(g, 1.0)))
    g.set(outputs[0], g.op("Where", g.op("Greater", area, zero), mean, zero), "keras")
