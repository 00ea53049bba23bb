"""Folding BatchNorm/Scale into the convolution before them: the same numbers to round-off,
fewer layers, and only where it is valid."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras.api import prepare
from caffe2keras.errors import StructureError
from caffe2keras.fold import fold_batchnorm
from caffe2keras.verify import first_failure, load_activations, to_keras_layout, verify_net
from numpy_forward import assert_close, forward, normal, write_net

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOLDEN_NETS = ["resnet", "mobilenet_v1", "batchnorm"]


def files(name: str) -> tuple[str, str]:
    return str(FIXTURES / name / "deploy.prototxt"), str(FIXTURES / name / "weights.caffemodel")


def golden_input(name: str) -> np.ndarray:
    manifest, arrays = load_activations(str(FIXTURES / name / "golden.npz"))
    return to_keras_layout(arrays[manifest["inputs"][0]["key"]])


@pytest.mark.parametrize("name", GOLDEN_NETS)
def test_folded_model_equals_the_unfolded_one(name):
    """Every output within 1e-4 of its largest magnitude, on the fixture's real input."""
    x = golden_input(name)
    plain = caffe2keras.convert(*files(name))
    folded = caffe2keras.convert(*files(name), fold_batchnorm=True)
    assert len(folded.layers) < len(plain.layers)
    want, got = plain.predict(x, verbose=0), folded.predict(x, verbose=0)
    want, got = (v if isinstance(v, list) else [v] for v in (want, got))
    for w, g in zip(want, got):
        assert g.shape == w.shape
        assert np.max(np.abs(g.astype(np.float64) - w)) <= 1e-4 * np.max(np.abs(w))


@pytest.mark.parametrize("name", GOLDEN_NETS)
def test_folded_model_still_matches_caffe_layer_by_layer(name):
    manifest, arrays = load_activations(str(FIXTURES / name / "golden.npz"))
    net = prepare(*files(name), fold_batchnorm=True)
    kept = {layer.name for layer in net.layers}
    absorbed = {layer.name: layer.type for layer in prepare(*files(name), fuse_batchnorm=False).layers
                if layer.name not in kept}
    checks = verify_net(net, manifest, arrays)
    assert first_failure(checks) is None
    # Exactly the blobs of the layers folding absorbed (convolutions and BatchNorms whose
    # result now comes out of the Scale or BatchNorm after them) are not compared; every
    # other stored blob is.
    skipped = {c.layer for c in checks if c.max_abs_error is None}
    stored = {entry["layer"] for entry in manifest["blobs"]}
    assert skipped == set(absorbed) & stored
    assert skipped and {absorbed[layer] for layer in skipped} <= {"Convolution", "BatchNorm"}


def test_resnet_has_no_batchnorm_left_and_keeps_the_scale_names():
    model = caffe2keras.convert(*files("resnet"), fold_batchnorm=True)
    names = {layer.name for layer in model.layers}
    assert not [layer for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)]
    assert {"scale_conv1", "scale2a_branch1", "scale3b_branch2c"} <= names
    assert not {"conv1", "bn_conv1", "res2a_branch1", "bn2a_branch1"} & names
    kernel, bias = model.get_layer("scale_conv1").get_weights()  # bias-free conv gained one
    assert kernel.shape == (7, 7, 3, 8) and bias.shape == (8,)


def test_mobilenet_depthwise_convolutions_fold():
    model = caffe2keras.convert(*files("mobilenet_v1"), fold_batchnorm=True)
    depthwise = model.get_layer("conv2_1_dw_scale")
    assert isinstance(depthwise, keras.layers.DepthwiseConv2D) and depthwise.use_bias


def test_batchnorm_without_a_convolution_before_it_stays():
    """The batchnorm fixture: the conv chain folds; BatchNorm alone on the input, and the
    InnerProduct's BatchNorm+Scale, stay (fused)."""
    net = prepare(*files("batchnorm"), fold_batchnorm=True)
    kinds = {layer.name: layer.type for layer in net.layers}
    assert kinds["scale_conv"] == "Convolution" and "conv" not in kinds and "bn_conv" not in kinds
    assert kinds["bn_alone"] == "BatchNorm" and kinds["scale_fc"] == "BatchNorm+Scale"


# --- the arithmetic, on a small net with every variant -------------------------------------------

CHAINS = """
name: "chains"
input: "data"
input_shape { dim: 2 dim: 3 dim: 7 dim: 6 }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 5 kernel_h: 3 kernel_w: 2 pad_h: 1 stride_w: 2 } }
layer { name: "b1" type: "BatchNorm" bottom: "c1" top: "c1" batch_norm_param { eps: 0.001 } }
layer { name: "s1" type: "Scale" bottom: "c1" top: "c1" scale_param { bias_term: true } }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 4 kernel_size: 1 bias_term: false } }
layer { name: "b2" type: "BatchNorm" bottom: "c2" top: "b2" }
layer { name: "c3" type: "Convolution" bottom: "b2" top: "c3"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "s3" type: "Scale" bottom: "c3" top: "s3" }
layer { name: "c4" type: "Convolution" bottom: "s3" top: "c4"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "b4" type: "BatchNorm" bottom: "c4" top: "b4" }
layer { name: "side" type: "ReLU" bottom: "c4" top: "side" }
layer { name: "sum" type: "Eltwise" bottom: "b4" bottom: "side" top: "sum" }
"""


def chain_blobs(zero_factor: bool = False):
    factor = np.float32([0.0 if zero_factor else 1.7])
    return {
        "c1": [normal((5, 3, 3, 2), 1), normal((5,), 2)],
        "b1": [normal((5,), 3) * factor, (np.abs(normal((5,), 4)) + 0.3) * factor, factor],
        "s1": [normal((5,), 5), normal((5,), 6)],
        "c2": [normal((4, 5, 1, 1), 7)],
        "b2": [normal((4,), 8) * 2, (np.abs(normal((4,), 9)) + 0.5) * 2, np.float32([2])],
        "c3": [normal((4, 2, 3, 3), 10), normal((4,), 11)],
        "s3": [normal((4,), 12)],
        "c4": [normal((4, 4, 1, 1), 13), normal((4,), 14)],
        "b4": [normal((4,), 15), np.abs(normal((4,), 16)) + 0.5, np.float32([1])],
    }


@pytest.mark.parametrize("zero_factor", [False, True], ids=["factor", "zero_factor"])
def test_every_chain_kind_folds_to_caffes_numbers(tmp_path, zero_factor):
    """conv+BN+Scale (with bias), bias-free conv+BN, grouped conv+Scale (no bias); a conv
    whose output is also read elsewhere is left alone."""
    prototxt, caffemodel = write_net(tmp_path, CHAINS, chain_blobs(zero_factor))
    reference = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    x = normal((2, 3, 7, 6), 20)
    values = forward(reference, {"data": x})
    net = fold_batchnorm(prepare(prototxt, caffemodel, fuse_batchnorm=False))
    assert [(layer.name, layer.type) for layer in net.layers] == [
        ("s1", "Convolution"), ("b2", "Convolution"), ("s3", "Convolution"),
        ("c4", "Convolution"), ("b4", "BatchNorm"), ("side", "ReLU"), ("sum", "Eltwise")]
    folded = forward(net, {"data": x})
    for layer in net.layers:
        original = reference.layer(layer.name)
        assert_close(folded[layer.tops[0]], values[original.tops[0]], layer.name)


def test_chosen_outputs_are_never_folded_away(tmp_path):
    prototxt, caffemodel = write_net(tmp_path, CHAINS, chain_blobs())
    model = caffe2keras.convert(prototxt, caffemodel, outputs=["c1", "sum"], fold_batchnorm=True)
    names = {layer.name for layer in model.layers}
    assert {"c1", "s1"} <= names  # c1 is wanted: its BatchNorm and Scale fuse, but stay apart
    assert "b2" in names and "c2" not in names


def test_batchnorm_with_batch_statistics_is_not_folded(tmp_path):
    text = CHAINS.replace('batch_norm_param { eps: 0.001 }',
                          'batch_norm_param { eps: 0.001 use_global_stats: false }')
    prototxt, caffemodel = write_net(tmp_path, text, chain_blobs())
    with pytest.raises(StructureError, match="use_global_stats"):
        caffe2keras.convert(prototxt, caffemodel, fold_batchnorm=True)


def test_scale_over_other_axes_is_not_folded(tmp_path):
    text = CHAINS.replace('layer { name: "s3" type: "Scale" bottom: "c3" top: "s3" }',
                          'layer { name: "s3" type: "Scale" bottom: "c3" top: "s3" '
                          'scale_param { axis: 2 num_axes: 1 } }')
    blobs = dict(chain_blobs(), s3=[normal((7,), 12)])
    prototxt, caffemodel = write_net(tmp_path, text, blobs)
    net = prepare(prototxt, caffemodel, fold_batchnorm=True, fuse_batchnorm=False)
    kinds = {layer.name: layer.type for layer in net.layers}
    assert kinds["c3"] == "Convolution" and kinds["s3"] == "Scale"
