"""Normalisation and per-channel parameter layers: LRN, BatchNorm, Scale, Bias,
PReLU, Normalize (SSD), MVN."""

from __future__ import annotations

from .registry import (Shape, blob_rule, canonical_axis, expect_bottoms, expect_ndim,
                       layer_error, legacy_dim, legacy_shape, same_shape, shape_rule,
                       sub_param)


@shape_rule("LRN")
def _lrn(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    expect_ndim(layer, bottoms[0], 4)
    size = sub_param(layer, "lrn_param").local_size
    if size % 2 != 1:
        raise layer_error(layer, f"local_size must be odd, got {size}")
    # WITHIN_CHANNEL pools with kernel n, pad (n-1)/2, stride 1: the size is kept.
    return [tuple(bottoms[0])]


# --------------------------------------------------------------------------
# BatchNorm
# --------------------------------------------------------------------------

def _batch_norm_channels(bottom: Shape) -> int:
    return 1 if len(bottom) == 1 else bottom[1]


@shape_rule("BatchNorm")
def _batch_norm(layer, bottoms):
    # LayerSetUp takes 1 channel for a 1-D input, but Reshape then reads shape(1) and aborts.
    expect_bottoms(layer, bottoms, 1)
    expect_ndim(layer, bottoms[0], 2, 32)
    return same_shape(layer, bottoms)


@blob_rule("BatchNorm", extra_blobs_tolerated=True)
def _batch_norm_blobs(layer, bottoms):
    # mean accumulator, variance accumulator, moving-average scale factor
    channels = _batch_norm_channels(tuple(bottoms[0]))
    return [(channels,), (channels,), (1,)]


# --------------------------------------------------------------------------
# Scale and Bias
# --------------------------------------------------------------------------

def _learned_param_shape(layer, bottom: Shape, axis_field: int, num_axes: int) -> Shape:
    """``bottom[axis : axis+num_axes]`` (num_axes -1: to the end), the shape of a
    Scale/Bias parameter learned by the layer itself."""
    axis = canonical_axis(layer, axis_field, len(bottom))
    if num_axes < -1:
        raise layer_error(layer, f"num_axes must be -1 or more, got {num_axes}")
    if num_axes == -1:
        return bottom[axis:]
    if axis + num_axes > len(bottom):
        raise layer_error(layer, f"axis {axis} + num_axes {num_axes} extends past the "
                                 f"{len(bottom)}-D input")
    return bottom[axis:axis + num_axes]


def _check_operand(layer, bottom: Shape, operand: Shape, axis_field: int) -> None:
    """A second bottom must match ``bottom`` from ``axis`` on (a scalar always fits)."""
    if len(operand) == 0:
        return
    axis = canonical_axis(layer, axis_field, len(bottom))
    covered = bottom[axis:axis + len(operand)]
    if covered != tuple(operand):
        raise layer_error(layer, f"second bottom {tuple(operand)} does not match the input "
                                 f"{bottom} from axis {axis}")


def _scale_or_bias(layer, bottoms, param_name: str):
    expect_bottoms(layer, bottoms, 1, 2)
    bottom = tuple(bottoms[0])
    p = sub_param(layer, param_name)
    if len(bottoms) == 2:
        _check_operand(layer, bottom, tuple(bottoms[1]), p.axis)
    else:
        _learned_param_shape(layer, bottom, p.axis, p.num_axes)
    return [bottom]


@shape_rule("Scale")
def _scale(layer, bottoms):
    return _scale_or_bias(layer, bottoms, "scale_param")


@shape_rule("Bias")
def _bias(layer, bottoms):
    return _scale_or_bias(layer, bottoms, "bias_param")


@blob_rule("Scale")
def _scale_blobs(layer, bottoms):
    p = layer.param.scale_param
    bottom = tuple(bottoms[0])
    if len(bottoms) == 2:
        blobs = []
        # The internal Bias layer covers as many axes as the second bottom has.
        bias_axes = len(bottoms[1])
    else:
        blobs = [_learned_param_shape(layer, bottom, p.axis, p.num_axes)]
        bias_axes = p.num_axes
    if p.bias_term:
        blobs.append(_learned_param_shape(layer, bottom, p.axis, bias_axes))
    return blobs


@blob_rule("Bias")
def _bias_blobs(layer, bottoms):
    if len(bottoms) == 2:
        return []
    p = layer.param.bias_param
    return [_learned_param_shape(layer, tuple(bottoms[0]), p.axis, p.num_axes)]


# --------------------------------------------------------------------------
# PReLU, Normalize
# --------------------------------------------------------------------------

def _channels(layer, bottom: Shape) -> int:
    expect_ndim(layer, bottom, 2, 4)
    return legacy_dim(layer, bottom, 1)


@shape_rule("PReLU", "Normalize")
def _per_channel(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    _channels(layer, tuple(bottoms[0]))
    return [tuple(bottoms[0])]


# Caffe makes a shared slope / scale a 0-axis blob; it is reported here as (1,) and
# any single-element stored blob is accepted for it.
@blob_rule("PReLU")
def _prelu_blobs(layer, bottoms):
    shared = layer.param.prelu_param.channel_shared
    return [(1,) if shared else (_channels(layer, tuple(bottoms[0])),)]


@blob_rule("Normalize")
def _normalize_blobs(layer, bottoms):
    shared = layer.param.norm_param.channel_shared
    return [(1,) if shared else (_channels(layer, tuple(bottoms[0])),)]


@shape_rule("MVN")
def _mvn(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    # Caffe reshapes the top to (num, channels, height, width) of the input.
    return [legacy_shape(layer, tuple(bottoms[0]))]
