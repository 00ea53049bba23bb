"""Shape rules of Caffe's recurrent layers, LSTM and RNN (recurrent_layer.cpp and the nets
lstm_layer.cpp / rnn_layer.cpp unroll).

Bottoms: ``x`` (T, N, ...), ``cont`` (T, N), optionally ``x_static`` (N, ...). Top: (T, N,
num_output). Blobs, in the unrolled net's parameter order: LSTM W_xc (4H, D), b_c (4H),
[W_xc_static (4H, D_static)], W_hc (4H, H); RNN W_xh (H, D), b_h (H), [W_xh_static (H,
D_static)], W_hh (H, H), W_ho (H, H), b_o (H); H = num_output, D = count(x, 2).
"""

from __future__ import annotations

from .registry import blob_rule, count, expect_bottoms, layer_error, shape_rule, sub_param


def _recurrent(layer, bottoms):
    """(T, N, H, D, D_static or None) after Caffe's checks."""
    rp = sub_param(layer, "recurrent_param")
    if rp.expose_hidden:
        raise layer_error(layer, "expose_hidden (the initial state as bottoms, the final one "
                                 "as tops) does not convert; a deploy net leaves it false")
    expect_bottoms(layer, bottoms, 2, 3)
    x, cont = tuple(bottoms[0]), tuple(bottoms[1])
    if len(x) < 2:
        raise layer_error(layer, f"x must have at least 2 axes (T, N, ...), got {x}")
    if cont != x[:2]:
        raise layer_error(layer, f"cont must have shape (T, N) = {x[:2]}, got {cont}")
    if rp.num_output <= 0:
        raise layer_error(layer, "num_output must be positive")
    static = None
    if len(bottoms) == 3:
        x_static = tuple(bottoms[2])
        if len(x_static) < 1 or x_static[0] != x[1]:
            raise layer_error(layer, f"x_static must have shape (N, ...) with N = {x[1]}, "
                                     f"got {x_static}")
        static = count(x_static, 1)
    return x[0], x[1], rp.num_output, count(x, 2), static


@shape_rule("LSTM", "RNN")
def _recurrent_top(layer, bottoms):
    t, n, h, _, _ = _recurrent(layer, bottoms)
    return [(t, n, h)]


@blob_rule("LSTM")
def _lstm_blobs(layer, bottoms):
    _, _, h, d, static = _recurrent(layer, bottoms)
    return [(4 * h, d), (4 * h,)] + ([(4 * h, static)] if static else []) + [(4 * h, h)]


@blob_rule("RNN")
def _rnn_blobs(layer, bottoms):
    _, _, h, d, static = _recurrent(layer, bottoms)
    return [(h, d), (h,)] + ([(h, static)] if static else []) + [(h, h), (h, h), (h,)]
