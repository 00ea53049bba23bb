"""Weights from the prototxt's fillers, for layers the caffemodel does not cover.

Caffe initialises every parameter blob with a filler before it copies trained weights;
a layer the weights file does not name keeps those values. The formulas below are
Caffe's (filler.hpp): fan_in = count / shape[0], fan_out = count / shape[1].
"""

from __future__ import annotations

import math

import numpy as np

from .errors import StructureError
from .ir import Net
from .proto import caffe_pb2
from .shapes.registry import get_blob_rule, nonfinite_warning

# Weights invented from fillers cost memory the input files never paid for: 2**28 values
# (1 GiB as float32) is room for VGG-16's 138 million parameters, and no more.
MAX_FILLED_VALUES = 2**28
_CHUNK = 2**20

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
    """Values of ``shape`` drawn like Caffe's filler, computed in float32 throughout so that
    the largest temporary is the result itself. A filler Caffe refuses raises ValueError."""
    shape = tuple(shape)
    kind = filler.type
    if kind == "constant":
        return np.full(shape, filler.value, np.float32)
    if kind == "uniform":
        return _uniform(rng, filler.min, filler.max, shape)
    if kind == "gaussian":
        if filler.std < 0:
            raise ValueError(f"gaussian filler std must not be negative, got {filler.std}")
        values = _normal(rng, filler.mean, filler.std, shape)
        if filler.sparse >= 0 and len(shape) > 1:  # keep each weight with probability sparse/num_outputs
            flat = values.reshape(-1)
            for start in range(0, flat.size, _CHUNK):  # a chunk at a time: no blob-sized mask
                end = min(start + _CHUNK, flat.size)
                flat[start:end] *= rng.random(end - start, dtype=np.float32) < filler.sparse / shape[0]
        return values
    if kind == "xavier":
        limit = math.sqrt(3.0 / _fan(shape, filler.variance_norm))
        return _uniform(rng, -limit, limit, shape)
    if kind == "msra":
        return _normal(rng, 0.0, math.sqrt(2.0 / _fan(shape, filler.variance_norm)), shape)
    if kind == "positive_unitball":
        values = rng.random(shape, dtype=np.float32)
        flat = values.reshape(shape[0], -1) if shape else values.reshape(1, -1)
        flat /= flat.sum(axis=1, keepdims=True)
        return values
    if kind == "bilinear":
        if len(shape) < 2:
            raise ValueError(f"the bilinear filler needs a blob of at least 2 axes, got {shape}")
        return _bilinear(shape)
    raise ValueError(f"unknown filler type {kind!r} (Caffe knows constant, uniform, gaussian, "
                     "xavier, msra, positive_unitball and bilinear)")


def _uniform(rng: np.random.Generator, low: float, high: float, shape) -> np.ndarray:
    values = rng.random(shape, dtype=np.float32)
    values *= np.float32(high - low)
    values += np.float32(low)
    return values


def _normal(rng: np.random.Generator, mean: float, std: float, shape) -> np.ndarray:
    values = rng.standard_normal(shape, dtype=np.float32)
    values *= np.float32(std)
    values += np.float32(mean)
    return values


def _bilinear(shape) -> np.ndarray:
    """Caffe's bilinear upsampling kernel (used by FCN's Deconvolution layers)."""
    height, width = shape[-2], shape[-1]
    factor = math.ceil(width / 2)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    kernel = (1 - np.abs(x / factor - centre)) * (1 - np.abs(y / factor - centre))
    return np.broadcast_to(kernel.astype(np.float32), shape).copy()


def _fillers_for(layer) -> list[caffe_pb2.FillerParameter]:
    """The filler of each blob, in blob order, with Caffe's per-layer defaults."""
    p = layer.param
    if layer.type in ("Convolution", "Deconvolution"):
        return [p.convolution_param.weight_filler, p.convolution_param.bias_filler]
    if layer.type == "InnerProduct":
        return [p.inner_product_param.weight_filler, p.inner_product_param.bias_filler]
    if layer.type == "Embed":
        return [p.embed_param.weight_filler, p.embed_param.bias_filler]
    if layer.type in ("LSTM", "RNN"):  # the unrolled net's InnerProducts: W_x, b, [W_static], W_h...
        weight, bias = p.recurrent_param.weight_filler, p.recurrent_param.bias_filler
        static = [weight] if len(layer.bottoms) == 3 else []
        return [weight, bias, *static, weight] + ([weight, bias] if layer.type == "RNN" else [])
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
    if layer.type == "BN":  # caffe-segnet / caffe-enet: scale, shift
        return [p.bn_param.scale_filler, p.bn_param.shift_filler]
    if layer.type == "BatchNormKyle":  # statistics and factor zero, alpha 1, beta 0
        return [_constant(0.0)] * 3 + [_constant(1.0), _constant(0.0)]
    return []  # BatchNorm and the rest start from zeros


def fill_missing_weights(net: Net, seed: int = 0) -> list[str]:
    """Give every parametric layer without blobs its filler values; return those layers' names.

    The prototxt alone decides how much this allocates, so the total is checked against
    ``MAX_FILLED_VALUES`` before anything is drawn."""
    todo = []
    for layer in net.layers:
        rule = get_blob_rule(layer.type)
        if layer.blobs or rule is None:
            continue
        shapes = rule(layer, [net.shapes[b] for b in layer.bottoms])
        if shapes:
            todo.append((layer, [tuple(shape) for shape in shapes]))
    _check_budget(todo)
    rng = np.random.default_rng(seed)
    for layer, shapes in todo:
        fillers = _fillers_for(layer)
        blobs = []
        for i, shape in enumerate(shapes):
            if i >= len(fillers):
                blobs.append(np.zeros(shape, np.float32))
                continue
            try:
                blobs.append(fill(fillers[i], shape, rng))
            except ValueError as error:
                raise StructureError(f"layer {layer.name!r} ({layer.type}): blob {i} has no "
                                     f"weights to read and its filler fails: {error}") from None
        layer.blobs = blobs
        for i, blob in enumerate(blobs):
            warning = nonfinite_warning(blob, f"layer {layer.name!r} ({layer.type}): blob {i} "
                                              "(from its filler)")
            if warning:
                net.warn(warning)
    return [layer.name for layer, _ in todo]


def _check_budget(todo) -> None:
    sizes = sorted(((sum(math.prod(shape) for shape in shapes), layer.name)
                    for layer, shapes in todo), reverse=True)
    total = sum(size for size, _ in sizes)
    if total > MAX_FILLED_VALUES:
        largest = ", ".join(f"{name!r} ({size:,})" for size, name in sizes[:3])
        raise StructureError(
            f"the layers without stored weights would need {total:,} values from their fillers "
            f"({total * 4 / 2**30:.1f} GiB), more than the {MAX_FILLED_VALUES:,} this converter "
            f"makes up from a prototxt; largest: {largest}. Give the caffemodel that holds them")
