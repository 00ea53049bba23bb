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
                # optimize: a BLAS product (same sums, fast enough for full-size nets)
                y[:, g * out_per_group:(g + 1) * out_per_group] += np.einsum(
                    "nchw,oc->nohw", patch, wg[:, :, a, bb], optimize=True)
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

def pooled_size(length, kernel, stride, pad, round_mode="ceil", padded=None):
    """Caffe's pooled output length along one axis, including the last-window clip rule.

    Caffe clips (drops a last window that would start in the padding) on every axis when the
    layer has any padding at all (``if (pad_h_ || pad_w_)`` in PoolingLayer::Reshape), so
    ``padded`` says whether *either* pad is non-zero; by default, this axis' pad alone (for
    1-D use). ``pooled_shape`` gives both axes."""
    padded = pad > 0 if padded is None else padded
    span = (length + 2 * pad - kernel) / stride
    out = (math.ceil(span) if round_mode == "ceil" else math.floor(span)) + 1
    if padded and (out - 1) * stride >= length + pad:
        out -= 1
    return out


def pooled_shape(hw, kernel, stride, pad, round_mode="ceil"):
    """Caffe's pooled (H, W): the clip rule applies to both axes if either pad is non-zero."""
    padded = any(p > 0 for p in pad)
    return tuple(pooled_size(n, k, s, p, round_mode, padded)
                 for n, k, s, p in zip(hw, kernel, stride, pad))


def pooling(x, pool, kernel, stride=1, pad=0, round_mode="ceil", global_pooling=False):
    """Caffe's MAX / AVE pooling of x (N, C, H, W), following PoolingLayer::Forward_cpu."""
    x = _f64(x)
    n, c, h, w = x.shape
    pool = pool.lower()
    if global_pooling:
        (kh, kw), (sh, sw), (ph, pw) = (h, w), (1, 1), (0, 0)
    else:
        (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(pad)
    oh, ow = pooled_shape((h, w), (kh, kw), (sh, sw), (ph, pw), round_mode)
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


# --- data-moving layers: Crop, Permute, Tile, ShuffleChannel, ArgMax, Reduction -----------------

def crop(x, reference_shape, axis=2, offset=()):
    """Caffe Crop: axes from ``axis`` on take the reference's size, starting at ``offset`` (none:
    0 everywhere, one value: for every cropped axis, else one per cropped axis)."""
    x = _f64(x)
    axis = axis % x.ndim
    offset = list(offset)
    index = []
    for i in range(x.ndim):
        if i < axis:
            index.append(np.s_[:])
            continue
        start = offset[0] if len(offset) == 1 else (offset[i - axis] if offset else 0)
        assert start + reference_shape[i] <= x.shape[i]
        index.append(np.s_[start:start + reference_shape[i]])
    return _out(x[tuple(index)])


def permute(x, order):
    """Caffe (SSD) Permute: top axis i is bottom axis order[i]; unlisted axes follow in order."""
    x = _f64(x)
    order = list(order) + [i for i in range(x.ndim) if i not in order]
    return _out(np.transpose(x, order))


def tile(x, axis=1, tiles=1):
    """Caffe Tile: per outer index, the block of count(axis) elements copied ``tiles`` times."""
    x = _f64(x)
    axis = axis % x.ndim
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    block = x.reshape(outer, -1)
    out = np.concatenate([block] * tiles, axis=1)
    return _out(out.reshape(x.shape[:axis] + (x.shape[axis] * tiles,) + x.shape[axis + 1:]))


def shuffle_channel(x, group):
    """ShuffleNet's ShuffleChannel: output channel j*group + i is input channel i*(C/group) + j."""
    x = _f64(x)
    per_group = x.shape[1] // group
    assert per_group * group == x.shape[1]
    y = np.empty_like(x)
    for i in range(group):
        for j in range(per_group):
            y[:, j * group + i] = x[:, i * per_group + j]
    return _out(y)


def argmax(x, top_k=1, out_max_val=False, axis=None):
    """Caffe ArgMax, following ArgMaxLayer::Forward_cpu: (value, index) pairs sorted with
    std::greater, so equal values come by descending index."""
    x = _f64(x)
    if axis is not None:
        axis = axis % x.ndim
        moved = np.moveaxis(x, axis, -1)
        out = np.empty(moved.shape[:-1] + (top_k,))
        for where in np.ndindex(*moved.shape[:-1]):
            ranked = sorted(((v, j) for j, v in enumerate(moved[where])), reverse=True)[:top_k]
            out[where] = [v if out_max_val else j for v, j in ranked]
        return _out(np.moveaxis(out, -1, axis))
    n = x.shape[0]
    flat = x.reshape(n, -1)
    top = [1] * max(3, x.ndim)
    top[0], top[1], top[2] = n, 2 if out_max_val else 1, top_k
    out = np.zeros((n, top[1], top_k))
    for i in range(n):
        ranked = sorted(((v, j) for j, v in enumerate(flat[i])), reverse=True)[:top_k]
        out[i, 0] = [j for _, j in ranked]
        if out_max_val:
            out[i, 1] = [v for v, _ in ranked]
    return _out(out.reshape(top))


def reduction(x, operation="SUM", axis=0, coeff=1.0):
    """Caffe Reduction: every axis from ``axis`` on is reduced; MEAN divides by their count."""
    x = _f64(x)
    axis = axis % x.ndim
    flat = x.reshape(x.shape[:axis] + (-1,))
    operation = operation.upper()
    if operation in ("SUM", "MEAN"):
        y = flat.sum(axis=-1)
    elif operation == "ASUM":
        y = np.abs(flat).sum(axis=-1)
    elif operation == "SUMSQ":
        y = (flat * flat).sum(axis=-1)
    else:
        raise ValueError(f"unknown reduction {operation!r}")
    if operation == "MEAN":
        y = y / flat.shape[-1]
    return _out(coeff * y)


# --- SSD and fork layers: ReLU6, Normalize, MVN, Upsample, Interp, Axpy, PriorBox, DetectionOutput

def relu6(x, negative_slope=0.0, threshold=6.0):
    """relu6_layer.cpp: min(max(x, 0) + negative_slope * min(x, 0), threshold)."""
    x = _f64(x)
    return _out(np.minimum(np.maximum(x, 0) + negative_slope * np.minimum(x, 0), threshold))


def normalize(x, scale, across_spatial=True, channel_shared=True, eps=1e-10):
    """normalize_layer.cpp on (N, C, ...): L2 norm over everything but N (across_spatial) or
    over C at each position, eps added inside the square root, then times the scale."""
    x = _f64(x)
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    y = np.empty_like(flat)
    for i in range(n):
        if across_spatial:
            y[i] = flat[i] / math.sqrt(float(np.sum(flat[i] ** 2)) + eps)
        else:
            for p in range(flat.shape[2]):
                y[i, :, p] = flat[i, :, p] / math.sqrt(float(np.sum(flat[i, :, p] ** 2)) + eps)
    s = _f64(scale).reshape(-1)
    y = y * (s[0] if channel_shared else s.reshape(1, c, 1))
    return _out(y.reshape(x.shape))


def mvn(x, normalize_variance=True, across_channels=False, eps=1e-9):
    """mvn_layer.cpp: per item (across_channels) or per item and channel, subtract the mean,
    then divide by sqrt(variance) + eps. The top is 4-D (num, channels, height, width)."""
    x = _f64(x)
    legacy = tuple(x.shape) + (1,) * (4 - x.ndim)
    x = x.reshape(legacy)
    groups = x.reshape(legacy[0] if across_channels else legacy[0] * legacy[1], -1)
    y = np.empty_like(groups)
    for g in range(groups.shape[0]):
        centred = groups[g] - groups[g].mean()
        if normalize_variance:
            centred = centred / (math.sqrt(float(np.mean(centred ** 2))) + eps)
        y[g] = centred
    return _out(y.reshape(legacy))


def upsample(x, scale, dims_num=4):
    """upsample_layer.cpp: out[..., h, w] = in[..., h // scale, w // scale] (dims_num 4) or
    out[..., w] = in[..., w // scale] (dims_num 3)."""
    x = _f64(x)
    if dims_num == 4:
        n, c, h, w = x.shape
        y = np.empty((n, c, h * scale, w * scale))
        for oh in range(h * scale):
            for ow in range(w * scale):
                y[:, :, oh, ow] = x[:, :, oh // scale, ow // scale]
    else:
        n, c, w = x.shape
        y = np.empty((n, c, w * scale))
        for ow in range(w * scale):
            y[:, :, ow] = x[:, :, ow // scale]
    return _out(y)


def interp(x, height, width, pad_beg=0, pad_end=0):
    """PSPNet/DeepLab Interp (caffe_cpu_interp2): crop -pad_beg / -pad_end, then bilinear with
    the corners aligned: source = i * (in - 1) / (out - 1), the neighbour clamped to the edge."""
    x = _f64(x)
    n, c, h, w = x.shape
    crop = -pad_beg
    h1, w1 = h + pad_beg + pad_end, w + pad_beg + pad_end
    region = x[:, :, crop:crop + h1, crop:crop + w1]
    if (h1, w1) == (height, width):
        return _out(region)
    y = np.empty((n, c, height, width))
    rh = (h1 - 1) / (height - 1) if height > 1 else 0.0
    rw = (w1 - 1) / (width - 1) if width > 1 else 0.0
    for oh in range(height):
        sh = rh * oh
        i0 = int(sh)
        i1 = i0 + (1 if i0 < h1 - 1 else 0)
        lh = sh - i0
        for ow in range(width):
            sw = rw * ow
            j0 = int(sw)
            j1 = j0 + (1 if j0 < w1 - 1 else 0)
            lw = sw - j0
            y[:, :, oh, ow] = ((1 - lh) * ((1 - lw) * region[:, :, i0, j0] + lw * region[:, :, i0, j1])
                               + lh * ((1 - lw) * region[:, :, i1, j0] + lw * region[:, :, i1, j1]))
    return _out(y)


def axpy(a, x, y):
    """SENet's Axpy: a (N, C[, 1, 1]) times x (N, C, ...) plus y."""
    x = _f64(x)
    factor = _f64(a).reshape(x.shape[:2] + (1,) * (x.ndim - 2))
    return _out(factor * x + _f64(y))


def prior_box(feature_hw, image_hw, min_sizes, max_sizes=(), aspect_ratios=(), flip=True,
              clip=True, variances=(), img_size=None, step=None, offset=0.5):
    """prior_box_layer.cpp: (1, 2, H*W*num_priors*4). Per cell, per min_size (truncated to an
    int by Caffe): the square min box, the sqrt(min*max) box, then one box per aspect ratio
    other than 1 (1 first, new ratios in order, each followed by 1/ratio with flip). Boxes are
    (centre -/+ size/2) / image size, clipped to [0, 1] with clip; row 1 holds the variances
    (default 0.1). ``img_size`` and ``step`` are (height, width) or None."""
    ratios = [1.0]
    for ar in aspect_ratios:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if flip:
            ratios.append(1.0 / ar)
    img_h, img_w = img_size or image_hw
    fh, fw = feature_hw
    step_h, step_w = step or (img_h / fh, img_w / fw)
    boxes = []
    for h in range(fh):
        for w in range(fw):
            cx, cy = (w + offset) * step_w, (h + offset) * step_h
            for s, min_size in enumerate(min_sizes):
                size = int(min_size)
                sides = [(size, size)]
                if max_sizes:
                    big = math.sqrt(size * int(max_sizes[s]))
                    sides.append((big, big))
                sides += [(size * math.sqrt(r), size / math.sqrt(r)) for r in ratios
                          if abs(r - 1.0) >= 1e-6]
                for bw, bh in sides:
                    boxes += [(cx - bw / 2) / img_w, (cy - bh / 2) / img_h,
                              (cx + bw / 2) / img_w, (cy + bh / 2) / img_h]
    boxes = np.array(boxes)
    if clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    variances = list(variances) or [0.1]
    spread = np.tile(np.array(variances if len(variances) == 4 else variances * 4), len(boxes) // 4)
    return _out(np.stack([boxes, spread])[np.newaxis])


def _decode_box(prior, variance, delta, code_type, variance_in_target):
    if variance_in_target:
        variance = [1.0] * 4
    px0, py0, px1, py1 = prior
    if code_type == "corner":
        return [prior[k] + variance[k] * delta[k] for k in range(4)]
    pw, ph = px1 - px0, py1 - py0
    if code_type == "corner_size":
        scale = [pw, ph, pw, ph]
        return [prior[k] + variance[k] * delta[k] * scale[k] for k in range(4)]
    cx = variance[0] * delta[0] * pw + (px0 + px1) / 2
    cy = variance[1] * delta[1] * ph + (py0 + py1) / 2
    w = math.exp(variance[2] * delta[2]) * pw
    h = math.exp(variance[3] * delta[3]) * ph
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _area(b):
    return 0.0 if b[2] < b[0] or b[3] < b[1] else (b[2] - b[0]) * (b[3] - b[1])


def _iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (_area(a) + _area(b) - inter)


def detection_output(loc, conf, priors, num_classes, share_location=True, background_label_id=0,
                     code_type="corner", variance_encoded_in_target=False, keep_top_k=-1,
                     confidence_threshold=None, nms_threshold=0.3, top_k=-1, eta=1.0):
    """detection_output_layer.cpp + bbox_util.cpp (ApplyNMSFast), with nms_param given.

    loc (N, P*L*4), conf (N, P*num_classes), priors (1, 2, P*4). Returns Caffe's top
    (1, 1, rows, 7): per image, by ascending label, rows [image, label, score, box]; one
    [i, -1, ...] row per image when no image has a detection."""
    loc, conf, priors = _f64(loc), _f64(conf), _f64(priors)
    n = loc.shape[0]
    p_count = priors.shape[2] // 4
    loc_classes = 1 if share_location else num_classes
    loc = loc.reshape(n, p_count, loc_classes, 4)
    conf = conf.reshape(n, p_count, num_classes)
    prior_boxes = priors[0, 0].reshape(p_count, 4)
    prior_vars = priors[0, 1].reshape(p_count, 4)
    threshold = -FLT_MAX if confidence_threshold is None else confidence_threshold
    rows = []
    for i in range(n):
        decoded = {}
        for c in range(loc_classes):
            decoded[c] = [_decode_box(prior_boxes[p], prior_vars[p], loc[i, p, c], code_type,
                                      variance_encoded_in_target) for p in range(p_count)]
        kept = {}
        for c in range(num_classes):
            if c == background_label_id:
                continue
            boxes = decoded[0 if share_location else c]
            scores = conf[i, :, c]
            order = sorted((p for p in range(p_count) if scores[p] > threshold),
                           key=lambda p: -scores[p])  # sorted() is stable
            if top_k > -1:
                order = order[:top_k]
            chosen, adaptive = [], nms_threshold
            for p in order:
                if all(_iou(boxes[p], boxes[q]) <= adaptive for q in chosen):
                    chosen.append(p)
                    if eta < 1 and adaptive > 0.5:
                        adaptive *= eta
            kept[c] = chosen
        pairs = [(conf[i, p, c], c, p) for c in sorted(kept) for p in kept[c]]
        if keep_top_k > -1 and len(pairs) > keep_top_k:
            best = sorted(pairs, key=lambda t: -t[0])[:keep_top_k]
            pairs = [t for c in sorted(kept) for t in best if t[1] == c]
        for score, c, p in pairs:
            box = decoded[0 if share_location else c][p]
            rows.append([i, c, score] + list(box))
    if not rows:
        rows = [[i] + [-1] * 6 for i in range(n)]
    return _out(np.array(rows).reshape(1, 1, -1, 7))
