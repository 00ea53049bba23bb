"""SSD's PriorBox and DetectionOutput (see caffe2keras/layers/detection.py for the layout).

PriorBox: the layer's constant priors, given the batch axis with Expand (the batch stays
dynamic). DetectionOutput follows the layer's ``call``: decode, per class the stably sorted
candidates above the confidence threshold cut to top_k, greedy NMS (``custom_nms``),
keep_top_k over the image, then the kept rows label-major and padding rows
``[i, -1, ..., -1]``. Every sort is made tie-exact on any runtime (``stable_smallest``, or
keys that cannot tie); the arithmetic is the layer's, operation for operation.
"""

from __future__ import annotations

import numpy as np

from .custom_common import (BOOL, FLOAT, INT64, batch_size, f32, i64, scalar_i64, squeeze,
                            unsqueeze)
from .custom_nms import greedy_nms, stable_smallest
from .registry import lowering


@lowering("PriorBox")
def prior_box(layer, g, inputs, outputs):
    """(batch, 2, L): the priors the layer computed when built, once per item."""
    priors = g.const(layer._priors[np.newaxis])  # (1, 2, L)
    shape = g.op("Concat", batch_size(g, g.value(inputs[0], "any")), i64(g, [1, 1]), axis=0)
    g.set(outputs[0], g.op("Expand", priors, shape), "keras")


def _coordinate(g, x: str, i: int) -> str:
    """x[..., i] of a (..., 4) value."""
    return g.op("Gather", x, scalar_i64(g, i), axis=-1)


def _decode(layer, g, loc: str, prior: str, variance: str) -> list[str]:
    """Caffe's DecodeBBox: loc (N, P, L, 4), prior/variance (N, P, 1, 4) -> xmin, ymin,
    xmax, ymax (N, P, L) each."""
    px0, py0, px1, py1 = (_coordinate(g, prior, i) for i in range(4))
    d = [_coordinate(g, loc, i) for i in range(4)]
    if not layer.variance_encoded_in_target:
        d = [g.op("Mul", _coordinate(g, variance, i), d[i]) for i in range(4)]
    if layer.code_type == "corner":
        return [g.op("Add", p, di) for p, di in zip((px0, py0, px1, py1), d)]
    pw, ph = g.op("Sub", px1, px0), g.op("Sub", py1, py0)
    if layer.code_type == "corner_size":
        return [g.op("Add", p, g.op("Mul", di, size))
                for p, di, size in zip((px0, py0, px1, py1), d, (pw, ph, pw, ph))]
    two = f32(g, 2.0)
    cx = g.op("Add", g.op("Mul", d[0], pw), g.op("Div", g.op("Add", px0, px1), two))
    cy = g.op("Add", g.op("Mul", d[1], ph), g.op("Div", g.op("Add", py0, py1), two))
    half_w = g.op("Div", g.op("Mul", g.op("Exp", d[2]), pw), two)
    half_h = g.op("Div", g.op("Mul", g.op("Exp", d[3]), ph), two)
    return [g.op("Sub", cx, half_w), g.op("Sub", cy, half_h),
            g.op("Add", cx, half_w), g.op("Add", cy, half_h)]


def _stack_last(g, parts: list[str]) -> str:
    return g.op("Concat", *(unsqueeze(g, p, [-1]) for p in parts), axis=-1)


def _with_image_index(g, image: str, found: str) -> str:
    """[image index, found...] per row: image (N, 1, 1) float, found (N, rows, 6)."""
    rows = g.op("Slice", g.op("Shape", found), i64(g, [0]), i64(g, [2]))
    index = g.op("Expand", image, g.op("Concat", rows, i64(g, [1]), axis=0))
    return g.op("Concat", index, found, axis=-1)


@lowering("DetectionOutput")
def detection_output(layer, g, inputs, outputs):
    loc_tensor, conf_tensor, priors_tensor = inputs
    num_priors = g.shape(priors_tensor)[2] // 4
    rows = g.shape(outputs[0])[1]
    labels = [c for c in range(layer.num_classes) if c != layer.background_label_id]
    m = num_priors if layer.top_k <= -1 else min(layer.top_k, num_priors)
    conf = g.value(conf_tensor, "keras")
    image = _image_index(g, conf)
    if len(labels) * m == 0:  # nothing can be detected: padding rows only
        shape = g.op("Concat", batch_size(g, conf), i64(g, [rows, 6]), axis=0)
        g.set(outputs[0], _with_image_index(g, image, g.op("Expand", f32(g, -1.0), shape)))
        return
    boxes, scores = _per_class(layer, g, g.value(loc_tensor, "keras"), conf,
                               g.value(priors_tensor, "keras"), num_priors, labels)

    # candidates: score > threshold, stably sorted by descending score, top_k kept
    threshold = f32(g, layer.confidence_threshold)
    key = g.op("Where", g.op("Greater", scores, threshold), g.op("Neg", scores), f32(g, np.inf))
    order = stable_smallest(g, key, num_priors, m)  # (N, C', M)
    scores = g.op("GatherElements", scores, order, axis=2)
    valid = g.op("Greater", scores, threshold)
    boxes = g.op("GatherElements", boxes, _for_boxes(g, order), axis=2)  # (N, C', M, 4)
    coords = [_coordinate(g, boxes, i) for i in range(4)]
    kept = greedy_nms(g, coords, _box_size(g, coords), valid, m, layer.nms_threshold, layer.eta)

    total = len(labels) * m
    kept = g.op("Reshape", kept, i64(g, [-1, total]))
    scores = g.op("Reshape", scores, i64(g, [-1, total]))
    if layer.keep_top_k > -1:
        kept = _keep_top_k(g, kept, scores, total, layer.keep_top_k)
    found = _rows(g, kept, scores, g.op("Reshape", boxes, i64(g, [-1, total, 4])),
                  np.repeat(labels, m), rows)
    g.set(outputs[0], _with_image_index(g, image, found))


def _image_index(g, conf: str) -> str:
    """Each item's index in the batch, float (N, 1, 1), from the data: the batch is dynamic."""
    count = squeeze(g, batch_size(g, conf), [0])
    image = g.op("Cast", g.op("Range", scalar_i64(g, 0), count, scalar_i64(g, 1)), to=FLOAT)
    return g.op("Reshape", image, i64(g, [-1, 1, 1]))


def _per_class(layer, g, loc: str, conf: str, priors: str, num_priors: int, labels):
    """The decoded boxes (N, C', P, 4) and scores (N, C', P) of the non-background classes."""
    loc_classes = 1 if layer.share_location else layer.num_classes
    loc = g.op("Reshape", loc, i64(g, [-1, num_priors, loc_classes, 4]))
    conf = g.op("Reshape", conf, i64(g, [-1, num_priors, layer.num_classes]))
    priors = g.op("Reshape", priors, i64(g, [-1, 2, num_priors, 1, 4]))
    prior = g.op("Gather", priors, scalar_i64(g, 0), axis=1)
    variance = g.op("Gather", priors, scalar_i64(g, 1), axis=1)
    boxes = _stack_last(g, _decode(layer, g, loc, prior, variance))  # (N, P, L, 4)
    boxes = g.op("Transpose", boxes, perm=[0, 2, 1, 3])  # (N, L, P, 4)
    if layer.share_location:  # the same boxes for every class
        shape = g.op("Concat", batch_size(g, conf), i64(g, [len(labels), num_priors, 4]),
                     axis=0)
        boxes = g.op("Expand", boxes, shape)
    else:
        boxes = g.op("Gather", boxes, i64(g, labels), axis=1)
    scores = g.op("Transpose", g.op("Gather", conf, i64(g, labels), axis=2), perm=[0, 2, 1])
    return boxes, scores


def _for_boxes(g, index: str) -> str:
    """An index (..., K) repeated for the 4 coordinates: (..., K, 4), for GatherElements."""
    shape = g.op("Concat", g.op("Shape", index), i64(g, [4]), axis=0)
    return g.op("Expand", unsqueeze(g, index, [-1]), shape)


def _box_size(g, coords: list[str]) -> str:
    """Caffe's BBoxSize: 0 for an inverted box, else width * height."""
    x0, y0, x1, y1 = coords
    inverted = g.op("Or", g.op("Less", x1, x0), g.op("Less", y1, y0))
    area = g.op("Mul", g.op("Sub", x1, x0), g.op("Sub", y1, y0))
    return g.op("Where", inverted, f32(g, 0.0), area)


def _keep_top_k(g, kept: str, scores: str, total: int, keep_top_k: int) -> str:
    """Only the keep_top_k best-scored kept boxes of each image (ties: lower position)."""
    if keep_top_k >= total:
        return kept
    if keep_top_k == 0:
        return g.op("And", kept, g.op("Expand", g.const(np.array(False)), g.op("Shape", kept)))
    key = g.op("Where", kept, g.op("Neg", scores), f32(g, np.inf))
    best = stable_smallest(g, key, total, keep_top_k)  # (N, keep_top_k)
    zeros = g.op("Expand", f32(g, 0.0), g.op("Shape", kept))
    ones = g.op("Expand", f32(g, 1.0), g.op("Shape", best))
    marked = g.op("ScatterElements", zeros, best, ones, axis=1)
    return g.op("And", kept, g.op("Cast", marked, to=BOOL))


def _rows(g, kept: str, scores: str, boxes: str, labels, rows: int) -> str:
    """(N, rows, 6) of [label, score, box] for the kept candidates in position order (label
    major, then descending score), then [-1] * 6 rows."""
    total = len(labels)
    # kept positions first, each group by position: key = position (+ total if not kept);
    # distinct keys, so no runtime's tie order matters
    key = g.op("Add", g.op("Mul", g.op("Cast", g.op("Not", kept), to=INT64), i64(g, total)),
               i64(g, np.arange(total)))
    ranked, chosen = g.op("TopK", key, i64(g, [rows]), axis=-1, largest=0, sorted=1,
                          outputs=2)
    present = unsqueeze(g, g.op("Less", ranked, i64(g, total)), [-1])  # (N, rows, 1)
    label = g.op("Gather", g.const(np.asarray(labels, dtype=np.float32)), chosen)
    score = g.op("GatherElements", scores, chosen, axis=1)
    box = g.op("GatherElements", boxes, _for_boxes(g, chosen), axis=1)
    found = g.op("Concat", unsqueeze(g, label, [-1]), unsqueeze(g, score, [-1]), box, axis=-1)
    return g.op("Where", present, found, f32(g, -1.0))
