"""Input, Split, Dropout, Flatten and Silence: the layers that route values."""

from __future__ import annotations

import keras
import pytest

import caffe_ref as ref
from numpy_forward import check_conversion, normal

SHAPE = (2, 3, 5, 4)  # N, C, H, W
DIMS = " ".join(f"dim: {d}" for d in SHAPE)

INPUT_FORMS = {
    "input_dim": 'input: "data"\n' + "".join(f"input_dim: {d}\n" for d in SHAPE),
    "input_shape": f'input: "data"\ninput_shape {{ {DIMS} }}\n',
    "input_layer": f'layer {{ name: "data" type: "Input" top: "data" '
                   f'input_param {{ shape {{ {DIMS} }} }} }}\n',
}


@pytest.mark.parametrize("form", INPUT_FORMS.values(), ids=INPUT_FORMS.keys())
def test_input_forms(tmp_path, form):
    text = 'name: "inputs"\n' + form + """
layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" relu_param { negative_slope: 0.5 } }
"""
    x = normal(SHAPE, seed=1)
    model = check_conversion(tmp_path, text, None, {"data": x}, {"relu": ref.relu(x, 0.5)})
    assert [t.name for t in model.inputs] == ["data"]
    assert tuple(model.inputs[0].shape) == (None, 5, 4, 3)  # NHWC, free batch


def test_input_layer_with_two_tops(tmp_path):
    text = f"""name: "two"
layer {{ name: "input" type: "Input" top: "a" top: "b"
        input_param {{ shape {{ {DIMS} }} shape {{ dim: 2 dim: 7 }} }} }}
layer {{ name: "fa" type: "Flatten" bottom: "a" top: "fa" }}
layer {{ name: "cat" type: "Concat" bottom: "fa" bottom: "b" top: "cat" }}
"""
    a, b = normal(SHAPE, seed=2), normal((2, 7), seed=3)
    model = check_conversion(tmp_path, text, None, {"a": a, "b": b},
                             {"cat": ref.concat([ref.flatten(a), b])})
    assert [t.name for t in model.inputs] == ["a", "b"]


def test_split_feeds_every_branch(tmp_path):
    text = f"""name: "split"
input: "data"
input_shape {{ {DIMS} }}
layer {{ name: "split" type: "Split" bottom: "data" top: "s1" top: "s2" top: "s3" }}
layer {{ name: "abs" type: "AbsVal" bottom: "s1" top: "abs" }}
layer {{ name: "tanh" type: "TanH" bottom: "s2" top: "tanh" }}
layer {{ name: "sum" type: "Eltwise" bottom: "abs" bottom: "s3" top: "sum" }}
"""
    x = normal(SHAPE, seed=4)
    model = check_conversion(tmp_path, text, None, {"data": x},
                             {"abs": ref.absval(x), "tanh": ref.tanh(x),
                              "sum": ref.eltwise([ref.absval(x), x])})
    assert [t.name for t in model.inputs] == ["data"]
    assert len(model.outputs) == 2


@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_dropout_is_a_keras_dropout(tmp_path, ratio):
    """Identity at inference, a real Dropout with Caffe's ratio for fine-tuning."""
    text = f"""name: "drop"
input: "data"
input_shape {{ dim: 2 dim: 7 }}
layer {{ name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param {{ num_output: 6 }} }}
layer {{ name: "drop" type: "Dropout" bottom: "fc" top: "fc" dropout_param {{ dropout_ratio: {ratio} }} }}
"""
    w, b = normal((6, 7), seed=5), normal((6,), seed=6)
    x = normal((2, 7), seed=7)
    fc = ref.inner_product(x, w, b)
    model = check_conversion(tmp_path, text, {"fc": [w, b]}, {"data": x}, {"fc": fc, "drop": fc})
    layer = model.get_layer("drop")
    assert isinstance(layer, keras.layers.Dropout)
    assert layer.rate == pytest.approx(ratio)


# id: (input shape, flatten_param, reference axis, reference end_axis)
FLATTEN_CASES = {
    "default": (SHAPE, "", 1, -1),
    "axis_2": (SHAPE, "axis: 2", 2, -1),
    "channels_height": (SHAPE, "axis: 1 end_axis: 2", 1, 2),
    "end_axis_negative": (SHAPE, "end_axis: -2", 1, -2),
    "height_width": (SHAPE, "axis: 2 end_axis: 3", 2, 3),
    "negative_axis": (SHAPE, "axis: -3", 1, -1),
    "single_axis_no_change": (SHAPE, "axis: 3", 3, -1),
    "3d": ((2, 3, 5), "", 1, -1),
    "2d": ((2, 7), "", 1, -1),
}


@pytest.mark.parametrize("case", FLATTEN_CASES.values(), ids=FLATTEN_CASES.keys())
def test_flatten_matches_caffe(tmp_path, case):
    shape, param, axis, end_axis = case
    dims = " ".join(f"dim: {d}" for d in shape)
    text = f"""name: "flatten"
input: "data"
input_shape {{ {dims} }}
layer {{ name: "flat/1" type: "Flatten" bottom: "data" top: "flat" flatten_param {{ {param} }} }}
"""
    x = normal(shape, seed=8)
    check_conversion(tmp_path, text, None, {"data": x},
                     {"flat/1": ref.flatten(x, axis=axis, end_axis=end_axis)})


def test_silence_consumes_a_blob(tmp_path):
    """Silence itself needs no Keras layer. A top only Silence reads is not a Caffe output, but
    it is what the net computes there (colorization's class8_ab): the model returns it too,
    beside the ordinary outputs, in Caffe's (blob name) order."""
    text = f"""name: "silence"
input: "data"
input_shape {{ {DIMS} }}
layer {{ name: "split" type: "Split" bottom: "data" top: "a" top: "b" }}
layer {{ name: "aux" type: "Sigmoid" bottom: "a" top: "aux" }}
layer {{ name: "mute" type: "Silence" bottom: "aux" }}
layer {{ name: "main" type: "TanH" bottom: "b" top: "main" }}
"""
    x = normal(SHAPE, seed=9)
    model = check_conversion(tmp_path, text, None, {"data": x},
                             {"main": ref.tanh(x), "aux": ref.sigmoid(x)})
    assert model.outputs == [model.get_layer("aux").output, model.get_layer("main").output]
