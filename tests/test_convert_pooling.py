"""Pooling converted and compared with caffe_ref.pooling: MAX and AVE, every geometry rule.

Inputs are standard normal (MAX must ignore padding even when every pixel is negative; one case
shifts them all below zero). Sizes are chosen so that the interesting rules actually fire: the
ceil overhang, the last-window clip, windows that do not fit.
"""

from __future__ import annotations

import pytest

import caffe_ref as ref
from numpy_forward import check_conversion, normal

N, C = 2, 3

# id: (pooling_param without `pool`, (H, W), reference keyword arguments)
CASES = {
    # ceil((9+4-3)/2)+1 = 6 rows, ceil((8+2-2)/3)+1 = 4 columns; pad_h != pad_w, stride_h != stride_w
    "hw_fields_padded": ("kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 stride_w: 3",
                         (9, 8), dict(kernel=(3, 2), stride=(2, 3), pad=(2, 1))),
    "square_fields_padded": ("kernel_size: 3 pad: 1 stride: 2", (9, 8),
                             dict(kernel=3, stride=2, pad=1)),
    # Caffe drops a last window that would start in the padding: rows ceil((8+4-3)/2)+1 = 6 -> 5,
    # columns ceil((7+2-2)/3)+1 = 4 -> 3.
    "last_window_clip": ("kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 stride_w: 3",
                         (8, 7), dict(kernel=(3, 2), stride=(2, 3), pad=(2, 1))),
    # The clip applies to both axes when either pad is non-zero: pad_w = 0, yet the columns'
    # last window ((3-1)*3 = 6 >= 5 + 0) goes: ceil((5-1)/3)+1 = 3 -> 2. Caffe: 2x3x5x2.
    "clip_from_the_other_axis": ("kernel_h: 2 kernel_w: 1 stride_h: 1 stride_w: 3 pad_h: 1 pad_w: 0",
                                 (4, 5), dict(kernel=(2, 1), stride=(1, 3), pad=(1, 0))),
    # The last window hangs over the padding (ceil): AVE's divisor stops at H + pad.
    "ceil_overhang": ("kernel_size: 3 pad: 1 stride: 2", (8, 10), dict(kernel=3, stride=2, pad=1)),
    # No padding, windows that do not fit (AlexNet's 3/2 on an even size): ceil adds a clipped window.
    "ceil_unpadded": ("kernel_size: 3 stride: 2", (8, 6), dict(kernel=3, stride=2)),
    "fitting_unpadded": ("kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3", (8, 9),
                         dict(kernel=(2, 3), stride=(2, 3))),
    "floor_round_mode": ("kernel_size: 3 stride: 2 pad_h: 1 pad_w: 0 round_mode: FLOOR", (8, 6),
                         dict(kernel=3, stride=2, pad=(1, 0), round_mode="floor")),
    "floor_fork_ceil_mode": ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad: 1 "
                             "ceil_mode: false", (8, 7),
                             dict(kernel=(3, 2), stride=(2, 3), pad=1, round_mode="floor")),
    "ceil_mode_true": ("kernel_size: 3 stride: 2 ceil_mode: true", (8, 6),
                       dict(kernel=3, stride=2, round_mode="ceil")),
    "global": ("global_pooling: true", (5, 7), dict(kernel=None, global_pooling=True)),
    # Ceil mode, no pad, stride > kernel: the last window starts past the image. Caffe gives
    # -FLT_MAX (MAX) and 0/0 = NaN (AVE).
    "empty_last_window": ("kernel_size: 2 stride: 4", (8, 9), dict(kernel=2, stride=4)),
}


def pool_net(pool: str, param: str, height: int, width: int) -> str:
    return f"""
name: "pool"
layer {{ name: "data" type: "Input" top: "data"
        input_param {{ shape {{ dim: {N} dim: {C} dim: {height} dim: {width} }} }} }}
layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param {{ pool: {pool} {param} }} }}
"""


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_pooling_matches_caffe(tmp_path, pool, case):
    param, (height, width), options = case
    x = normal((N, C, height, width), seed=height * width)
    want = ref.pooling(x, pool, **options)
    check_conversion(tmp_path, pool_net(pool, param, height, width), None, {"data": x},
                     {"pool": want})


@pytest.mark.parametrize("param", ["kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 "
                                   "stride_w: 3", "global_pooling: true"])
def test_max_pooling_ignores_padding_of_negative_inputs(tmp_path, param):
    """Every pixel below zero: a zero from the padding must never win."""
    x = normal((N, C, 9, 8), seed=11, shift=-10.0)
    options = (dict(kernel=None, global_pooling=True) if "global" in param
               else dict(kernel=(3, 2), stride=(2, 3), pad=(2, 1)))
    want = ref.pooling(x, "max", **options)
    assert want.max() < 0
    check_conversion(tmp_path, pool_net("MAX", param, 9, 8), None, {"data": x}, {"pool": want})
