"""Segmentation-net layers: the SegNet/ENet ``BN``, ``BatchNormKyle`` and ``MaxUnPool``
(the two-bottom SegNet/ENet ``Upsample`` is in ``resize``)."""

from __future__ import annotations

from .registry import (blob_rule, expect_bottoms, expect_ndim, has, layer_error, same_shape,
                       shape_rule, sub_param)


@shape_rule("BN")
def _bn(layer, bottoms):
    """caffe-segnet / caffe-enet bn_layer.cpp: a 4-D (N, C, H, W) blob, same shape out (the
    optional 2nd/3rd tops are LEARN mode's batch mean and variance, refused by the converter)."""
    expect_bottoms(layer, bottoms, 1)
    expect_ndim(layer, bottoms[0], 4)
    p = sub_param(layer, "bn_param")
    other = [f for f in ("slope_filler", "bias_filler", "momentum", "eps", "frozen") if has(p, f)]
    if other:
        raise layer_error(layer, f"bn_param sets {', '.join(other)}: the BN of another fork "
                                 "(slope, bias and running statistics), whose forward pass is "
                                 "not transcribed here; only the SegNet/ENet BN (bn_mode, "
                                 "scale_filler, shift_filler) converts")
    if len(layer.tops) != 1:
        raise layer_error(layer, f"{len(layer.tops)} tops: the batch mean and variance tops "
                                 "exist in LEARN mode only, which has no inference form")
    return same_shape(layer, bottoms)


@blob_rule("BN")
def _bn_blobs(layer, bottoms):
    channels = bottoms[0][1]
    return [(1, channels, 1, 1), (1, channels, 1, 1)]  # scale, shift


@shape_rule("BatchNormKyle")
def _batch_norm_kyle(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    expect_ndim(layer, bottoms[0], 2, 32)
    return same_shape(layer, bottoms)


@blob_rule("BatchNormKyle")
def _batch_norm_kyle_blobs(layer, bottoms):
    """batch_norm_kyle_layer.cpp: mean and variance sums, their scale factor, then alpha and
    beta when use_alpha_beta."""
    channels = bottoms[0][1]
    blobs = [(channels,), (channels,), (1,)]
    if sub_param(layer, "batch_norm_param").use_alpha_beta:
        blobs += [(channels,), (channels,)]
    return blobs


def unpool_inputs(layer, bottoms) -> None:
    """Data and mask: 4-D, the same shape (upsample_layer.cpp's checks)."""
    expect_bottoms(layer, bottoms, 2)
    expect_ndim(layer, bottoms[0], 4)
    expect_ndim(layer, bottoms[1], 4, which="mask")
    if tuple(bottoms[0]) != tuple(bottoms[1]):
        raise layer_error(layer, f"input {tuple(bottoms[0])} and mask {tuple(bottoms[1])} "
                                 "differ in shape")


@shape_rule("MaxUnPool")
def _max_unpool(layer, bottoms):
    """maxunpool_layer.cpp: (N, C, dst_h, dst_w)."""
    unpool_inputs(layer, bottoms)
    p = sub_param(layer, "max_unpool_param")
    if not (has(p, "dst_h") and has(p, "dst_w")):
        raise layer_error(layer, "dst_h and dst_w are required")
    if p.dst_h < 1 or p.dst_w < 1:
        raise layer_error(layer, f"dst_h {p.dst_h} and dst_w {p.dst_w} must be positive")
    n, c = bottoms[0][:2]
    return [(n, c, p.dst_h, p.dst_w)]


def segnet_upsample_size(layer, bottom) -> tuple[int, int]:
    """upsample_layer.cpp (caffe-segnet / caffe-enet): upsample_h and upsample_w if both are
    set, else scale_h/scale_w (or scale, 2 when unset) times the input, minus pad_out."""
    p = sub_param(layer, "upsample_param")
    if has(p, "upsample_h") and has(p, "upsample_w"):
        if p.upsample_h <= 1 or p.upsample_w <= 1:
            raise layer_error(layer, "upsample_h and upsample_w must be greater than 1")
        return p.upsample_h, p.upsample_w
    if has(p, "scale_h") or has(p, "scale_w"):
        if has(p, "scale") or not (has(p, "scale_h") and has(p, "scale_w")):
            raise layer_error(layer, "give upsample_h and upsample_w, or scale, or both scale_h "
                                     "and scale_w")
        scale_h, scale_w = p.scale_h, p.scale_w
    else:
        scale_h = scale_w = p.scale if has(p, "scale") else 2  # the forks' default
    if scale_h <= 1 or scale_w <= 1:
        raise layer_error(layer, f"scale {scale_h}x{scale_w} must be greater than 1")
    if (p.pad_out_h and scale_h != 2) or (p.pad_out_w and scale_w != 2):
        raise layer_error(layer, "pad_out_h / pad_out_w need a scale of 2")
    return bottom[2] * scale_h - int(p.pad_out_h), bottom[3] * scale_w - int(p.pad_out_w)
