"""Pad, Resize, BilinearInterpolate, PixelShuffle and Unsqueeze of the converter fork.

Semantics from the fork's C++ (``pad_layer.cpp``, ``resize_layer.cpp`` with
``util_img.cpp``'s ``BiLinearResizeMat_cpu``, ``bilinear_interpolate_layer.cpp``,
``pixelshuffle_layer.cpp``, ``unsqueeze.cpp``):

* Pad: when all four pads are negative the blob is cropped by them; otherwise each side is
  padded with ``pad_value`` (CONSTANT), the edge row/column (REPLICATE) or the mirror image
  without the edge (REFLECT). Mixed signs make Caffe write outside its blob: refused.
* Resize: output pixel i samples ``i * in / out``; of its four neighbours, those past the
  last row or column are skipped (weighed as zeros).
* BilinearInterpolate: ``i * (in - 1) / (out - 1)`` with align_corners, else
  ``(i + 0.5) * in / out - 0.5``, clamped to the input; neighbours clamped inside it.
* PixelShuffle: output (c, h * r + i, w * r + j) = input (c * r * r + i * r + j, h, w)
  (PyTorch's order, not TensorFlow's depth_to_space).
* Unsqueeze: a copy with a 1 inserted in the shape.
"""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..proto import caffe_pb2
from ..registry import Step, converter
from .common import caffe_order_reshape, finite, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("BilinearResize", "CaffePad", "Cropping2D", "Identity", "Permute", "Reshape",
                "ZeroPadding2D")

_PAD_MODES = {caffe_pb2.PadParameter.CONSTANT: "constant",
              caffe_pb2.PadParameter.REPLICATE: "edge",
              caffe_pb2.PadParameter.REFLECT: "reflect"}


def _error(layer, message: str) -> StructureError:
    return StructureError(f"layer {layer.name!r} ({layer.type}): {message}")


def _four_d(layer, ctx) -> tuple[int, ...]:
    shape = tuple(ctx.bottom_shapes[0])
    if len(shape) != 4:
        raise _error(layer, f"Caffe's forward pass indexes N, C, H, W: needs a 4-D input, got "
                            f"{shape}")
    return shape


@converter("Pad")
def pad(layer, ctx):
    _, _, height, width = _four_d(layer, ctx)
    p = layer.param.pad_param
    finite(layer, p, "pad_value")
    pads = (p.pad_u, p.pad_d, p.pad_l, p.pad_r)
    if all(amount < 0 for amount in pads):
        return [Step(keras.layers.Cropping2D(((-p.pad_u, -p.pad_d), (-p.pad_l, -p.pad_r)),
                                             name=name_of(layer)))]
    if any(amount < 0 for amount in pads):
        raise _error(layer, f"pads (u, d, l, r) = {pads} mix negative and non-negative values; "
                            "Caffe crops only when all four are negative and otherwise writes "
                            "outside its blob")
    mode = _PAD_MODES.get(p.pad_type)
    if mode is None:
        raise _error(layer, f"pad_type {p.pad_type} is not CONSTANT, REPLICATE or REFLECT")
    padding = ((p.pad_u, p.pad_d), (p.pad_l, p.pad_r))
    if mode == "reflect" and (max(p.pad_u, p.pad_d) >= height or max(p.pad_l, p.pad_r) >= width):
        raise _error(layer, f"REFLECT pads {pads} must be smaller than the input's {height}x"
                            f"{width} (Caffe reads rows it has not written yet)")
    if mode == "constant" and p.pad_value == 0:
        return [Step(keras.layers.ZeroPadding2D(padding, name=name_of(layer)))]
    return [Step(custom_layers.CaffePad(padding=padding, mode=mode, value=p.pad_value,
                                        name=name_of(layer)))]


@converter("Resize")
def resize(layer, ctx):
    _four_d(layer, ctx)
    _, _, height, width = ctx.top_shapes[0]
    return [Step(custom_layers.BilinearResize(height=height, width=width,
                                              coordinates="asymmetric", name=name_of(layer)))]


@converter("BilinearInterpolate")
def bilinear_interpolate(layer, ctx):
    _four_d(layer, ctx)
    _, _, height, width = ctx.top_shapes[0]
    align = layer.param.bilinear_interpolate_param.align_corners
    return [Step(custom_layers.BilinearResize(
        height=height, width=width, coordinates="align_corners" if align else "half_pixel",
        name=name_of(layer)))]


@converter("PixelShuffle")
def pixel_shuffle(layer, ctx):
    """NHWC (H, W, C*r*r) -> (H, W, C, r, r) -> (H, r, W, r, C) -> (H*r, W*r, C)."""
    _, channels, height, width = _four_d(layer, ctx)
    r = layer.param.pixelshuffle_param.upscale_factor
    if r == 1:  # Caffe copies the input
        return [Step(keras.layers.Identity(name=name_of(layer)))]
    out = channels // (r * r)
    return [Step(keras.layers.Reshape((height, width, out, r, r), name=name_of(layer, "split"))),
            Step(keras.layers.Permute((1, 4, 2, 5, 3), name=name_of(layer, "interleave"))),
            Step(keras.layers.Reshape((height * r, width * r, out), name=name_of(layer)))]


@converter("Unsqueeze")
def unsqueeze(layer, ctx):
    return caffe_order_reshape(layer, ctx.bottom_shapes[0], ctx.top_shapes[0], name_of(layer))
