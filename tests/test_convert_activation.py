"""Neuron layers and Softmax converted and compared with caffe_ref, on 4-D and lower-rank blobs."""

from __future__ import annotations

import pytest

import caffe_ref as ref
from numpy_forward import check_conversion, normal

SHAPE = (2, 3, 5, 4)  # N, C, H, W

# id: (layer type, parameter text, reference function of x, input shift and scale)
# Inputs are standard normal (negatives included) unless the layer needs positive ones.
NEURONS = {
    "relu": ("ReLU", "", ref.relu, (0, 1)),
    "leaky_relu": ("ReLU", "relu_param { negative_slope: 0.15 }",
                   lambda x: ref.relu(x, 0.15), (0, 1)),
    "elu": ("ELU", "elu_param { alpha: 0.4 }", lambda x: ref.elu(x, 0.4), (0, 1)),
    "elu_default": ("ELU", "", ref.elu, (0, 1)),
    "sigmoid": ("Sigmoid", "", ref.sigmoid, (0, 3)),
    "tanh": ("TanH", "", ref.tanh, (0, 3)),
    "absval": ("AbsVal", "", ref.absval, (0, 1)),
    "bnll": ("BNLL", "", ref.bnll, (0, 8)),  # large |x| too: log(1 + e^x) must not overflow
    "threshold": ("Threshold", "threshold_param { threshold: 0.3 }",
                  lambda x: ref.threshold(x, 0.3), (0, 1)),
    "threshold_default": ("Threshold", "", ref.threshold, (0, 1)),
    "power_square": ("Power", "power_param { power: 2 scale: 0.5 shift: -0.25 }",
                     lambda x: ref.power(x, 2.0, 0.5, -0.25), (0, 1)),
    "power_fractional": ("Power", "power_param { power: 0.5 scale: 2 shift: 0.1 }",
                         lambda x: ref.power(x, 0.5, 2.0, 0.1), (3, 0.5)),
    "power_cube_negative": ("Power", "power_param { power: 3 scale: -1.5 }",
                            lambda x: ref.power(x, 3.0, -1.5), (0, 1)),
    "power_zero_scale": ("Power", "power_param { power: 2 scale: 0 shift: 3 }",
                         lambda x: ref.power(x, 2.0, 0.0, 3.0), (0, 1)),
    "power_zero_power": ("Power", "power_param { power: 0 scale: 2 shift: 3 }",
                         lambda x: ref.power(x, 0.0, 2.0, 3.0), (0, 1)),
    "power_default": ("Power", "", ref.power, (0, 1)),
    "exp": ("Exp", "", ref.exp, (0, 1)),
    "exp_base_scale_shift": ("Exp", "exp_param { base: 2 scale: 0.5 shift: 1.5 }",
                             lambda x: ref.exp(x, 2.0, 0.5, 1.5), (0, 1)),
    "log": ("Log", "", ref.log, (3, 0.5)),
    "log_base_scale_shift": ("Log", "log_param { base: 10 scale: 2 shift: 0.5 }",
                             lambda x: ref.log(x, 10.0, 2.0, 0.5), (3, 0.5)),
}


def single_layer_net(shape, layer_type: str, param: str) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f"""
name: "one"
input: "data"
input_shape {{ {dims} }}
layer {{ name: "act/1" type: "{layer_type}" bottom: "data" top: "out" {param} }}
"""


@pytest.mark.parametrize("shape", [SHAPE, (2, 7)], ids=["4d", "2d"])
@pytest.mark.parametrize("case", NEURONS.values(), ids=NEURONS.keys())
def test_neuron_matches_caffe(tmp_path, case, shape):
    layer_type, param, function, (shift, scale) = case
    x = normal(shape, seed=1, shift=shift, scale=scale)
    if shift:  # a layer that needs positive inputs gets them
        assert (x > 0).all()
    check_conversion(tmp_path, single_layer_net(shape, layer_type, param), None, {"data": x},
                     {"act/1": function(x)})


def test_in_place_neuron_chain(tmp_path):
    """Several in-place layers on one blob: each Keras layer gives its own layer's top."""
    text = single_layer_net(SHAPE, "Power", "power_param { scale: 2 shift: -0.5 }") + """
layer { name: "relu" type: "ReLU" bottom: "out" top: "out" relu_param { negative_slope: 0.2 } }
layer { name: "tanh" type: "TanH" bottom: "out" top: "out" }
"""
    x = normal(SHAPE, seed=2)
    power = ref.power(x, 1.0, 2.0, -0.5)
    relu = ref.relu(power, 0.2)
    check_conversion(tmp_path, text, None, {"data": x},
                     {"act/1": power, "relu": relu, "tanh": ref.tanh(relu)})


# id: (input shape, channel_shared)
PRELU_CASES = {
    "4d": (SHAPE, False),
    "4d_shared": (SHAPE, True),
    "2d": ((2, 7), False),
    "3d": ((2, 3, 5), False),
    "3d_shared": ((2, 3, 5), True),
}


@pytest.mark.parametrize("case", PRELU_CASES.values(), ids=PRELU_CASES.keys())
def test_prelu_matches_caffe(tmp_path, case):
    shape, shared = case
    slope = normal((1,) if shared else (shape[1],), seed=3)
    param = f"prelu_param {{ channel_shared: {str(shared).lower()} }}"
    x = normal(shape, seed=4)
    check_conversion(tmp_path, single_layer_net(shape, "PReLU", param), {"act/1": [slope]},
                     {"data": x}, {"act/1": ref.prelu(x, slope, shared)})


# id: (input shape, softmax_param, reference axis)
SOFTMAX_CASES = {
    "4d_default_channels": (SHAPE, "", 1),
    "4d_height": (SHAPE, "softmax_param { axis: 2 }", 2),
    "4d_width_negative": (SHAPE, "softmax_param { axis: -1 }", -1),
    "4d_channels_negative": (SHAPE, "softmax_param { axis: -3 }", 1),
    "2d": ((2, 7), "", 1),
    "3d_last": ((2, 3, 5), "softmax_param { axis: 2 }", 2),
}


@pytest.mark.parametrize("case", SOFTMAX_CASES.values(), ids=SOFTMAX_CASES.keys())
def test_softmax_matches_caffe(tmp_path, case):
    shape, param, axis = case
    x = normal(shape, seed=5, scale=3.0)
    check_conversion(tmp_path, single_layer_net(shape, "Softmax", param), None, {"data": x},
                     {"act/1": ref.softmax(x, axis=axis)})
