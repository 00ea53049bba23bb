"""LRN, BatchNorm (alone or fused with the Scale after it), Scale and Bias."""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..proto import caffe_pb2
from ..registry import Step, converter, keras_axis
from ..shapes.registry import canonical_axis
from .common import float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("BatchNormalization", "Bias", "BiasByInput", "LRN", "Scale", "ScaleByInput")

FUSED_BATCHNORM_SCALE = "BatchNorm+Scale"  # the IR type passes.fuse_batchnorm_scale creates

_REGIONS = {caffe_pb2.LRNParameter.ACROSS_CHANNELS: "across_channels",
            caffe_pb2.LRNParameter.WITHIN_CHANNEL: "within_channel"}


@converter("LRN")
def lrn(layer, ctx):
    p = layer.param.lrn_param
    if len(ctx.bottom_shapes[0]) != 4:
        raise StructureError(f"layer {layer.name!r} (LRN): needs a 4-D input, got {ctx.bottom_shapes[0]}")
    # The custom layer implements Caffe's formula itself: alpha is passed unscaled.
    return [Step(custom_layers.LRN(local_size=p.local_size, alpha=p.alpha, beta=p.beta, k=p.k,
                                   norm_region=_REGIONS[p.norm_region], name=name_of(layer)))]


def _normalisation_statistics(layer):
    """Caffe stores running sums and their scale factor s: mean = blob0 / s, var = blob1 / s."""
    p = layer.param.batch_norm_param
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise StructureError(f"layer {layer.name!r} (BatchNorm): use_global_stats: false normalises "
                             "each batch with its own statistics at inference; this does not convert")
    mean, var, factor = layer.blobs[0], layer.blobs[1], float(layer.blobs[2].reshape(-1)[0])
    f = 0.0 if factor == 0 else 1.0 / factor
    return float32(mean * f), float32(var * f), p


@converter("BatchNorm")
def batch_norm(layer, ctx):
    mean, var, p = _normalisation_statistics(layer)
    bn = keras.layers.BatchNormalization(axis=ctx.keras_axis(1), epsilon=p.eps,
                                         momentum=p.moving_average_fraction, center=False,
                                         scale=False, name=name_of(layer))
    return [Step(bn, [mean, var])]


@converter(FUSED_BATCHNORM_SCALE)
def batch_norm_scale(layer, ctx):
    """BatchNorm followed by Scale(axis 1) as one Keras BatchNormalization: same formula,
    y = gamma * (x - mean) / sqrt(var + eps) + beta, and it fine-tunes like Caffe's pair."""
    mean, var, p = _normalisation_statistics(layer)
    gamma = float32(layer.blobs[3])
    bias_term = layer.param.scale_param.bias_term
    bn = keras.layers.BatchNormalization(axis=ctx.keras_axis(1), epsilon=p.eps,
                                         momentum=p.moving_average_fraction, center=bias_term,
                                         scale=True, name=name_of(layer))
    return [Step(bn, [gamma] + ([float32(layer.blobs[4])] if bias_term else []) + [mean, var])]


def _covered_axes(layer, x_shape, axis, num_axes, second_shape=None):
    """Keras axes of x that Caffe's scale/bias covers, in the order of the parameter's own
    Keras layout (a 4-D second bottom is itself NHWC)."""
    first = canonical_axis(layer, axis, len(x_shape))
    if second_shape is not None:
        count = len(second_shape)
    else:
        count = len(x_shape) - first if num_axes == -1 else num_axes
    caffe_axes = list(range(first, first + count))
    if count == 4:
        caffe_axes = [caffe_axes[i] for i in (0, 2, 3, 1)]
    return [keras_axis(a, len(x_shape)) for a in caffe_axes]


def _refuse_batch_parameter(layer, axes):
    """A learned parameter over axis 0 holds one value per sample of Caffe's fixed batch."""
    if 0 in axes:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): a learned parameter over the "
                             "batch axis (one value per sample of Caffe's batch) does not convert "
                             "to a model with a free batch size")


def _learned(blob, axes_count):
    """A learned (C, H, ...) parameter keeps Caffe's order (the layer transposes it), except
    a full 4-D one, which is stored NHWC-ordered like its axes."""
    return float32(blob.transpose(0, 2, 3, 1) if axes_count == 4 else blob)


@converter("Scale")
def scale(layer, ctx):
    p = layer.param.scale_param
    x_shape = ctx.bottom_shapes[0]
    if len(layer.bottoms) == 2:
        axes = _covered_axes(layer, x_shape, p.axis, p.num_axes, ctx.bottom_shapes[1])
        if p.bias_term:
            _refuse_batch_parameter(layer, axes)
        weights = [_learned(layer.blobs[0], len(axes))] if p.bias_term else []
        return [Step(custom_layers.ScaleByInput(axis=axes, bias_term=p.bias_term, name=name_of(layer)),
                     weights)]
    axes = _covered_axes(layer, x_shape, p.axis, p.num_axes)
    _refuse_batch_parameter(layer, axes)
    weights = [_learned(blob, len(axes)) for blob in layer.blobs[:2 if p.bias_term else 1]]
    return [Step(custom_layers.Scale(axis=axes, bias_term=p.bias_term, name=name_of(layer)), weights)]


@converter("Bias")
def bias(layer, ctx):
    p = layer.param.bias_param
    x_shape = ctx.bottom_shapes[0]
    if len(layer.bottoms) == 2:
        axes = _covered_axes(layer, x_shape, p.axis, p.num_axes, ctx.bottom_shapes[1])
        return [Step(custom_layers.BiasByInput(axis=axes, name=name_of(layer)))]
    axes = _covered_axes(layer, x_shape, p.axis, p.num_axes)
    _refuse_batch_parameter(layer, axes)
    return [Step(custom_layers.Bias(axis=axes, name=name_of(layer)), [_learned(layer.blobs[0], len(axes))])]
