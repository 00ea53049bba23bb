"""Spatial resizing layers from the forks: Upsample (nearest; with a pooling mask as second
bottom, SegNet/ENet unpooling), Interp (bilinear, PSPNet/DeepLab)."""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..registry import Step, converter
from .common import name_of
from .segmentation import unpool_geometry

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Interp", "MaxUnpool2D", "Permute", "UpSampling1D", "UpSampling2D")


@converter("Upsample")
def upsample(layer, ctx):
    """upsample_layer.cpp: ``top[.., h, w] = bottom[.., h / scale, w / scale]`` (integer
    division), i.e. every value repeated ``scale`` times along the last two axes (dims_num 4)
    or the last axis (dims_num 3)."""
    p = layer.param.upsample_param
    shape = ctx.bottom_shapes[0]
    if len(layer.bottoms) == 2:
        # caffe-segnet / caffe-enet: unpooling by a MAX pooling's mask.
        return [Step(custom_layers.MaxUnpool2D(**unpool_geometry(layer, ctx),
                                               name=name_of(layer)))]
    if p.dims_num == 4 and len(shape) == 4:
        # NHWC: UpSampling2D repeats rows and columns, which is Caffe's nearest index.
        return [Step(keras.layers.UpSampling2D(size=(p.scale, p.scale), interpolation="nearest",
                                               name=name_of(layer)))]
    if p.dims_num == 3 and len(shape) == 3:
        # (N, C, W) keeps Caffe's order in Keras; UpSampling1D repeats axis 1, so swap around it.
        return [Step(keras.layers.Permute((2, 1), name=name_of(layer, "to_nwc"))),
                Step(keras.layers.UpSampling1D(size=p.scale, name=name_of(layer, "repeat"))),
                Step(keras.layers.Permute((2, 1), name=name_of(layer)))]
    raise StructureError(f"layer {layer.name!r} (Upsample): dims_num {p.dims_num} on a "
                         f"{len(shape)}-D input {tuple(shape)}; Caffe's loops only fit a 4-D "
                         "input with dims_num 4 or a 3-D one with dims_num 3")


@converter("Interp")
def interp(layer, ctx):
    """Bilinear resize with aligned corners after cropping -pad_beg/-pad_end; the output size
    (zoom_factor, shrink_factor, height/width or a second bottom) is the shape rule's."""
    p = layer.param.interp_param
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise StructureError(f"layer {layer.name!r} (Interp): needs a 4-D input, got "
                             f"{tuple(shape)}")
    _, _, height, width = ctx.top_shapes[0]
    return [Step(custom_layers.Interp(height=height, width=width, pad_beg=p.pad_beg,
                                      pad_end=p.pad_end, name=name_of(layer)))]
