"""Folding BatchNorm and Scale into the convolution before them (``--fold-batchnorm``).

At inference Caffe computes, per output channel c of a convolution y = W * x + b::

    BatchNorm:  z = (y - mean_c) / sqrt(var_c + eps)     mean, var = blob0 / s, blob1 / s
    Scale:      t = gamma_c * z + beta_c

(mean = var = 0 when the scale factor s is 0, as Caffe does), which is one convolution::

    W'_c = W_c * k_c,   b'_c = (b_c - mean_c) * k_c + beta_c,   k_c = gamma_c / sqrt(var_c + eps)

with gamma = 1 and beta = 0 when there is no Scale, and mean = 0, k = gamma when there is no
BatchNorm. Products are formed in float64 and rounded to float32 once, so the folded model
differs from the unfolded one by float32 round-off only.

A chain folds when the convolution's output feeds the BatchNorm alone (and the BatchNorm's
the Scale alone) and none of the intermediate values is a chosen output. The folded layer is
a Convolution named after the last layer it absorbed (like the BatchNorm+Scale fusion, which
is named after the Scale), producing what that layer produced; so ``verify`` compares it with
Caffe's Scale output, and the absorbed layers' own outputs no longer exist.
"""

from __future__ import annotations

import numpy as np

from .ir import Layer, Net
from .passes import is_channel_scale
from .proto import caffe_pb2


def fold_batchnorm(net: Net) -> Net:
    """Fold every Convolution -> [BatchNorm] -> [Scale] chain into one Convolution."""
    readers = net.consumers()
    wanted = set(net.output_values or ())
    absorbed: set[str] = set()
    replacement: dict[str, Layer] = {}
    for conv in net.layers:
        if not _foldable_convolution(conv, net):
            continue
        chain = [conv]
        for kind in ("BatchNorm", "Scale"):
            value = chain[-1].tops[0]
            following = readers.get(value, [])
            if value in wanted or len(following) != 1 or following[0].type != kind:
                continue
            if (kind == "BatchNorm" and _foldable_batchnorm(following[0], value)) or \
                    (kind == "Scale" and _foldable_scale(following[0], value, net)):
                chain.append(following[0])
        if len(chain) == 1:
            continue
        last = chain[-1]
        replacement[last.name] = _folded(conv, chain[1:])
        absorbed.update(layer.name for layer in chain[:-1])
    net.layers = [replacement.get(layer.name, layer) for layer in net.layers
                  if layer.name not in absorbed]
    return net


def _foldable_convolution(layer: Layer, net: Net) -> bool:
    if layer.type != "Convolution" or len(layer.tops) != 1 or len(layer.bottoms) != 1 \
            or not layer.blobs:
        return False
    shape = net.shapes.get(layer.tops[0])
    axis = layer.param.convolution_param.axis
    return shape is not None and len(shape) == 4 and axis in (1, -3)


def _foldable_batchnorm(layer: Layer, value: str) -> bool:
    p = layer.param.batch_norm_param
    global_stats = not p.HasField("use_global_stats") or p.use_global_stats
    return (layer.bottoms == [value] and len(layer.tops) == 1 and len(layer.blobs) >= 3
            and global_stats)


def _foldable_scale(layer: Layer, value: str, net: Net) -> bool:
    expected = 2 if layer.param.scale_param.bias_term else 1
    return (is_channel_scale(layer, value, len(net.shapes[value])) and len(layer.tops) == 1
            and len(layer.blobs) == expected)


def _folded(conv: Layer, absorbed: list[Layer]) -> Layer:
    weights = conv.blobs[0].astype(np.float64)  # (C_out, C_in / group, kh, kw)
    channels = weights.shape[0]
    has_bias = conv.param.convolution_param.bias_term and len(conv.blobs) > 1
    bias = conv.blobs[1].astype(np.float64).reshape(-1) if has_bias else np.zeros(channels)
    factor, shift = np.ones(channels), np.zeros(channels)  # t = y * factor + shift
    for layer in absorbed:
        if layer.type == "BatchNorm":
            s = float(layer.blobs[2].reshape(-1)[0])
            inverse = 0.0 if s == 0 else 1.0 / s
            mean = layer.blobs[0].astype(np.float64).reshape(-1) * inverse
            var = layer.blobs[1].astype(np.float64).reshape(-1) * inverse
            k = 1.0 / np.sqrt(var + layer.param.batch_norm_param.eps)
            factor, shift = factor * k, (shift - mean) * k
        else:
            gamma = layer.blobs[0].astype(np.float64).reshape(-1)
            beta = (layer.blobs[1].astype(np.float64).reshape(-1)
                    if layer.param.scale_param.bias_term else np.zeros(channels))
            factor, shift = factor * gamma, shift * gamma + beta
    last = absorbed[-1]
    param = caffe_pb2.LayerParameter()
    param.CopyFrom(conv.param)
    param.name = last.name
    param.convolution_param.bias_term = True
    blobs = [(weights * factor[:, None, None, None]).astype(np.float32),
             (bias * factor + shift).astype(np.float32)]
    return Layer(name=last.name, type="Convolution", bottoms=list(conv.bottoms),
                 tops=list(last.tops), param=param, blobs=blobs, top_blobs=list(last.top_blobs))
