"""LRN, BatchNorm (fused with its Scale or not), Scale and Bias against caffe_ref."""

from __future__ import annotations

import numpy as np
import pytest

import caffe2keras
import caffe_ref as ref
from caffe2keras.errors import StructureError
from numpy_forward import check_conversion, normal, write_net

SHAPE = (2, 7, 5, 4)  # N, C, H, W: C > local_size, so LRN windows are cut at both ends


def input_header(*inputs) -> str:
    """Net-level inputs: (name, shape) pairs."""
    text = 'name: "norm"\n'
    for name, shape in inputs:
        dims = " ".join(f"dim: {d}" for d in shape)
        text += f'input: "{name}"\ninput_shape {{ {dims} }}\n'
    return text


# --- LRN ----------------------------------------------------------------------------------------

LRN_CASES = {
    "across_defaults": ("", dict()),
    "across": ("local_size: 3 alpha: 0.7 beta: 0.6 k: 2", dict(local_size=3, alpha=0.7, beta=0.6, k=2.0)),
    "across_alexnet": ("local_size: 5 alpha: 0.0001 beta: 0.75",
                       dict(local_size=5, alpha=1e-4, beta=0.75)),
    "within": ("local_size: 3 alpha: 0.7 beta: 0.6 k: 2 norm_region: WITHIN_CHANNEL",
               dict(local_size=3, alpha=0.7, beta=0.6, k=2.0, region="within_channel")),
    "within_defaults": ("norm_region: WITHIN_CHANNEL", dict(region="within_channel")),
}


@pytest.mark.parametrize("case", LRN_CASES.values(), ids=LRN_CASES.keys())
def test_lrn_matches_caffe(tmp_path, case):
    param, options = case
    text = input_header(("data", SHAPE)) + f"""
layer {{ name: "norm" type: "LRN" bottom: "data" top: "norm" lrn_param {{ {param} }} }}
"""
    x = normal(SHAPE, seed=1, scale=3.0)
    check_conversion(tmp_path, text, None, {"data": x}, {"norm": ref.lrn(x, **options)})


# --- BatchNorm ----------------------------------------------------------------------------------

def batchnorm_blobs(channels: int, factor: float, seed: int):
    """Caffe's accumulated sums: mean_acc = factor * mean, var_acc = factor * var."""
    mean = normal((channels,), seed=seed)
    var = np.abs(normal((channels,), seed=seed + 1)) + 0.1
    return [mean * factor, var * factor, np.array([factor], np.float32)]


BN_NET = """
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" batch_norm_param { BN_PARAM } }
layer { name: "scale" type: "Scale" bottom: "data" top: "data" scale_param { SCALE_PARAM } }
"""


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("bias_term", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("factor,bn_param,eps", [
    (2.5, "", 1e-5),
    (0.0, "use_global_stats: true", 1e-5),  # s = 0 means factor 0: mean and var read as 0
    (999.98, "eps: 0.001 use_global_stats: true", 1e-3),
], ids=["factor", "factor_zero", "eps"])
def test_batchnorm_scale_in_place(tmp_path, fuse, bias_term, factor, bn_param, eps):
    """ResNet's in-place BatchNorm + Scale. Fused, the Keras layer takes the Scale layer's name
    and no layer is named after BatchNorm; unfused, both exist and give their own tops."""
    text = input_header(("data", SHAPE)) + BN_NET.replace("BN_PARAM", bn_param).replace(
        "SCALE_PARAM", f"bias_term: {str(bias_term).lower()}")
    bn_blobs = batchnorm_blobs(SHAPE[1], factor, seed=2)
    gamma, beta = normal((SHAPE[1],), seed=4), normal((SHAPE[1],), seed=5)
    x = normal(SHAPE, seed=6, shift=0.5)
    normalised = ref.batch_norm(x, *bn_blobs, eps=eps)
    scaled = ref.scale(normalised, gamma, beta if bias_term else None)
    expected = {"scale": scaled} if fuse else {"bn": normalised, "scale": scaled}
    check_conversion(tmp_path, text, {"bn": bn_blobs, "scale": [gamma, beta][:1 + bias_term]},
                     {"data": x}, expected, absent=("bn",) if fuse else (), fuse_batchnorm=fuse)


@pytest.mark.parametrize("shape", [SHAPE, (2, 7)], ids=["4d", "2d"])
@pytest.mark.parametrize("factor", [3.0, 0.0])
def test_batchnorm_alone(tmp_path, shape, factor):
    text = input_header(("data", shape)) + """
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" batch_norm_param { eps: 0.01 } }
"""
    blobs = batchnorm_blobs(shape[1], factor, seed=7)
    x = normal(shape, seed=8)
    check_conversion(tmp_path, text, {"bn": blobs}, {"data": x},
                     {"bn": ref.batch_norm(x, *blobs, eps=0.01)})


def test_batchnorm_not_followed_by_channel_scale_is_not_fused(tmp_path):
    """A Scale over (C, H) cannot merge into BatchNormalization: both layers stay, exact."""
    text = input_header(("data", SHAPE)) + BN_NET.replace("BN_PARAM", "").replace(
        "SCALE_PARAM", "num_axes: 2")
    bn_blobs = batchnorm_blobs(SHAPE[1], 1.5, seed=9)
    gamma = normal(SHAPE[1:3], seed=10)
    x = normal(SHAPE, seed=11)
    normalised = ref.batch_norm(x, *bn_blobs)
    check_conversion(tmp_path, text, {"bn": bn_blobs, "scale": [gamma]}, {"data": x},
                     {"bn": normalised, "scale": ref.scale(normalised, gamma, num_axes=2)})


def test_batchnorm_with_batch_statistics_is_refused(tmp_path):
    """use_global_stats: false normalises with each batch's own statistics; no silent fallback."""
    text = input_header(("data", SHAPE)) + """
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn"
        batch_norm_param { use_global_stats: false } }
"""
    paths = write_net(tmp_path, text, {"bn": batchnorm_blobs(SHAPE[1], 1.0, seed=12)})
    with pytest.raises(StructureError, match="use_global_stats"):
        caffe2keras.convert(*paths)


# --- Scale and Bias -----------------------------------------------------------------------------

# id: (input shape, param text, learned shape, reference axis, reference num_axes)
AFFINE_CASES = {
    "channels": (SHAPE, "", (7,), 1, 1),
    "channels_height": (SHAPE, "num_axes: 2", (7, 5), 1, 2),
    "chw": (SHAPE, "num_axes: -1", (7, 5, 4), 1, -1),
    "height_width": (SHAPE, "axis: 2 num_axes: 2", (5, 4), 2, 2),
    "width_negative_axis": (SHAPE, "axis: -1", (4,), -1, 1),
    "height": (SHAPE, "axis: 2", (5,), 2, 1),
    "scalar": (SHAPE, "num_axes: 0", (), 1, 0),
    "2d_input": ((2, 7), "", (7,), 1, 1),
    "3d_input_tail": ((2, 7, 5), "axis: 1 num_axes: -1", (7, 5), 1, -1),
}


@pytest.mark.parametrize("bias_term", [False, True], ids=["scale", "scale_bias"])
@pytest.mark.parametrize("case", AFFINE_CASES.values(), ids=AFFINE_CASES.keys())
def test_scale_matches_caffe(tmp_path, case, bias_term):
    shape, param, learned, axis, num_axes = case
    text = input_header(("data", shape)) + f"""
layer {{ name: "scale" type: "Scale" bottom: "data" top: "scale"
        scale_param {{ {param} bias_term: {str(bias_term).lower()} }} }}
"""
    gamma, beta = normal(learned, seed=13), normal(learned, seed=14)
    x = normal(shape, seed=15)
    want = ref.scale(x, gamma, beta if bias_term else None, axis=axis, num_axes=num_axes)
    check_conversion(tmp_path, text, {"scale": [gamma, beta][:1 + bias_term]}, {"data": x},
                     {"scale": want})


@pytest.mark.parametrize("case", AFFINE_CASES.values(), ids=AFFINE_CASES.keys())
def test_bias_matches_caffe(tmp_path, case):
    shape, param, learned, axis, num_axes = case
    text = input_header(("data", shape)) + f"""
layer {{ name: "bias" type: "Bias" bottom: "data" top: "bias" bias_param {{ {param} }} }}
"""
    b = normal(learned, seed=16)
    x = normal(shape, seed=17)
    check_conversion(tmp_path, text, {"bias": [b]}, {"data": x},
                     {"bias": ref.bias(x, b, axis=axis, num_axes=num_axes)})


# id: (second bottom's shape, param text, reference axis). A second bottom is a blob of the net,
# so it carries the batch axis: Caffe's axis 0.
SECOND_BOTTOM_CASES = {
    "batch_channels": ((2, 7), "axis: 0", 0),  # squeeze-and-excitation
    "batch_channels_height": ((2, 7, 5), "axis: 0", 0),
    "same_shape": (SHAPE, "axis: 0", 0),
}


@pytest.mark.parametrize("case", SECOND_BOTTOM_CASES.values(), ids=SECOND_BOTTOM_CASES.keys())
@pytest.mark.parametrize("kind", ["Scale", "Bias"])
def test_second_bottom_matches_caffe(tmp_path, case, kind):
    """The factor (or offset) is the second bottom, a net input here; its num_axes comes from
    its own shape."""
    second_shape, param, axis = case
    field = "scale_param" if kind == "Scale" else "bias_param"
    text = input_header(("data", SHAPE), ("factor", second_shape)) + f"""
layer {{ name: "op" type: "{kind}" bottom: "data" bottom: "factor" top: "op" {field} {{ {param} }} }}
"""
    x, s = normal(SHAPE, seed=18), normal(second_shape, seed=19)
    function = ref.scale if kind == "Scale" else ref.bias
    check_conversion(tmp_path, text, None, {"data": x, "factor": s},
                     {"op": function(x, s, axis=axis, num_axes=len(second_shape))})


def test_squeeze_excitation_block(tmp_path):
    """SE: global pooling -> fc -> sigmoid, then Scale(axis 0) of the features by its (N, C)."""
    text = input_header(("data", SHAPE)) + """
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 7 } }
layer { name: "gate" type: "Sigmoid" bottom: "fc" top: "fc" }
layer { name: "excite" type: "Scale" bottom: "data" bottom: "fc" top: "excite" scale_param { axis: 0 } }
"""
    w, b = normal((7, 7), seed=20), normal((7,), seed=21)
    x = normal(SHAPE, seed=22)
    gate = ref.sigmoid(ref.inner_product(ref.pooling(x, "ave", None, global_pooling=True), w, b))
    check_conversion(tmp_path, text, {"fc": [w, b]}, {"data": x},
                     {"gate": gate, "excite": ref.scale(x, gate, axis=0, num_axes=2)})


@pytest.mark.parametrize("layer", [
    'type: "Scale" bottom: "data" top: "op" scale_param { axis: 0 }',
    'type: "Bias" bottom: "data" top: "op" bias_param { axis: 0 num_axes: 2 }',
    'type: "Scale" bottom: "data" bottom: "gate" top: "op" scale_param { axis: 0 bias_term: true }',
], ids=["scale", "bias", "second_bottom_with_bias"])
def test_learned_parameter_over_the_batch_axis_is_refused(tmp_path, layer):
    """One learned value per sample of Caffe's fixed batch cannot serve a free batch size: a
    clean StructureError, not a Keras traceback."""
    text = input_header(("data", SHAPE), ("gate", (2, 7))) + f'layer {{ name: "op" {layer} }}\n'
    with pytest.raises(StructureError, match="batch axis"):
        caffe2keras.convert(*write_net(tmp_path, text))
