"""An independent numpy implementation of Caffe's forward passes, used by the tests as ground truth.

Written from Caffe's layer sources (src/caffe/layers/*.cpp), not from the converter: inputs are in
Caffe's layout (NCHW for images), arithmetic is float64 and results are float32. Loops follow
Caffe's own loops where the window arithmetic is the point (pooling, LRN); elsewhere they are
vectorised. Meant for small inputs.
"""

from __future__ import annotations

import math

import numpy as np


FLT_MAX = float(np.finfo(np.float32).max)


def _pair(value) -> tuple[int, int]:
    if np.ndim(value) == 0:
        return int(value), int(value)
    h, w = value
    return int(h), int(w)


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _out(y) -> np.ndarray:
    return np.asarray(y, dtype=np.float32)


# --- convolution family -------------------------------------------------------------------------

def convolution(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """x (N, C, H, W), w (C_out, C/group, kh, kw), b (C_out,) or None."""
    x, w = _f64(x), _f64(w)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(pad), _pair(dilation)
    n, c, h, wd = x.shape
    c_out, c_per_group, kh, kw = w.shape
    assert c == c_per_group * group and c_out % group == 0
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    y = np.zeros((n, c_out, oh, ow))
    out_per_group = c_out // group
    for g in range(group):
        xg = xp[:, g * c_per_group:(g + 1) * c_per_group]
        wg = w[g * out_per_group:(g + 1) * out_per_group]
        for a in range(kh):
            for bb in range(kw):
                patch = xg[:, :, a * dh:a * dh + sh * (oh - 1) + 1:sh,
                           bb * dw:bb * dw + sw * (ow - 1) + 1:sw]
                y[:, g * out_per_group:(g + 1) * out_per_group] += np.einsum(
                    "nchw,oc->nohw", patch, wg[:, :, a, bb])
    if b is not None:
        y += _f64(b).reshape(1, -1, 1, 1)
    return _out(y)


def deconvolution(x, w, b=None, stride=1, pad=0, dilation=1, group=1):
    """x (N, C, H, W), w (C, C_out/group, kh, kw), b (C_out,) or None.

    Caffe scatters every input pixel through the kernel (col2im) into an output of
    ``s(H-1) + d(k-1) + 1`` and then drops ``pad`` rows/columns on each side.
    """
    x, w = _f64(x), _f64(w)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(pad), _pair(dilation)
    n, c, h, wd = x.shape
    c_in, out_per_group, kh, kw = w.shape
    assert c == c_in and c % group == 0
    in_per_group = c // group
    c_out = out_per_group * group
    full_h = sh * (h - 1) + dh * (kh - 1) + 1
    full_w = sw * (wd - 1) + dw * (kw - 1) + 1
    full = np.zeros((n, c_out, full_h, full_w))
    for g in range(group):
        xg = x[:, g * in_per_group:(g + 1) * in_per_group]
        wg = w[g * in_per_group:(g + 1) * in_per_group]
        for a in range(kh):
            for bb in range(kw):
                full[:, g * out_per_group:(g + 1) * out_per_group,
                     a * dh:a * dh + sh * (h - 1) + 1:sh,
                     bb * dw:bb * dw + sw * (wd - 1) + 1:sw] += np.einsum(
                    "nchw,co->nohw", xg, wg[:, :, a, bb])
    y = full[:, :, ph:full_h - ph, pw:full_w - pw]
    if b is not None:
        y = y + _f64(b).reshape(1, -1, 1, 1)
    return _out(y)


def inner_product(x, w, b=None, axis=1, transpose=False):
    """w is (N_out, K), or (K, N_out) with ``transpose``; K is the size of x.shape[axis:]."""
    x, w = _f64(x), _f64(w)
    axis = axis % x.ndim
    lead = x.shape[:axis]
    flat = x.reshape(int(np.prod(lead, dtype=np.int64)), -1)
    weights = w if transpose else w.T  # (K, N_out)
    y = flat @ weights
    if b is not None:
        y = y + _f64(b).reshape(1, -1)
    return _out(y.reshape(*lead, weights.shape[1]))


# --- pooling and normalisation ------------------------------------------------------------------

def pooled_size(length, kernel, stride, pad, round_mode="ceil"):
    """Caffe's pooled output length along one axis, including the last-window clip rule."""
    span = (length + 2 * pad - kernel) / stride
    out = (math.ceil(span) if round_mode == "ceil" else math.floor(span)) + 1
    if pad > 0 and (out - 1) * stride >= length + pad:
        out -= 1
    return out


def pooling(x, pool, kernel, stride=1, pad=0, round_mode="ceil", global_pooling=False):
    """Caffe's MAX / AVE pooling of x (N, C, H, W), following PoolingLayer::Forward_cpu."""
    x = _f64(x)
    n, c, h, w = x.shape
    pool = pool.lower()
    if global_pooling:
        (kh, kw), (sh, sw), (ph, pw) = (h, w), (1, 1), (0, 0)
    else:
        (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(pad)
    oh = pooled_size(h, kh, sh, ph, round_mode)
    ow = pooled_size(w, kw, sw, pw, round_mode)
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hstart, wstart = i * sh - ph, j * sw - pw
            if pool == "max":
                hend, wend = min(hstart + kh, h), min(wstart + kw, w)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                # Caffe starts from -FLT_MAX, which is what a window holding no pixel yields
                # (ceil mode, no padding, stride > kernel: the last window can start past the
                # image).
                y[:, :, i, j] = x[:, :, hstart:hend, wstart:wend].max(axis=(2, 3),
                                                                       initial=-FLT_MAX)
            elif pool == "ave":
                hend, wend = min(hstart + kh, h + ph), min(wstart + kw, w + pw)
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, h), min(wend, w)
                total = x[:, :, hstart:hend, wstart:wend].sum(axis=(2, 3))
                with np.errstate(invalid="ignore"):  # such an empty window gives 0 / 0 = NaN
                    y[:, :, i, j] = total / np.float64(pool_size)
            else:
                raise ValueError(f"unknown pool {pool!r}")
    return _out(y)


def lrn(x, local_size=5, alpha=1.0, beta=0.75, k=1.0, region="across_channels"):
    """Caffe's LRN of x (N, C, H, W); region "across_channels" or "within_channel"."""
    x = _f64(x)
    n, c, h, w = x.shape
    r = (local_size - 1) // 2
    sq = x * x
    scale = np.empty_like(x)
    if region.lower() == "across_channels":
        for ch in range(c):
            lo, hi = max(ch - r, 0), min(ch + r + 1, c)
            scale[:, ch] = k + alpha / local_size * sq[:, lo:hi].sum(axis=1)
    elif region.lower() == "within_channel":
        for i in range(h):
            for j in range(w):
                window = sq[:, :, max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
                scale[:, :, i, j] = 1.0 + alpha / local_size ** 2 * window.sum(axis=(2, 3))
    else:
        raise ValueError(f"unknown region {region!r}")
    return _out(x * scale ** -beta)


def batch_norm(x, mean, var, scale_factor, eps=1e-5):
    """Caffe BatchNorm in inference: blobs are accumulated sums divided by ``scale_factor``."""
    x = _f64(x)
    s = float(np.asarray(scale_factor).reshape(-1)[0])
    f = 0.0 if s == 0 else 1.0 / s
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m = (f * _f64(mean)).reshape(shape)
    v = (f * _f64(var)).reshape(shape)
    return _out((x - m) / np.sqrt(v + eps))


def _axis_shape(x_ndim, axis, num_axes):
    axis = axis % x_ndim
    count = x_ndim - axis if num_axes == -1 else num_axes
    return axis, count


def _broadcast_to_axes(p, x_shape, axis, num_axes):
    axis, count = _axis_shape(len(x_shape), axis, num_axes)
    p = _f64(p)
    assert p.shape == tuple(x_shape[axis:axis + count]), (p.shape, x_shape, axis, count)
    return p.reshape((1,) * axis + p.shape + (1,) * (len(x_shape) - axis - count))


def scale(x, gamma, beta=None, axis=1, num_axes=None):
    """Caffe Scale: gamma has the shape of x.shape[axis:axis+num_axes] (None: gamma's rank)."""
    x = _f64(x)
    num_axes = np.ndim(gamma) if num_axes is None else num_axes
    y = x * _broadcast_to_axes(gamma, x.shape, axis, num_axes)
    if beta is not None:
        y = y + _broadcast_to_axes(beta, x.shape, axis, num_axes)
    return _out(y)


def bias(x, b, axis=1, num_axes=None):
    """Caffe Bias: b has the shape of x.shape[axis:axis+num_axes] (None: b's rank)."""
    x = _f64(x)
    num_axes = np.ndim(b) if num_axes is None else num_axes
    return _out(x + _broadcast_to_axes(b, x.shape, axis, num_axes))


# --- neurons ------------------------------------------------------------------------------------

def relu(x, negative_slope=0.0):
    x = _f64(x)
    return _out(np.maximum(x, 0) + negative_slope * np.minimum(x, 0))


def prelu(x, slope, channel_shared=False):
    """Channel axis 1; slope has one value (channel_shared) or one per channel."""
    x = _f64(x)
    slope = _f64(slope).reshape(-1)
    if channel_shared:
        a = slope[0]
    else:
        assert slope.size == x.shape[1]
        a = slope.reshape((1, -1) + (1,) * (x.ndim - 2))
    return _out(np.maximum(x, 0) + a * np.minimum(x, 0))


def elu(x, alpha=1.0):
    x = _f64(x)
    return _out(np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1)))


def power(x, power=1.0, scale=1.0, shift=0.0):
    x = _f64(x)
    if power * scale == 0:
        return _out(np.full(x.shape, 1.0 if power == 0 else np.power(shift, power)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.power(shift + scale * x, power))


def exp(x, base=-1.0, scale=1.0, shift=0.0):
    x = _f64(x)
    log_base = 1.0 if base == -1 else math.log(base)
    return _out(np.exp(log_base * (shift + scale * x)))


def log(x, base=-1.0, scale=1.0, shift=0.0):
    x = _f64(x)
    log_base = 1.0 if base == -1 else math.log(base)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.log(shift + scale * x) / log_base)


def bnll(x):
    """Caffe's formula: x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))."""
    x = _f64(x)
    return _out(np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(-np.abs(x)))))


def threshold(x, threshold=0.0):
    return _out(_f64(x) > threshold)


def absval(x):
    return _out(np.abs(_f64(x)))


def sigmoid(x):
    return _out(1.0 / (1.0 + np.exp(-_f64(x))))


def tanh(x):
    return _out(np.tanh(_f64(x)))


def softmax(x, axis=1):
    x = _f64(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return _out(e / e.sum(axis=axis, keepdims=True))


# --- multi-input and shape layers ---------------------------------------------------------------

def eltwise(xs, op="sum", coeff=None):
    xs = [_f64(x) for x in xs]
    op = op.lower()
    if op == "sum":
        coeff = [1.0] * len(xs) if not coeff else list(coeff)
        assert len(coeff) == len(xs)
        return _out(sum(c * x for c, x in zip(coeff, xs)))
    assert not coeff, "Caffe allows coefficients only for SUM"
    if op == "prod":
        return _out(np.prod(np.stack(xs), axis=0))
    if op == "max":
        return _out(np.max(np.stack(xs), axis=0))
    raise ValueError(f"unknown eltwise op {op!r}")


def concat(xs, axis=1):
    return _out(np.concatenate([_f64(x) for x in xs], axis=axis))


def flatten(x, axis=1, end_axis=-1):
    x = _f64(x)
    axis, end_axis = axis % x.ndim, end_axis % x.ndim
    shape = x.shape[:axis] + (-1,) + x.shape[end_axis + 1:]
    return _out(x.reshape(shape))


def reshape(x, shape, axis=0, num_axes=-1):
    """Caffe Reshape: replaces x.shape[axis:axis+num_axes] by ``shape``; 0 copies the dimension at
    the same position of the replaced range, one -1 is inferred. Row-major (NCHW) order."""
    x = _f64(x)
    start = axis if axis >= 0 else x.ndim + 1 + axis
    end = x.ndim if num_axes == -1 else start + num_axes
    replaced = x.shape[start:end]
    new = []
    for i, d in enumerate(shape):
        new.append(replaced[i] if d == 0 else d)
    full = list(x.shape[:start]) + new + list(x.shape[end:])
    return _out(x.reshape(full))


def slice(x, axis=1, slice_points=None, num_tops=None):
    """Caffe Slice: cut at ``slice_points``, or into ``num_tops`` equal parts."""
    x = _f64(x)
    if slice_points:
        points = list(slice_points)
    else:
        assert x.shape[axis] % num_tops == 0
        step = x.shape[axis] // num_tops
        points = [step * i for i in range(1, num_tops)]
    return [_out(part) for part in np.split(x, points, axis=axis)]
