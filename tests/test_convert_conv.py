"""Convolution converted and compared with caffe_ref.convolution, one parameter variant at a time.

Each case gives the convolution_param text and, separately, the geometry the reference uses, so
a converter that misreads a field (pad_w taken from pad_h, a per-axis repeated field read once)
computes different numbers.
"""

from __future__ import annotations

import pytest

import caffe_ref as ref
from numpy_forward import check_conversion, normal

N, H, W = 2, 11, 7

# id: (convolution_param, input channels, num_output, group, kernel, stride, pad, dilation, bias)
CASES = {
    "hw_fields": ("num_output: 5 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 stride_w: 3",
                  3, 5, 1, (3, 2), (2, 3), (2, 1), (1, 1), True),
    "square_fields": ("num_output: 4 kernel_size: 3 pad: 1 stride: 2",
                      3, 4, 1, (3, 3), (2, 2), (1, 1), (1, 1), True),
    "repeated_per_axis": ("num_output: 4 kernel_size: 3 kernel_size: 2 pad: 2 pad: 1 "
                          "stride: 3 stride: 2", 3, 4, 1, (3, 2), (3, 2), (2, 1), (1, 1), True),
    # Setting one of stride_h/stride_w (pad_h/pad_w) leaves the other at its default.
    "only_stride_h_pad_w": ("num_output: 4 kernel_size: 2 stride_h: 2 pad_w: 1",
                            3, 4, 1, (2, 2), (2, 1), (0, 1), (1, 1), True),
    "dilation": ("num_output: 4 kernel_size: 3 dilation: 2 pad: 1",
                 3, 4, 1, (3, 3), (1, 1), (1, 1), (2, 2), True),
    "dilation_per_axis": ("num_output: 4 kernel_size: 2 dilation: 3 dilation: 2 pad_h: 1 pad_w: 2",
                          3, 4, 1, (2, 2), (1, 1), (1, 2), (3, 2), True),
    "dilation_and_stride": ("num_output: 4 kernel_size: 3 dilation: 2 stride_h: 2 stride_w: 3 "
                            "pad: 1", 3, 4, 1, (3, 3), (2, 3), (1, 1), (2, 2), True),
    "group": ("num_output: 6 kernel_size: 3 group: 2 pad: 1 stride: 2",
              4, 6, 2, (3, 3), (2, 2), (1, 1), (1, 1), True),
    "depthwise": ("num_output: 4 group: 4 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 "
                  "stride_h: 1 stride_w: 2", 4, 4, 4, (3, 2), (1, 2), (1, 0), (1, 1), True),
    "depthwise_dilated": ("num_output: 4 group: 4 kernel_size: 3 dilation: 2 pad: 2",
                          4, 4, 4, (3, 3), (1, 1), (2, 2), (2, 2), True),
    "depthwise_dilated_strided": ("num_output: 4 group: 4 kernel_size: 2 dilation: 2 "
                                  "stride_h: 3 stride_w: 2 pad_h: 1", 4, 4, 4, (2, 2), (3, 2),
                                  (1, 0), (2, 2), True),
    "depth_multiplier": ("num_output: 8 group: 4 kernel_size: 3 pad: 1",
                         4, 8, 4, (3, 3), (1, 1), (1, 1), (1, 1), True),
    "no_bias": ("num_output: 5 kernel_size: 3 stride: 2 bias_term: false",
                3, 5, 1, (3, 3), (2, 2), (0, 0), (1, 1), False),
    "depthwise_no_bias": ("num_output: 4 group: 4 kernel_size: 3 bias_term: false",
                          4, 4, 4, (3, 3), (1, 1), (0, 0), (1, 1), False),
    "pointwise": ("num_output: 6 kernel_size: 1", 3, 6, 1, (1, 1), (1, 1), (0, 0), (1, 1), True),
}


def conv_net(param: str, channels: int) -> str:
    return f"""
name: "conv"
input: "data"
input_shape {{ dim: {N} dim: {channels} dim: {H} dim: {W} }}
layer {{ name: "conv/1" type: "Convolution" bottom: "data" top: "conv/1"
        convolution_param {{ {param} }} }}
"""


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_convolution_matches_caffe(tmp_path, case):
    param, channels, num_output, group, kernel, stride, pad, dilation, bias_term = case
    weights = normal((num_output, channels // group) + kernel, seed=1)
    bias = normal((num_output,), seed=2) if bias_term else None
    x = normal((N, channels, H, W), seed=3)
    want = ref.convolution(x, weights, bias, stride=stride, pad=pad, dilation=dilation, group=group)
    blobs = [weights] + ([bias] if bias_term else [])
    check_conversion(tmp_path, conv_net(param, channels), {"conv/1": blobs}, {"data": x},
                     {"conv/1": want})


def test_convolution_chain_keeps_every_top(tmp_path):
    """Two convolutions with an in-place ReLU between them: each Keras layer named after its
    Caffe layer gives that layer's top."""
    text = conv_net("num_output: 5 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 "
                    "stride_w: 1", 3) + """
layer { name: "relu" type: "ReLU" bottom: "conv/1" top: "conv/1" }
layer { name: "conv2" type: "Convolution" bottom: "conv/1" top: "conv2"
        convolution_param { num_output: 2 kernel_size: 2 group: 1 } }
"""
    w1, b1 = normal((5, 3, 3, 2), seed=4), normal((5,), seed=5)
    w2, b2 = normal((2, 5, 2, 2), seed=6), normal((2,), seed=7)
    x = normal((N, 3, H, W), seed=8)
    conv1 = ref.convolution(x, w1, b1, stride=(2, 1), pad=(2, 1))
    relu = ref.relu(conv1)
    conv2 = ref.convolution(relu, w2, b2)
    check_conversion(tmp_path, text, {"conv/1": [w1, b1], "conv2": [w2, b2]}, {"data": x},
                     {"conv/1": conv1, "relu": relu, "conv2": conv2})
