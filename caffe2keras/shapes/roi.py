"""ROIPooling and PSROIPooling: bottoms [features (N, C, H, W), rois (R, 5)], top one pooled
map per ROI, (R, C', h, w); R is the rois blob's own axis 0 (see caffe2keras.layers.roi)."""

from __future__ import annotations

from .registry import expect_bottoms, expect_ndim, layer_error, shape_rule


def _rois(layer, bottoms):
    expect_bottoms(layer, bottoms, 2)
    features, rois = (tuple(b) for b in bottoms)
    expect_ndim(layer, features, 4, which="first bottom")
    if len(rois) != 2 or rois[1] != 5:
        raise layer_error(layer, f"second bottom must be the (R, 5) rois, got {rois}")
    return features, rois


@shape_rule("ROIPooling")
def _roi_pooling(layer, bottoms):
    features, rois = _rois(layer, bottoms)
    p = layer.param.roi_pooling_param
    if p.pooled_h <= 0 or p.pooled_w <= 0:
        raise layer_error(layer, f"pooled_h {p.pooled_h} and pooled_w {p.pooled_w} must be > 0")
    return [(rois[0], features[1], p.pooled_h, p.pooled_w)]


@shape_rule("PSROIPooling")
def _psroi_pooling(layer, bottoms):
    features, rois = _rois(layer, bottoms)
    p = layer.param.psroi_pooling_param
    if p.output_dim <= 0 or p.group_size <= 0:
        raise layer_error(layer, f"output_dim {p.output_dim} and group_size {p.group_size} "
                                 "must be > 0")
    if features[1] != p.output_dim * p.group_size ** 2:
        raise layer_error(layer, f"needs output_dim * group_size^2 = "
                                 f"{p.output_dim * p.group_size ** 2} channels, got {features[1]}")
    return [(rois[0], p.output_dim, p.group_size, p.group_size)]
