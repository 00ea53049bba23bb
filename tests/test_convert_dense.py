"""InnerProduct converted and compared with caffe_ref.inner_product.

After a 4-D blob Caffe flattens C, H, W in that order while Keras holds H, W, C: a converter
that forgets to reorder the weights fails every case with a spatial input (H, W > 1, C > 1).
"""

from __future__ import annotations

import math

import pytest

import caffe_ref as ref
from numpy_forward import check_conversion, normal

SPATIAL = (2, 3, 5, 4)  # N, C, H, W

# id: (input shape, inner_product_param, axis for the reference, transpose, bias_term)
CASES = {
    "spatial_input": (SPATIAL, "num_output: 6", 1, False, True),
    "spatial_transpose": (SPATIAL, "num_output: 6 transpose: true", 1, True, True),
    "spatial_no_bias": (SPATIAL, "num_output: 6 bias_term: false", 1, False, False),
    "axis_2": (SPATIAL, "num_output: 6 axis: 2", 2, False, True),
    "axis_3_stays_4d": (SPATIAL, "num_output: 6 axis: 3", 3, False, True),
    "axis_minus_1": (SPATIAL, "num_output: 6 axis: -1", -1, False, True),
    "axis_minus_2_transpose": (SPATIAL, "num_output: 6 axis: -2 transpose: true", -2, True, True),
    "2d_input": ((2, 7), "num_output: 6", 1, False, True),
    "3d_input": ((2, 3, 5), "num_output: 6", 1, False, True),
    "3d_input_axis_2": ((2, 3, 5), "num_output: 6 axis: 2 transpose: true", 2, True, True),
}


def fc_net(shape, param: str) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f"""
name: "fc"
input: "data"
input_shape {{ {dims} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param {{ {param} }} }}
"""


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_inner_product_matches_caffe(tmp_path, case):
    shape, param, axis, transpose, bias_term = case
    k = math.prod(shape[axis % len(shape):])
    weights = normal((k, 6) if transpose else (6, k), seed=1)
    bias = normal((6,), seed=2) if bias_term else None
    x = normal(shape, seed=3)
    want = ref.inner_product(x, weights, bias, axis=axis, transpose=transpose)
    blobs = [weights] + ([bias] if bias_term else [])
    check_conversion(tmp_path, fc_net(shape, param), {"fc": blobs}, {"data": x}, {"fc": want})


def test_legacy_4d_weight_blobs(tmp_path):
    """Old caffemodels store (1, 1, N, K) weights and (1, 1, 1, N) biases."""
    weights, bias = normal((6, 60), seed=4), normal((6,), seed=5)
    x = normal(SPATIAL, seed=6)
    want = ref.inner_product(x, weights, bias)
    check_conversion(tmp_path, fc_net(SPATIAL, "num_output: 6"),
                     {"fc": [weights.reshape(1, 1, 6, 60), bias.reshape(1, 1, 1, 6)]},
                     {"data": x}, {"fc": want})


@pytest.mark.parametrize("flatten", ["", "flatten_param { axis: 1 end_axis: -1 }"])
def test_inner_product_after_flatten(tmp_path, flatten):
    """An explicit Flatten holds C, H, W in Caffe's order; the InnerProduct after it keeps
    Caffe's weights. Both tops are compared."""
    text = fc_net(SPATIAL, "num_output: 6").replace('bottom: "data" top: "fc"',
                                                    'bottom: "flat" top: "fc"')
    text = text.replace('layer {', f'layer {{ name: "flat" type: "Flatten" bottom: "data" '
                                   f'top: "flat" {flatten} }}\nlayer {{', 1)
    weights, bias = normal((6, 60), seed=7), normal((6,), seed=8)
    x = normal(SPATIAL, seed=9)
    flat = ref.flatten(x)
    check_conversion(tmp_path, text, {"fc": [weights, bias]}, {"data": x},
                     {"flat": flat, "fc": ref.inner_product(flat, weights, bias)})


def test_inner_product_chain_after_convolution(tmp_path):
    """conv -> fc -> fc: the first fc sees a spatial top, the second a 2-D one."""
    text = fc_net(SPATIAL, "num_output: 6").replace('bottom: "data" top: "fc"',
                                                    'bottom: "conv" top: "fc"') + """
layer { name: "fc2" type: "InnerProduct" bottom: "fc" top: "fc2" inner_product_param { num_output: 3 } }
"""
    text = text.replace('layer {', 'layer { name: "conv" type: "Convolution" bottom: "data" '
                        'top: "conv" convolution_param { num_output: 4 kernel_h: 2 kernel_w: 1 '
                        'pad_w: 1 } }\nlayer {', 1)
    wc, bc = normal((4, 3, 2, 1), seed=10), normal((4,), seed=11)
    w1, b1 = normal((6, 4 * 4 * 6), seed=12), normal((6,), seed=13)
    w2, b2 = normal((3, 6), seed=14), normal((3,), seed=15)
    x = normal(SPATIAL, seed=16)
    conv = ref.convolution(x, wc, bc, pad=(0, 1))
    fc = ref.inner_product(conv, w1, b1)
    check_conversion(tmp_path, text, {"conv": [wc, bc], "fc": [w1, b1], "fc2": [w2, b2]},
                     {"data": x}, {"conv": conv, "fc": fc, "fc2": ref.inner_product(fc, w2, b2)})
