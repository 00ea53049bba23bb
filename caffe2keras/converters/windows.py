"""Im2col, SPP and Parameter -> Im2col, SpatialPyramidPooling and Parameter. BatchReindex
and Filter are refused by design (see ``refuse`` below)."""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers
from ..proto import caffe_pb2
from ..registry import Step, converter, keras_shape, refuse
from ..shapes.windows import im2col_geometry, spp_levels
from .common import constant_fits, float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Im2col", "Parameter", "SpatialPyramidPooling")
MAX_TAPS = 4096  # Im2col's kernel positions: the graph holds one slice per tap

refuse("BatchReindex", "Filter",
       reason="it selects or reorders the items of Caffe's batch, which no Keras model with a "
              "free batch size can compute")


def _refuse(layer, why):
    return StructureError(f"layer {layer.name!r} ({layer.type}): {why}")


@converter("Im2col")
def im2col(layer, ctx):
    bottom = ctx.bottom_shapes[0]
    axis, kernel, stride, pad, dilation, out = im2col_geometry(layer, bottom)
    if len(bottom) != 4 or axis != 1:
        raise _refuse(layer, f"converts on a 4-D (N, C, H, W) input with axis 1; got "
                             f"{bottom} with axis {axis}")
    if kernel[0] * kernel[1] > MAX_TAPS:
        raise _refuse(layer, f"a {kernel[0]}x{kernel[1]} kernel has more than the {MAX_TAPS} "
                             "taps a converted Im2col takes (one slice each)")
    return [Step(custom_layers.Im2col(kernel=kernel, stride=stride, pad=pad, dilation=dilation,
                                      output_size=out, name=name_of(layer)))]


_SPP_MODES = {caffe_pb2.SPPParameter.MAX: "max", caffe_pb2.SPPParameter.AVE: "ave"}


@converter("SPP")
def spp(layer, ctx):
    mode = _SPP_MODES.get(layer.param.spp_param.pool)
    if mode is None:
        raise _refuse(layer, "STOCHASTIC pooling has no inference form in Caffe's CPU code and "
                             "does not convert")
    levels = spp_levels(layer, ctx.bottom_shapes[0])
    if mode == "ave":
        constant_fits(layer, sum(o[0] * o[1] for *_, o in levels), "the AVE divisor maps")
    return [Step(custom_layers.SpatialPyramidPooling(pool=mode, levels=levels,
                                                     name=name_of(layer)))]


@converter("Parameter")
def parameter(layer, ctx):
    shape = ctx.top_shapes[0]
    if shape[0] != 1:
        raise _refuse(layer, f"its blob {shape} has {shape[0]} entries on axis 0, Caffe's batch "
                             "axis: only a blob of shape (1, ...) converts (repeated for every "
                             "item of Keras' free batch)")
    if not ctx.net.inputs:
        raise _refuse(layer, "the net has no input to take the batch size from")
    blob = layer.blobs[0].reshape(shape)
    if len(shape) == 4:
        blob = blob.transpose(0, 2, 3, 1)
    return [Step(custom_layers.Parameter(shape=keras_shape(shape), name=name_of(layer)),
                 [float32(blob)])]
