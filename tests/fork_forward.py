"""numpy transcriptions of the segmentation forks' layers, for ``numpy_forward.forward``.

Written from the forks' C++ (read, not copied): pooling_layer.cpp's MAX loop with its mask top,
caffe-segnet / caffe-enet upsample_layer.cpp and bn_layer.cpp (INFERENCE), brocolli-caffe's
maxunpool_layer.cpp and batch_norm_kyle_layer.cpp; plus Caffe's Deconvolution (caffe_ref),
which ENet uses. Values are NCHW; float64 inside, float32 out. ``forward(net, inputs)`` runs a
whole net with these and numpy_forward's BVLC layers.
"""

from __future__ import annotations

import math

import numpy as np

import caffe_ref as ref
import numpy_forward

FLT_MAX = float(np.finfo(np.float32).max)


def max_pool_with_mask(x, kernel, stride, pad, round_mode="ceil"):
    """PoolingLayer::Forward_cpu, MAX, with top[1]: per window the first pixel (row by row)
    strictly above the best so far, starting from -FLT_MAX and index -1; the index is
    ``h * W + w`` within the channel's input plane."""
    x = np.asarray(x, dtype=np.float32)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = (_pooled(length, k, s, p, ph or pw, round_mode)
              for length, k, s, p in ((h, kh, sh, ph), (w, kw, sw, pw)))
    top = np.full((n, c, oh, ow), -FLT_MAX, dtype=np.float32)
    mask = np.full((n, c, oh, ow), -1.0, dtype=np.float32)
    for i in range(oh):
        for j in range(ow):
            hstart, wstart = i * sh - ph, j * sw - pw
            hend, wend = min(hstart + kh, h), min(wstart + kw, w)
            hstart, wstart = max(hstart, 0), max(wstart, 0)
            window = x[:, :, hstart:hend, wstart:wend].reshape(n, c, -1)
            if window.shape[2] == 0:
                continue
            first = np.argmax(window, axis=2)  # the first maximum, as Caffe's strict '>'
            best = np.take_along_axis(window, first[..., None], axis=2)[..., 0]
            width = wend - wstart
            index = (hstart + first // width) * w + wstart + first % width
            taken = best > -FLT_MAX
            top[:, :, i, j] = np.where(taken, best, -FLT_MAX)
            mask[:, :, i, j] = np.where(taken, index, -1)
    return top, mask


def _pooled(length, kernel, stride, pad, padded, round_mode):
    """PoolingLayer::Reshape: ceil (or floor) windows, minus a last one starting in the padding
    when the layer has any padding (on either axis)."""
    span = (length + 2 * pad - kernel) / stride
    out = (math.ceil(span) if round_mode == "ceil" else math.floor(span)) + 1
    return out - 1 if padded and (out - 1) * stride >= length + pad else out


def unpool(x, mask, out_h, out_w):
    """upsample_layer.cpp / maxunpool_layer.cpp: zeros, then ``top[mask[i]] = bottom[i]`` for
    every i in order (a later write wins)."""
    x = np.asarray(x, dtype=np.float32)
    n, c, h, w = x.shape
    top = np.zeros((n * c, out_h * out_w), dtype=np.float32)
    flat_x = x.reshape(n * c, h * w)
    flat_mask = np.asarray(mask).reshape(n * c, h * w).astype(np.int64)
    if flat_mask.size and (flat_mask.max() >= out_h * out_w or flat_mask.min() < 0):
        raise ValueError("unpool index out of range (Caffe aborts)")
    rows = np.arange(n * c)
    for i in range(h * w):
        top[rows, flat_mask[:, i]] = flat_x[:, i]
    return top.reshape(n, c, out_h, out_w)


def segnet_upsample_size(p, h, w):
    """UpsampleLayer::LayerSetUp / Reshape of caffe-segnet and caffe-enet."""
    if p.HasField("upsample_h") and p.HasField("upsample_w"):
        return p.upsample_h, p.upsample_w
    if p.HasField("scale_h"):
        scale_h, scale_w = p.scale_h, p.scale_w
    else:
        scale_h = scale_w = p.scale if p.HasField("scale") else 2
    return h * scale_h - int(p.pad_out_h), w * scale_w - int(p.pad_out_w)


def bn_inference(x, scale, shift):
    """bn_layer.cpp, BNParameter INFERENCE: top = bottom * scale, then += shift (float32)."""
    x = np.asarray(x, dtype=np.float32)
    c = x.shape[1]
    top = x * np.asarray(scale, np.float32).reshape(1, c, 1, 1)
    return top + np.asarray(shift, np.float32).reshape(1, c, 1, 1)


def batch_norm_kyle(x, mean, var, factor, eps, alpha=None, beta=None):
    """batch_norm_kyle_layer.cpp with global stats: BatchNorm, then * alpha + beta."""
    y = ref.batch_norm(x, mean, var, factor, eps=eps).astype(np.float64)
    if alpha is not None:
        shape = (1, -1) + (1,) * (y.ndim - 2)
        y = y * np.asarray(alpha, np.float64).reshape(shape) + np.asarray(beta).reshape(shape)
    return y.astype(np.float32)


# --- the layer table ---------------------------------------------------------------------------

def _pooling(layer, bottoms):
    p = layer.param.pooling_param
    if len(layer.tops) == 1:
        return numpy_forward._LAYERS["Pooling"](layer, bottoms)
    assert p.pool == p.MAX and not p.global_pooling
    hw = numpy_forward._pool_hw
    return list(max_pool_with_mask(bottoms[0], hw(p, "kernel"), hw(p, "stride"), hw(p, "pad")))


def _upsample(layer, bottoms):
    assert len(bottoms) == 2, "fork_forward: the two-bottom SegNet/ENet Upsample"
    n, c, h, w = bottoms[0].shape
    return [unpool(bottoms[0], bottoms[1], *segnet_upsample_size(layer.param.upsample_param,
                                                                 h, w))]


def _max_unpool(layer, bottoms):
    p = layer.param.max_unpool_param
    return [unpool(bottoms[0], bottoms[1], p.dst_h, p.dst_w)]


def _bn(layer, bottoms):
    p = layer.param.bn_param
    assert p.bn_mode == p.INFERENCE, "fork_forward: BN in INFERENCE mode only"
    return [bn_inference(bottoms[0], layer.blobs[0], layer.blobs[1])]


def _batch_norm_kyle(layer, bottoms):
    p = layer.param.batch_norm_param
    assert not p.HasField("use_global_stats") or p.use_global_stats, "batch statistics"
    affine = layer.blobs[3:5] if p.use_alpha_beta else (None, None)
    return [batch_norm_kyle(bottoms[0], *layer.blobs[:3], p.eps, *affine)]


def _deconvolution(layer, bottoms):
    p = layer.param.convolution_param
    dilation = list(p.dilation) or [1]
    bias = layer.blobs[1] if p.bias_term else None
    hw = numpy_forward._conv_hw
    return [ref.deconvolution(bottoms[0], layer.blobs[0], bias, stride=hw(p, "stride", 1),
                              pad=hw(p, "pad", 0), dilation=(dilation[0], dilation[-1]),
                              group=p.group)]


LAYERS = {
    "Pooling": _pooling,
    "Upsample": _upsample,
    "MaxUnPool": _max_unpool,
    "BN": _bn,
    "BatchNormKyle": _batch_norm_kyle,
    "Deconvolution": _deconvolution,
}


def forward(net, inputs):
    """numpy_forward.forward with the fork layers above."""
    return numpy_forward.forward(net, inputs, extra=LAYERS)
