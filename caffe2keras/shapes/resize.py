"""Spatial resizing and channel rearranging layers from the forks: Upsample,
Interp (DeepLab / PSPNet), ShuffleChannel, PixelShuffle, Pad."""

from __future__ import annotations

from .registry import (expect_bottoms, expect_ndim, has, layer_error, legacy_dim, shape_rule,
                       sub_param)
from .segmentation import segnet_upsample_size, unpool_inputs


@shape_rule("Upsample")
def _upsample(layer, bottoms):
    """Nearest-neighbour upsampling by ``scale`` of the last two axes (``dims_num: 4``)
    or of the last axis only (``dims_num: 3``); with two bottoms, SegNet/ENet's unpooling by
    a mask."""
    if len(bottoms) == 2:
        unpool_inputs(layer, bottoms)
        n, c, h, w = bottoms[0]
        return [(n, c, *segnet_upsample_size(layer, bottoms[0]))]
    expect_bottoms(layer, bottoms, 1)
    bottom = list(bottoms[0])
    p = sub_param(layer, "upsample_param")
    if p.scale < 1:
        raise layer_error(layer, f"scale must be at least 1, got {p.scale}")
    scaled_axes = {4: 2, 3: 1}.get(p.dims_num)
    if scaled_axes is None:
        raise layer_error(layer, f"dims_num must be 3 or 4, got {p.dims_num}")
    if len(bottom) < scaled_axes:
        raise layer_error(layer, f"input {tuple(bottom)} has fewer than {scaled_axes} axes")
    for i in range(len(bottom) - scaled_axes, len(bottom)):
        bottom[i] *= p.scale
    return [tuple(bottom)]


def _interp_size(layer, p, size_in: int, height_or_width: str, reference: int | None) -> int:
    """Output size along one axis, in the order PSPNet's interp layer checks the fields."""
    eff = size_in + p.pad_beg + p.pad_end
    if eff <= 0:
        raise layer_error(layer, f"input {height_or_width} {size_in} with pad_beg {p.pad_beg} "
                                 f"and pad_end {p.pad_end} leaves nothing")
    shrink, zoom = has(p, "shrink_factor"), has(p, "zoom_factor")
    if (shrink and p.shrink_factor < 1) or (zoom and p.zoom_factor < 1):
        raise layer_error(layer, "shrink_factor and zoom_factor must be at least 1")
    if shrink and not zoom:
        return (eff - 1) // p.shrink_factor + 1
    if zoom and not shrink:
        return eff + (eff - 1) * (p.zoom_factor - 1)
    if has(p, "height") and has(p, "width"):
        return getattr(p, height_or_width)
    if shrink and zoom:
        shrunk = (eff - 1) // p.shrink_factor + 1
        return shrunk + (shrunk - 1) * (p.zoom_factor - 1)
    if reference is not None:
        # Forks that take a second bottom resize to its spatial size.
        return reference
    raise layer_error(layer, "give zoom_factor, shrink_factor or height and width")


@shape_rule("Interp")
def _interp(layer, bottoms):
    expect_bottoms(layer, bottoms, 1, 2)
    bottom = tuple(bottoms[0])
    p = sub_param(layer, "interp_param")
    if p.pad_beg > 0 or p.pad_end > 0:
        raise layer_error(layer, "pad_beg and pad_end may only crop (be <= 0)")
    ref = tuple(bottoms[1]) if len(bottoms) == 2 else None
    n, c, h, w = (legacy_dim(layer, bottom, i) for i in range(4))
    out_h = _interp_size(layer, p, h, "height", legacy_dim(layer, ref, 2) if ref else None)
    out_w = _interp_size(layer, p, w, "width", legacy_dim(layer, ref, 3) if ref else None)
    if out_h <= 0 or out_w <= 0:
        raise layer_error(layer, f"output size {out_h}x{out_w} is not positive")
    return [(n, c, out_h, out_w)]


@shape_rule("ShuffleChannel")
def _shuffle_channel(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    expect_ndim(layer, bottom, 2, 4)
    group = sub_param(layer, "shuffle_channel_param").group
    if group < 1 or bottom[1] % group:
        raise layer_error(layer, f"group {group} must divide the {bottom[1]} channels")
    return [bottom]


@shape_rule("PixelShuffle")
def _pixel_shuffle(layer, bottoms):
    """(..., C, H, W) -> (..., C/r^2, H*r, W*r)."""
    expect_bottoms(layer, bottoms, 1)
    bottom = list(bottoms[0])
    if len(bottom) < 3:
        raise layer_error(layer, f"input {tuple(bottom)} needs channel, height and width axes")
    r = sub_param(layer, "pixelshuffle_param").upscale_factor
    if r < 1 or bottom[-3] % (r * r):
        raise layer_error(layer, f"upscale_factor {r} squared must divide the {bottom[-3]} "
                                 "channels")
    bottom[-3] //= r * r
    bottom[-2] *= r
    bottom[-1] *= r
    return [tuple(bottom)]


@shape_rule("Pad")
def _pad(layer, bottoms):
    """The last two axes grow by pad_u + pad_d and pad_l + pad_r (negative pads crop)."""
    expect_bottoms(layer, bottoms, 1)
    bottom = list(bottoms[0])
    expect_ndim(layer, tuple(bottom), 2, 4)
    p = sub_param(layer, "pad_param")
    bottom[-2] += p.pad_u + p.pad_d
    bottom[-1] += p.pad_l + p.pad_r
    if bottom[-2] <= 0 or bottom[-1] <= 0:
        raise layer_error(layer, f"padding leaves an empty output {tuple(bottom)}")
    return [tuple(bottom)]
