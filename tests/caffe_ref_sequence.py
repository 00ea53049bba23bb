"""Numpy transcriptions of Caffe's Embed, LSTM, RNN, Im2col and SPP (float64, Caffe's layout:
recurrent blobs time-major (T, N, ...)), written from embed_layer.cpp, the nets
lstm_layer.cpp / rnn_layer.cpp unroll (with lstm_unit_layer.cpp), im2col.cpp and
spp_layer.cpp."""

from __future__ import annotations

import math

import numpy as np

import caffe_ref as ref


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def embed(x, weight, bias=None):
    """Row static_cast<int>(x) of weight (K, N_out), plus the bias; shape x.shape + (N_out,)."""
    y = np.asarray(weight, np.float64)[np.asarray(x).astype(np.int64)]
    return (y + np.asarray(bias, np.float64) if bias is not None else y).astype(np.float32)


def _static_term(x_static, weight):
    if x_static is None:
        return 0.0
    flat = np.asarray(x_static, np.float64).reshape(len(x_static), -1)
    return flat @ np.asarray(weight, np.float64).T


def lstm(x, cont, w_xc, b_c, w_hc, x_static=None, w_static=None):
    """Caffe's LSTM: x (T, N, ...), cont (T, N) -> h (T, N, H); gates i, f, o, g."""
    t_steps, n = cont.shape
    hidden = w_hc.shape[1]
    x_proj = np.asarray(x, np.float64).reshape(t_steps, n, -1) @ np.asarray(w_xc, np.float64).T
    x_proj = x_proj + np.asarray(b_c, np.float64)
    static = _static_term(x_static, w_static)
    h = np.zeros((n, hidden))
    c = np.zeros((n, hidden))
    out = []
    for t in range(t_steps):
        keep = np.asarray(cont[t], np.float64)[:, None]
        gates = (h * keep) @ np.asarray(w_hc, np.float64).T + x_proj[t] + static
        i = _sigmoid(gates[:, :hidden])
        f = np.where(keep == 0, 0.0, keep * _sigmoid(gates[:, hidden:2 * hidden]))
        o = _sigmoid(gates[:, 2 * hidden:3 * hidden])
        g = np.tanh(gates[:, 3 * hidden:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out).astype(np.float32)


def rnn(x, cont, w_xh, b_h, w_hh, w_ho, b_o, x_static=None, w_static=None):
    """Caffe's RNN: h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_static x_static]),
    o_t = tanh(W_ho h_t + b_o); x (T, N, ...), cont (T, N) -> o (T, N, H)."""
    t_steps, n = cont.shape
    x_proj = np.asarray(x, np.float64).reshape(t_steps, n, -1) @ np.asarray(w_xh, np.float64).T
    x_proj = x_proj + np.asarray(b_h, np.float64)
    static = _static_term(x_static, w_static)
    h = np.zeros((n, w_hh.shape[0]))
    out = []
    for t in range(t_steps):
        keep = np.asarray(cont[t], np.float64)[:, None]
        h = np.tanh((h * keep) @ np.asarray(w_hh, np.float64).T + x_proj[t] + static)
        out.append(np.tanh(h @ np.asarray(w_ho, np.float64).T + np.asarray(b_o, np.float64)))
    return np.stack(out).astype(np.float32)


def im2col(x, kernel, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """im2col_cpu per item: x (N, C, H, W) -> (N, C*kh*kw, H_out, W_out)."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((n, c * kh * kw, oh, ow))
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ch * kh + i) * kw + j
                for oy in range(oh):
                    iy = oy * sh - ph + i * dh
                    if not 0 <= iy < h:
                        continue
                    for ox in range(ow):
                        ix = ox * sw - pw + j * dw
                        if 0 <= ix < w:
                            y[:, row, oy, ox] = x[:, ch, iy, ix]
    return y.astype(np.float32)


def spp(x, pyramid_height, pool="max"):
    """SPPLayer: per level l, 2^l bins: kernel ceil(L / bins), stride = kernel, pad
    (kernel * bins - L + 1) / 2; one level -> the pooled map, more -> flattened + concat."""
    n, _, h, w = x.shape
    outputs = []
    for level in range(pyramid_height):
        bins = 2 ** level
        kernel = tuple(math.ceil(size / bins) for size in (h, w))
        pad = tuple((k * bins - size + 1) // 2 for k, size in zip(kernel, (h, w)))
        outputs.append(ref.pooling(x, pool, kernel, kernel, pad))
    if pyramid_height == 1:
        return outputs[0]
    return np.concatenate([y.reshape(n, -1) for y in outputs], axis=1)
