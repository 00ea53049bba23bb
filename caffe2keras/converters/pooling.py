"""Pooling -> Keras pooling where it is exact, CaffePooling2D where Caffe's rules differ,
CaffeMaxPoolingWithMask for MAX pooling's argmax mask top."""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..proto import caffe_pb2
from ..registry import Step, converter
from ..shapes.conv import pool_geometry
from .common import constant_fits, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = (
    "AveragePooling2D", "CaffeMaxPoolingWithMask", "CaffePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "MaxPooling2D")

_MODES = {caffe_pb2.PoolingParameter.MAX: "max", caffe_pb2.PoolingParameter.AVE: "ave"}


@converter("Pooling")
def pooling(layer, ctx):
    bottom = ctx.bottom_shapes[0]
    g = pool_geometry(layer, bottom)
    mode = _MODES.get(layer.param.pooling_param.pool)
    if mode is None:
        raise StructureError(f"layer {layer.name!r} (Pooling): STOCHASTIC pooling has no inference "
                             "form in Caffe's CPU code and does not convert")
    name = name_of(layer)
    if len(layer.tops) == 2:
        return [Step(_with_mask(layer, mode, g, bottom, name))]
    if g.global_pooling:
        cls = keras.layers.GlobalMaxPooling2D if mode == "max" else keras.layers.GlobalAveragePooling2D
        return [Step(cls(keepdims=True, name=name))]
    # Plain Keras pooling is exact when no window touches padding or hangs over the edge.
    fits = all((size - k) % s == 0 for size, k, s in zip(bottom[2:], g.kernel, g.stride))
    if g.pad == (0, 0) and fits:
        cls = keras.layers.MaxPooling2D if mode == "max" else keras.layers.AveragePooling2D
        return [Step(cls(pool_size=g.kernel, strides=g.stride, padding="valid", name=name))]
    if mode == "ave":
        constant_fits(layer, g.output[0] * g.output[1], f"the {g.output[0]}x{g.output[1]} map of "
                                                        "AVE divisors")
    return [Step(custom_layers.CaffePooling2D(pool=mode, kernel=g.kernel, stride=g.stride,
                                              pad=g.pad, output_size=g.output, name=name))]


# One strided slice per window pixel: beyond this many the graph grows too big to be useful.
MAX_MASK_WINDOW = 1024


def _with_mask(layer, mode, g, bottom, name):
    """MAX pooling with Caffe's argmax mask top (h * W + w within each channel's plane)."""
    if mode != "max":
        raise StructureError(f"layer {layer.name!r} (Pooling): only MAX pooling has a mask top "
                             "(Caffe allows a second top for MAX only)")
    kernel = g.kernel
    if kernel[0] * kernel[1] > MAX_MASK_WINDOW:
        raise StructureError(f"layer {layer.name!r} (Pooling): the mask of a {kernel[0]}x"
                             f"{kernel[1]} window is computed pixel by pixel; windows above "
                             f"{MAX_MASK_WINDOW} pixels do not convert")
    if bottom[2] * bottom[3] > 2 ** 24:
        raise StructureError(f"layer {layer.name!r} (Pooling): mask indices of a "
                             f"{bottom[2]}x{bottom[3]} plane exceed float32's exact integers")
    return custom_layers.CaffeMaxPoolingWithMask(kernel=kernel, stride=g.stride, pad=g.pad,
                                                 output_size=g.output, name=name)
