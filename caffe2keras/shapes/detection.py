"""SSD's PriorBox and DetectionOutput (Permute and Normalize live with their
families)."""

from __future__ import annotations

import math

import numpy as np

from .registry import expect_bottoms, has, layer_error, legacy_dim, shape_rule, sub_param


def prior_aspect_ratios(p) -> list[float]:
    """SSD's aspect ratio list: 1 first, then each new ratio (within 1e-6 of none seen
    so far) followed by its inverse when ``flip``. Compared in float32 as SSD does."""
    ratios = [np.float32(1.0)]
    for ar in p.aspect_ratio:
        ar = np.float32(ar)
        if any(abs(float(ar) - float(seen)) < 1e-6 for seen in ratios):
            continue
        ratios.append(ar)
        if p.flip:
            ratios.append(np.float32(1.0 / float(ar)))
    return [float(r) for r in ratios]


def num_priors(layer) -> int:
    """Boxes per feature-map cell: one per (min_size, aspect ratio) plus one per max_size."""
    p = sub_param(layer, "prior_box_param")
    if not p.min_size:
        raise layer_error(layer, "min_size is required")
    for name in ("min_size", "max_size", "aspect_ratio", "variance"):
        if not all(0 < value < math.inf for value in getattr(p, name)):
            raise layer_error(layer, f"{name} must be positive and finite, got "
                                     f"{list(getattr(p, name))}")
    for name in ("step", "step_h", "step_w"):
        if has(p, name) and not 0 < getattr(p, name) < math.inf:
            raise layer_error(layer, f"{name} must be positive and finite, got {getattr(p, name)}")
    if not math.isfinite(p.offset):
        raise layer_error(layer, f"offset must be finite, got {p.offset}")
    if p.max_size:
        if len(p.max_size) != len(p.min_size):
            raise layer_error(layer, f"{len(p.max_size)} max_size values for "
                                     f"{len(p.min_size)} min_size values")
        if any(hi <= lo for lo, hi in zip(p.min_size, p.max_size)):
            raise layer_error(layer, "each max_size must be greater than its min_size")
    if len(p.variance) not in (0, 1, 4) or any(v <= 0 for v in p.variance):
        raise layer_error(layer, "variance takes 1 or 4 positive values")
    if (has(p, "img_h") or has(p, "img_w")) and has(p, "img_size"):
        raise layer_error(layer, "give img_size or img_h/img_w, not both")
    if (has(p, "step_h") or has(p, "step_w")) and has(p, "step"):
        raise layer_error(layer, "give step or step_h/step_w, not both")
    return len(prior_aspect_ratios(p)) * len(p.min_size) + len(p.max_size)


@shape_rule("PriorBox")
def _prior_box(layer, bottoms):
    expect_bottoms(layer, bottoms, 2)
    feature = tuple(bottoms[0])
    height, width = legacy_dim(layer, feature, 2), legacy_dim(layer, feature, 3)
    # Channel 0 holds the boxes (x1, y1, x2, y2 per prior per cell), channel 1 the variances.
    return [(1, 2, height * width * num_priors(layer) * 4)]


@shape_rule("DetectionOutput")
def _detection_output(layer, bottoms):
    expect_bottoms(layer, bottoms, 3)
    loc, conf, priors = (tuple(b) for b in bottoms)
    p = sub_param(layer, "detection_output_param")
    if not has(p, "num_classes"):
        raise layer_error(layer, "num_classes is required")
    if legacy_dim(layer, loc, 0) != legacy_dim(layer, conf, 0):
        raise layer_error(layer, f"location {loc} and confidence {conf} differ in batch size")
    boxes = legacy_dim(layer, priors, 2) // 4
    loc_classes = 1 if p.share_location else p.num_classes
    if boxes * loc_classes * 4 != legacy_dim(layer, loc, 1):
        raise layer_error(layer, f"{boxes} priors need {boxes * loc_classes * 4} location "
                                 f"values per item, the location input is {loc}")
    if boxes * p.num_classes != legacy_dim(layer, conf, 1):
        raise layer_error(layer, f"{boxes} priors need {boxes * p.num_classes} confidences "
                                 f"per item, the confidence input is {conf}")
    # The number of kept detections is only known after NMS; Caffe reshapes the
    # top to this placeholder before Forward (rows: image, label, score, x1, y1, x2, y2).
    return [(1, 1, 1, 7)]
