"""Weights from the prototxt's fillers, for layers the caffemodel does not cover.

Caffe initialises every parameter blob with a filler before it copies trained weights;
a layer the weights file does not name keeps those values. The formulas below are
Caffe's (filler.hpp): fan_in = count / shape[0], fan_out = count / shape[1].
"""

from __future__ import annotations

import math

import numpy as np

from .ir import Net
from .proto import caffe_pb2
from .shapes.registry import get_blob_rule

_NORM = caffe_pb2.FillerParameter


def _constant(value: float) -> caffe_pb2.FillerParameter:
    return caffe_pb2.FillerParameter(type="constant", value=value)


def _fan(shape, norm) -> float:
    count = math.prod(shape)
    fan_in = count / shape[0] if shape and shape[0] else count
    fan_out = count / shape[1] if len(shape) > 1 and shape[1] else count
    if norm == _NORM.AVERAGE:
        return (fan_in + fan_out) / 2
    return fan_out if norm == _NORM.FAN_OUT else fan_in


def fill(filler: caffe_pb2.FillerParameter, shape, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(shape)
    kind = filler.type
    if kind == "constant":
        return np.full(shape, filler.value, np.float32)
    if kind == "uniform":
        return rng.uniform(filler.min, filler.max, shape).astype(np.float32)
    if kind == "gaussian":
        values = rng.normal(filler.mean, filler.std, shape)
        if filler.sparse >= 0 and len(shape) > 1:  # keep each weight with probability sparse/num_outputs
            values *= rng.random(shape) < filler.sparse / shape[0]
        return values.astype(np.float32)
    if kind == "xavier":
        limit = math.sqrt(3.0 / _fan(shape, filler.variance_norm))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    if kind == "msra":
        return rng.normal(0.0, math.sqrt(2.0 / _fan(shape, filler.variance_norm)), shape).astype(np.float32)
    if kind == "positive_unitball":
        values = rng.random(shape)
        flat = values.reshape(shape[0], -1)
        return (flat / flat.sum(axis=1, keepdims=True)).reshape(shape).astype(np.float32)
    if kind == "bilinear":
        return _bilinear(shape)
    raise ValueError(f"unknown filler type {kind!r}")


def _bilinear(shape) -> np.ndarray:
    """Caffe's bilinear upsampling kernel (used by FCN's Deconvolution layers)."""
    height, width = shape[-2], shape[-1]
    factor = math.ceil(width / 2)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    kernel = (1 - np.abs(x / factor - centre)) * (1 - np.abs(y / factor - centre))
    return np.broadcast_to(kernel, shape).astype(np.float32).copy()


def _fillers_for(layer) -> list[caffe_pb2.FillerParameter]:
    """The filler of each blob, in blob order, with Caffe's per-layer defaults."""
    p = layer.param
    if layer.type in ("Convolution", "Deconvolution"):
        return [p.convolution_param.weight_filler, p.convolution_param.bias_filler]
    if layer.type == "InnerProduct":
        return [p.inner_product_param.weight_filler, p.inner_product_param.bias_filler]
    if layer.type == "Embed":
        return [p.embed_param.weight_filler, p.embed_param.bias_filler]
    if layer.type == "PReLU":
        has = p.prelu_param.HasField("filler")
        return [p.prelu_param.filler if has else _constant(0.25)]
    if layer.type == "Scale":
        sp = p.scale_param
        return [sp.filler if sp.HasField("filler") else _constant(1.0), sp.bias_filler]
    if layer.type == "Bias":
        return [p.bias_param.filler]
    if layer.type == "Normalize":
        np_ = p.norm_param
        return [np_.scale_filler if np_.HasField("scale_filler") else _constant(1.0)]
    return []  # BatchNorm and the rest start from zeros


def fill_missing_weights(net: Net, seed: int = 0) -> list[str]:
    """Give every parametric layer without blobs its filler values; return those layers' names."""
    rng = np.random.default_rng(seed)
    filled = []
    for layer in net.layers:
        rule = get_blob_rule(layer.type)
        if layer.blobs or rule is None:
            continue
        shapes = rule(layer, [net.shapes[b] for b in layer.bottoms])
        if not shapes:
            continue
        fillers = _fillers_for(layer)
        layer.blobs = [fill(fillers[i], shape, rng) if i < len(fillers) else np.zeros(shape, np.float32)
                       for i, shape in enumerate(shapes)]
        filled.append(layer.name)
    return filled
