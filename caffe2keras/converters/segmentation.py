"""BN (SegNet/ENet), BatchNormKyle, MaxUnPool -> Scale, BatchNormalization, MaxUnpool2D.

MaxUnPool and the two-bottom Upsample of caffe-segnet/caffe-enet (its converter is in
``resize``) unpool by a MAX Pooling's mask: ``unpool_geometry`` checks where the mask comes
from."""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..proto import caffe_pb2
from ..registry import Step, converter
from ..shapes.conv import pool_geometry
from .common import float32, name_of
from .norm import _normalisation_statistics

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("BatchNormalization", "MaxUnpool2D", "Scale")


@converter("BN")
def bn(layer, ctx):
    """caffe-segnet / caffe-enet bn_layer.cpp, INFERENCE mode: ``top = bottom * scale + shift``
    per channel (the statistics are folded into scale and shift by those forks' scripts)."""
    p = layer.param.bn_param
    if p.bn_mode != caffe_pb2.BNParameter.INFERENCE:
        raise StructureError(f"layer {layer.name!r} (BN): bn_mode LEARN normalises each batch "
                             "with its own statistics (also at test time in these forks); only "
                             "bn_mode: INFERENCE converts (fold the statistics into scale and "
                             "shift first, as SegNet's compute_bn_statistics.py does)")
    scale, shift = (float32(blob).reshape(-1) for blob in layer.blobs[:2])
    return [Step(custom_layers.Scale(axis=[3], bias_term=True, name=name_of(layer)),
                 [scale, shift])]


@converter("BatchNormKyle")
def batch_norm_kyle(layer, ctx):
    """batch_norm_kyle_layer.cpp with global statistics: BVLC BatchNorm, then ``* alpha +
    beta`` (blobs 3 and 4) when use_alpha_beta."""
    mean, var, p = _normalisation_statistics(layer)
    affine = p.use_alpha_beta
    bn = keras.layers.BatchNormalization(axis=ctx.keras_axis(1), epsilon=p.eps,
                                         momentum=p.moving_average_fraction, center=affine,
                                         scale=affine, name=name_of(layer))
    extra = [float32(layer.blobs[3]), float32(layer.blobs[4])] if affine else []
    return [Step(bn, extra + [mean, var])]


@converter("MaxUnPool")
def max_unpool(layer, ctx):
    return [Step(custom_layers.MaxUnpool2D(**unpool_geometry(layer, ctx), name=name_of(layer)))]


def unpool_geometry(layer, ctx) -> dict:
    """MaxUnpool2D's stride, pad and output_size for unpooling by ``layer``'s mask (bottom 2).
    A scatter by a mask as a gather (see layers/unpool.py) is only exact when the mask is a MAX
    Pooling's second top with non-overlapping windows over an input of the output's size."""
    mask = layer.bottoms[1]
    pool = ctx.net.producers().get(mask)
    what = f"layer {layer.name!r} ({layer.type})"
    if pool is None or pool.type != "Pooling" or len(pool.tops) != 2 or pool.tops[1] != mask:
        raise StructureError(f"{what}: the mask (bottom 2) must be the second top of a MAX "
                             "Pooling layer; a mask from anywhere else does not convert (a "
                             "scatter of arbitrary indices has no exact Keras form)")
    pool_input = ctx.net.shapes[pool.bottoms[0]]
    g = pool_geometry(pool, pool_input)
    if any(k > s for k, s in zip(g.kernel, g.stride)):
        raise StructureError(f"{what}: the mask comes from {pool.name!r} whose {g.kernel} "
                             f"windows overlap (stride {g.stride}); Caffe's unpooling then lets "
                             "the last write win, which does not convert")
    out = tuple(ctx.top_shapes[0][2:])
    if tuple(pool_input[2:]) != out:
        raise StructureError(f"{what}: unpools to {out[0]}x{out[1]} but the mask indexes the "
                             f"{pool_input[2]}x{pool_input[3]} input of {pool.name!r}; only "
                             "the pooling input's size converts")
    return dict(stride=g.stride, pad=g.pad, output_size=out)
