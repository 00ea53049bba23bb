"""Shape rules of the converter fork's Resize, BilinearInterpolate and Unsqueeze layers."""

from __future__ import annotations

from .registry import (expect_bottoms, expect_ndim, has, layer_error, shape_rule, sub_param)


@shape_rule("Resize")
def _resize(layer, bottoms):
    """resize_layer.cpp: (N, C, height, width), or with ``is_pyramid_test`` the input's size
    times out_height_scale / out_width_scale, truncated (float32 product)."""
    import numpy as np

    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    expect_ndim(layer, bottom, 4)
    p = sub_param(layer, "resize_param")
    if p.is_pyramid_test:
        if not (has(p, "out_height_scale") and has(p, "out_width_scale")):
            raise layer_error(layer, "is_pyramid_test needs out_height_scale and "
                                     "out_width_scale")
        height = int(np.float32(p.out_height_scale) * np.float32(bottom[2]))
        width = int(np.float32(p.out_width_scale) * np.float32(bottom[3]))
    else:
        if not (has(p, "height") and has(p, "width")):
            raise layer_error(layer, "needs height and width (or is_pyramid_test with scales)")
        height, width = p.height, p.width
    if height <= 0 or width <= 0:
        raise layer_error(layer, f"output size {height}x{width} is not positive")
    return [(bottom[0], bottom[1], height, width)]


def bilinear_interpolate_size(layer, height: int, width: int) -> tuple[int, int]:
    """bilinear_interpolate_layer.cpp's LayerSetUp: dst_h/dst_w (a missing one keeps the
    input's), or int(size * scale_factor); both or neither leave Caffe's size unset."""
    import numpy as np

    p = sub_param(layer, "bilinear_interpolate_param")
    sized = has(p, "dst_h") or has(p, "dst_w")
    scaled = has(p, "scale_factor")
    if sized and not scaled:
        return (p.dst_h if has(p, "dst_h") else height, p.dst_w if has(p, "dst_w") else width)
    if scaled and not sized:
        factor = np.float32(p.scale_factor)
        return int(np.float32(height) * factor), int(np.float32(width) * factor)
    raise layer_error(layer, "give either dst_h/dst_w or scale_factor (Caffe leaves the output "
                             "size unset with both or neither)")


@shape_rule("BilinearInterpolate")
def _bilinear_interpolate(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    expect_ndim(layer, bottom, 4)
    height, width = bilinear_interpolate_size(layer, bottom[2], bottom[3])
    if height <= 0 or width <= 0:
        raise layer_error(layer, f"output size {height}x{width} is not positive")
    if bottom[2] < 2 or bottom[3] < 2:
        # Caffe clamps the first neighbour to size - 2, reading before the blob
        raise layer_error(layer, f"needs an input of at least 2x2, got {bottom[2]}x{bottom[3]}")
    p = sub_param(layer, "bilinear_interpolate_param")
    if p.align_corners and (height < 2 or width < 2):
        raise layer_error(layer, f"align_corners with an output of {height}x{width} divides by "
                                 "zero in Caffe")
    return [(bottom[0], bottom[1], height, width)]


@shape_rule("Unsqueeze")
def _unsqueeze(layer, bottoms):
    """A 1 inserted at ``dim`` (negative: counted from the end of the output's axes)."""
    expect_bottoms(layer, bottoms, 1)
    bottom = list(bottoms[0])
    p = sub_param(layer, "unsqueeze_param")
    if not has(p, "dim"):
        raise layer_error(layer, "unsqueeze_param.dim must be set")
    index = p.dim + len(bottom) + 1 if p.dim < 0 else p.dim
    if not 0 <= index <= len(bottom):
        raise layer_error(layer, f"dim {p.dim} is out of range for a {len(bottom)}-D input")
    return [tuple(bottom[:index] + [1] + bottom[index:])]
