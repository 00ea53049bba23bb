"""SSD's layers (Normalize, PriorBox, DetectionOutput) and the fork layers SSD-family nets bring
along: ReLU6 (MobileNet-SSD), MVN, Axpy (SENet forks).

The custom layers' docstrings (caffe2keras.layers.detection, .normalize, .axpy) state Caffe's
formulas; the output layout of PriorBox and DetectionOutput is described there too.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..proto import caffe_pb2
from ..registry import Step, converter
from ..shapes.detection import num_priors, prior_aspect_ratios
from ..shapes.registry import legacy_shape
from .common import caffe_order_reshape, constant_fits, float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = (
    "Axpy", "DetectionOutput", "MVN", "Normalize", "Permute", "PriorBox", "ReLU", "Reshape")

_FLT_MAX = float(np.finfo(np.float32).max)
_CODE_TYPES = {caffe_pb2.PriorBoxParameter.CORNER: "corner",
               caffe_pb2.PriorBoxParameter.CENTER_SIZE: "center_size",
               caffe_pb2.PriorBoxParameter.CORNER_SIZE: "corner_size"}


def _error(layer, message: str) -> StructureError:
    return StructureError(f"layer {layer.name!r} ({layer.type}): {message}")


@converter("ReLU6")
def relu6(layer, ctx):
    """Caffe: ``min(max(x, 0) + negative_slope * min(x, 0), threshold)``; Keras' ReLU with
    ``max_value=threshold, negative_slope`` is the same for threshold >= 0 and slope >= 0."""
    p = layer.param.relu6_param
    if p.threshold < 0 or p.negative_slope < 0:
        raise _error(layer, f"threshold {p.threshold} and negative_slope {p.negative_slope} must "
                            "be >= 0 (Keras' ReLU clips only from above and slopes only down)")
    return [Step(keras.layers.ReLU(max_value=p.threshold, negative_slope=p.negative_slope,
                                   name=name_of(layer)))]


@converter("Normalize")
def normalize(layer, ctx):
    p = layer.param.norm_param
    shape = ctx.bottom_shapes[0]
    if not 2 <= len(shape) <= 4:
        raise _error(layer, f"needs a 2-D to 4-D input, got {tuple(shape)}")
    scale = layer.blobs[0].reshape(-1)
    expected = 1 if p.channel_shared else shape[1]
    if scale.size != expected:
        raise _error(layer, f"the scale blob holds {scale.size} values, channel_shared "
                            f"{p.channel_shared} needs {expected}")
    return [Step(custom_layers.Normalize(across_spatial=p.across_spatial,
                                         channel_shared=p.channel_shared, eps=p.eps,
                                         axis=ctx.keras_axis(1), name=name_of(layer)),
                 [float32(scale)])]


@converter("MVN")
def mvn(layer, ctx):
    """Caffe averages over (H, W) per item and channel, or over (C, H, W) per item; its top is
    always 4-D (num, channels, height, width), so a smaller input is reshaped after."""
    p = layer.param.mvn_param
    in_shape = tuple(ctx.bottom_shapes[0])
    out_shape = legacy_shape(layer, in_shape)
    rank = len(in_shape)
    first = 1 if p.across_channels else 2  # Caffe axes first.. to the end
    caffe_axes = range(first, rank)
    axes = sorted(ctx.keras_axis(a) for a in caffe_axes)
    final = name_of(layer)
    reshape = caffe_order_reshape(layer, in_shape, out_shape, final) if rank != 4 else []
    layer_name = name_of(layer, "normalize") if reshape else final
    return [Step(custom_layers.MVN(axes=axes, normalize_variance=p.normalize_variance, eps=p.eps,
                                   name=layer_name))] + reshape


@converter("Axpy")
def axpy(layer, ctx):
    """top = a * x + y, bottoms [a, x, y], a one value per item and channel."""
    return [Step(custom_layers.Axpy(axis=ctx.keras_axis(1, len(ctx.bottom_shapes[1])),
                                    name=name_of(layer)))]


def _pair(layer, p, single: str, height: str, width: str, cast):
    """(height, width) from ``single`` or the ``height``/``width`` fields, None when unset;
    Caffe's checks (both given, positive)."""
    if p.HasField(height) or p.HasField(width):
        pair = (cast(getattr(p, height)), cast(getattr(p, width)))
    elif p.HasField(single):
        pair = (cast(getattr(p, single)),) * 2
    else:
        return None
    if min(pair) <= 0:
        raise _error(layer, f"{single} / {height} / {width} must be positive, got {pair}")
    return pair


@converter("PriorBox")
def prior_box(layer, ctx):
    p = layer.param.prior_box_param
    num_priors(layer)  # Caffe's LayerSetUp checks
    feature, image = (tuple(s) for s in ctx.bottom_shapes)
    img_size = _pair(layer, p, "img_size", "img_h", "img_w", int)
    if len(feature) != 4 or (img_size is None and len(image) != 4):
        raise _error(layer, f"needs 4-D feature map and image inputs, got {feature} and {image}")
    constant_fits(layer, math.prod(ctx.top_shapes[0]), "its priors")
    return [Step(custom_layers.PriorBox(
        min_sizes=list(p.min_size), max_sizes=list(p.max_size),
        aspect_ratios=prior_aspect_ratios(p), clip=p.clip, variances=list(p.variance) or [0.1],
        img_size=img_size, step=_pair(layer, p, "step", "step_h", "step_w", float),
        offset=p.offset, name=name_of(layer)))]


@converter("DetectionOutput")
def detection_output(layer, ctx):
    p = layer.param.detection_output_param
    if not p.HasField("nms_param"):
        # SSD's own layer then runs NMS with nms_threshold 0.3; this Caffe (brocolli) skips NMS
        # and the confidence threshold altogether. Which one the model expects is unknowable.
        raise _error(layer, "no nms_param: Caffe forks disagree on what that means (SSD runs NMS "
                            "with threshold 0.3, others keep every box); add nms_param { "
                            "nms_threshold: ... } to say which")
    if p.share_location and p.background_label_id == -1:
        raise _error(layer, "share_location with background_label_id -1: Caffe aborts "
                            "('Could not find location predictions for label -1')")
    if p.code_type not in _CODE_TYPES:
        raise _error(layer, f"unknown code_type {p.code_type}")
    nms = p.nms_param
    if nms.nms_threshold < 0 or not 0 < nms.eta <= 1:
        raise _error(layer, f"nms_threshold {nms.nms_threshold} must be >= 0 and eta {nms.eta} "
                            "in (0, 1]")
    loc, conf, priors = (tuple(s) for s in ctx.bottom_shapes)
    if len(priors) != 3 or priors[:2] != (1, 2):
        raise _error(layer, f"the priors input must be PriorBox-shaped (1, 2, P*4), got {priors}")
    count = priors[2] // 4
    loc_classes = 1 if p.share_location else p.num_classes
    for which, shape, per_prior in (("location", loc, loc_classes * 4),
                                    ("confidence", conf, p.num_classes)):
        if math.prod(shape[1:]) != count * per_prior:
            raise _error(layer, f"the {which} input {shape} must hold exactly {per_prior} values "
                                f"for each of the {count} priors")
    return [Step(custom_layers.DetectionOutput(
        num_classes=p.num_classes, share_location=p.share_location,
        background_label_id=p.background_label_id, code_type=_CODE_TYPES[p.code_type],
        variance_encoded_in_target=p.variance_encoded_in_target, keep_top_k=p.keep_top_k,
        # Caffe's default threshold is -FLT_MAX: every score passes.
        confidence_threshold=(p.confidence_threshold if p.HasField("confidence_threshold")
                              else -_FLT_MAX),
        nms_threshold=nms.nms_threshold, top_k=nms.top_k if nms.HasField("top_k") else -1,
        eta=nms.eta, name=name_of(layer)))]
