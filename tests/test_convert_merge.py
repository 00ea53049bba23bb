"""Eltwise and Concat converted and compared with caffe_ref."""

from __future__ import annotations

import pytest

import caffe2keras
import caffe_ref as ref
from caffe2keras.errors import StructureError
from numpy_forward import check_conversion, normal, write_net

SHAPE = (2, 3, 5, 4)  # N, C, H, W


def inputs_net(shapes, body: str) -> str:
    text = 'name: "merge"\n'
    for i, shape in enumerate(shapes):
        dims = " ".join(f"dim: {d}" for d in shape)
        text += f'input: "x{i}"\ninput_shape {{ {dims} }}\n'
    return text + body


def bottoms(count: int) -> str:
    return " ".join(f'bottom: "x{i}"' for i in range(count))


# id: (number of bottoms, eltwise_param, reference op, reference coefficients)
ELTWISE_CASES = {
    "sum_default": (2, "", "sum", None),
    "sum_three": (3, "operation: SUM", "sum", None),
    "sum_ones": (2, "coeff: 1 coeff: 1", "sum", [1, 1]),
    "difference": (2, "coeff: 1 coeff: -1", "sum", [1, -1]),
    "weighted_three": (3, "operation: SUM coeff: 0.5 coeff: 2 coeff: -1.5", "sum", [0.5, 2, -1.5]),
    "prod": (2, "operation: PROD", "prod", None),
    "prod_three": (3, "operation: PROD", "prod", None),
    "max": (2, "operation: MAX", "max", None),
    "max_three": (3, "operation: MAX", "max", None),
}


@pytest.mark.parametrize("shape", [SHAPE, (2, 7)], ids=["4d", "2d"])
@pytest.mark.parametrize("case", ELTWISE_CASES.values(), ids=ELTWISE_CASES.keys())
def test_eltwise_matches_caffe(tmp_path, case, shape):
    count, param, op, coeff = case
    text = inputs_net([shape] * count, f"""
layer {{ name: "eltwise/1" type: "Eltwise" {bottoms(count)} top: "out"
        eltwise_param {{ {param} }} }}
""")
    xs = [normal(shape, seed=i) for i in range(count)]
    check_conversion(tmp_path, text, None, {f"x{i}": x for i, x in enumerate(xs)},
                     {"eltwise/1": ref.eltwise(xs, op, coeff)})


def test_eltwise_of_one_bottom_is_refused_like_caffe(tmp_path):
    """Caffe's Eltwise needs at least two bottoms (MinBottomBlobs)."""
    text = inputs_net([SHAPE], """
layer { name: "eltwise/1" type: "Eltwise" bottom: "x0" top: "out" eltwise_param { operation: MAX } }
""")
    with pytest.raises(StructureError, match="eltwise/1"):
        caffe2keras.convert(*write_net(tmp_path, text))


# id: (bottom shapes, concat_param, reference axis)
CONCAT_CASES = {
    "channels_default": ([(2, 3, 5, 4), (2, 2, 5, 4), (2, 6, 5, 4)], "", 1),
    "height": ([(2, 3, 5, 4), (2, 3, 2, 4)], "axis: 2", 2),
    "width": ([(2, 3, 5, 4), (2, 3, 5, 6)], "axis: 3", 3),
    "width_negative": ([(2, 3, 5, 4), (2, 3, 5, 6)], "axis: -1", 3),
    "channels_negative": ([(2, 3, 5, 4), (2, 2, 5, 4)], "axis: -3", 1),
    "legacy_concat_dim": ([(2, 3, 5, 4), (2, 2, 5, 4)], "concat_dim: 1", 1),
    "legacy_concat_dim_height": ([(2, 3, 5, 4), (2, 3, 2, 4)], "concat_dim: 2", 2),
    "2d": ([(2, 7), (2, 3)], "", 1),
    "3d_last": ([(2, 3, 5), (2, 3, 4)], "axis: 2", 2),
    "single_bottom": ([(2, 3, 5, 4)], "", 1),
}


@pytest.mark.parametrize("case", CONCAT_CASES.values(), ids=CONCAT_CASES.keys())
def test_concat_matches_caffe(tmp_path, case):
    shapes, param, axis = case
    text = inputs_net(shapes, f"""
layer {{ name: "concat/1" type: "Concat" {bottoms(len(shapes))} top: "out"
        concat_param {{ {param} }} }}
""")
    xs = [normal(shape, seed=i) for i, shape in enumerate(shapes)]
    check_conversion(tmp_path, text, None, {f"x{i}": x for i, x in enumerate(xs)},
                     {"concat/1": ref.concat(xs, axis=axis)})


def test_inception_style_branches(tmp_path):
    """One blob read by three branches (Caffe inserts Splits) and concatenated on channels."""
    text = inputs_net([SHAPE], """
layer { name: "b1" type: "Convolution" bottom: "x0" top: "b1" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "b2" type: "Convolution" bottom: "x0" top: "b2"
        convolution_param { num_output: 3 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 } }
layer { name: "b3" type: "Pooling" bottom: "x0" top: "b3"
        pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "mix" type: "Concat" bottom: "b1" bottom: "b2" bottom: "b3" top: "mix" }
layer { name: "sum" type: "Eltwise" bottom: "mix" bottom: "mix" top: "sum" eltwise_param { coeff: 1 coeff: -0.5 } }
""")
    w1, b1 = normal((2, 3, 1, 1), seed=5), normal((2,), seed=6)
    w2, b2 = normal((3, 3, 3, 1), seed=7), normal((3,), seed=8)
    x = normal(SHAPE, seed=9)
    mix = ref.concat([ref.convolution(x, w1, b1), ref.convolution(x, w2, b2, pad=(1, 0)),
                      ref.pooling(x, "max", 3, 1, 1)])
    check_conversion(tmp_path, text, {"b1": [w1, b1], "b2": [w2, b2]}, {"x0": x},
                     {"mix": mix, "sum": ref.eltwise([mix, mix], "sum", [1, -0.5])})
