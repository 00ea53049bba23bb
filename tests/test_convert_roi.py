"""ROIPooling (Faster R-CNN) and PSROIPooling (R-FCN) convert exactly: against numpy
transcriptions of their C++ (tests/roi_reference.py) on the TensorFlow, PyTorch and JAX
backends, and in every format. The rois input keeps its own axis 0 (R boxes for N images).
Proposal and Python stay refused by name with the reason; the feature part of such a net
converts with --outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import caffe2keras
from caffe2keras.errors import StructureError, UnsupportedLayerError
from caffe2keras.formats import get_format
from caffe2keras.formats.base import input_names, output_names, own_batch_inputs
from caffe2keras.formats.check import probe_inputs
from caffe2keras.formats.write import write_artifact
from caffe2keras.layer_table import layer_table_markdown
from numpy_forward import write_net
from roi_reference import psroi_pooling, roi_pooling
from test_backends import require_backend
from test_formats_golden import require_runtime

# 2 images of 3x23x19 -> conv (stride 2, pad_h 1 != pad_w 0) 12 channels of 12x9
NET = """name: "rcnn"
input: "data"
input_shape { dim: 2 dim: 3 dim: 23 dim: 19 }
input: "rois"
input_shape { dim: 7 dim: 5 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 12 kernel_h: 3 kernel_w: 3 pad_h: 1 pad_w: 0
                            stride: 2 } }
layer { name: "roi" type: "ROIPooling" bottom: "conv" bottom: "rois" top: "roi"
        roi_pooling_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.5 } }
layer { name: "ps" type: "PSROIPooling" bottom: "conv" bottom: "rois" top: "ps"
        psroi_pooling_param { spatial_scale: 0.5 output_dim: 3 group_size: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "roi" top: "fc"
        inner_product_param { num_output: 5 } }
"""
# [batch index, x1, y1, x2, y2] in input pixels: inside, the whole image, past every edge,
# entirely outside (empty bins: 0), one pixel, negative halves (C's round away from zero),
# halves at .5 exactly, a box smaller than a bin
ROIS = np.array([[0, 3, 5, 14, 16], [1, 0, 0, 18, 22], [1, -7, -3, 40, 50],
                 [0, 30, 40, 38, 44], [1, 6, 9, 6, 9], [0, -2.5, -0.5, 2.5, 7.5],
                 [1, 4.5, 7.49, 9.5, 13.5]], np.float32)
# ROIPooling's bins, where the rounding and the empty bins show
ROI_POOLING_CASES = np.array([[0, 3, 5, 14, 16], [1, -7, -3, 40, 50], [0, 30, 40, 38, 44],
                              [1, 6, 9, 6, 9], [0, -3, -1, 5, 15], [1, 5, 3, 9, 3],
                              [0, 17, 11, 19, 14]], np.float32)


def convert(tmp_path):
    prototxt, _ = write_net(tmp_path, NET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seeded fillers
        return caffe2keras.convert(prototxt, outputs=["conv", "roi", "ps", "fc"])


def run(model, images, rois):
    """The direct call of the contract (``model.predict`` refuses inputs differing in axis 0)."""
    import keras
    return [keras.ops.convert_to_numpy(t) for t in model([images, rois], training=False)]


def nchw(array):
    return array.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("rois", [ROIS, ROI_POOLING_CASES], ids=["mixed", "roi-pooling-bins"])
def test_layers_match_the_numpy_transcriptions(tmp_path, rois):
    model = convert(tmp_path)
    images = np.random.default_rng(5).standard_normal((2, 23, 19, 3)).astype(np.float32)
    conv, roi, ps, fc = run(model, images, rois)
    assert roi.shape == (7, 3, 2, 12) and ps.shape == (7, 2, 2, 3) and fc.shape == (7, 5)
    want_roi = roi_pooling(nchw(conv), rois, 3, 2, 0.5)
    want_ps = psroi_pooling(nchw(conv), rois, 3, 2, 0.5)
    scale = np.abs(conv).max()
    assert np.abs(nchw(roi) - want_roi).max() <= 1e-6 * scale
    assert np.abs(nchw(ps) - want_ps).max() <= 1e-6 * scale
    # fc runs per ROI, on each ROI's pooled map
    weights, bias = model.get_layer("fc").get_weights()
    assert np.abs(fc - (roi.reshape(len(rois), -1) @ weights + bias)).max() <= 1e-5 * scale
    # some bins are empty (0) and some ROIs come from each image
    assert (want_roi == 0).any() and set(rois[:, 0]) == {0.0, 1.0}


def test_rois_keep_their_own_axis_0(tmp_path):
    model = convert(tmp_path)
    assert list(own_batch_inputs(model)) == ["rois"]
    images = np.zeros((2, 23, 19, 3), np.float32)
    for count in (1, 3, 11):
        rois = np.tile(ROIS[:1], (count, 1))
        assert [t.shape[0] for t in run(model, images, rois)] == [2, count, count, count]
    with pytest.raises(ValueError, match="cardinality is ambiguous"):
        model.predict([images, ROIS], verbose=0)
    # the conversion check's probe: valid boxes of its own count for the probe's 2 items
    feeds = probe_inputs(model)
    assert feeds["data"].shape[0] == 2 and feeds["rois"].shape == (5, 5)
    assert set(feeds["rois"][:, 0]) == {0.0, 1.0}


FORMATS = ["keras", "h5", "savedmodel", "onnx", "tflite", "openvino", "torch"]
RUNTIME = {"onnx": "onnx", "tflite": "tflite", "openvino": "openvino", "torch": "torch"}


@pytest.mark.parametrize("format_name", FORMATS)
def test_every_format_writes_checks_and_runs_other_roi_counts(tmp_path, format_name):
    if format_name in RUNTIME:
        require_runtime(format_name)
    model = convert(tmp_path)
    fmt = get_format(format_name)
    path = str(tmp_path / ("model" + fmt.extensions[0])) + ("/" if format_name == "savedmodel"
                                                             else "")
    checks = write_artifact(model, path, fmt)  # the probe: 2 images, 5 ROIs
    assert checks is None or all(check.passed for check in checks)
    runner = fmt.load(path)
    images = np.random.default_rng(6).standard_normal((2, 23, 19, 3)).astype(np.float32)
    for rois in (ROIS, ROI_POOLING_CASES[:3]):
        want = dict(zip(output_names(model), run(model, images, rois)))
        got = runner.run(dict(zip(input_names(model), [images, rois])))
        for name, value in want.items():
            assert got[name].shape == value.shape, name
            assert np.abs(got[name] - value).max() <= 1e-5 * max(np.abs(value).max(), 1), name


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_other_backends(backend):
    require_backend(backend)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "numpy_transcriptions or own_axis"],
        cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True, text=True,
        env=dict(os.environ, KERAS_BACKEND=backend), timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


@pytest.mark.parametrize("param, message", [
    ("roi_pooling_param { pooled_h: 0 pooled_w: 2 }", "must be > 0"),
])
def test_bad_parameters_are_named(tmp_path, param, message):
    text = NET.replace("roi_pooling_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.5 }", param)
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=f"'roi'.*{message}"):
        caffe2keras.convert(prototxt)


def test_psroi_channels_must_match(tmp_path):
    text = NET.replace("output_dim: 3", "output_dim: 2")
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match="'ps'.*needs output_dim \\* group_size\\^2 = 8"):
        caffe2keras.convert(prototxt)


PROPOSAL_NET = """name: "rcnn"
input: "data"
input_shape { dim: 1 dim: 3 dim: 12 dim: 10 }
input: "im_info"
input_shape { dim: 1 dim: 3 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "rpn" type: "%s" bottom: "conv" bottom: "im_info" top: "rois" %s }
layer { name: "pool" type: "ROIPooling" bottom: "conv" bottom: "rois" top: "pool"
        roi_pooling_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.0625 } }
"""
PROPOSALS = {
    "Python": "python_param { module: 'rpn.proposal_layer' layer: 'ProposalLayer' }",
    "Proposal": "",
}


@pytest.mark.parametrize("proposal", list(PROPOSALS))
def test_proposal_refused_by_name_with_the_reason(tmp_path, proposal):
    prototxt, _ = write_net(tmp_path, PROPOSAL_NET % (proposal, PROPOSALS[proposal]))
    with pytest.raises(UnsupportedLayerError) as refused:
        caffe2keras.convert(prototxt)
    message = str(refused.value)
    assert f"'rpn' ({proposal}: " in message and "'pool'" not in message
    assert "--outputs" in message
    with pytest.warns(UserWarning, match="fillers"):
        model = caffe2keras.convert(prototxt, outputs=["conv"])
    assert [t.shape[1:] for t in model.outputs] == [(10, 8, 4)]


def test_the_layer_table_lists_them():
    rows = {name.strip(" `"): line for line in layer_table_markdown().splitlines()
            if line.startswith("|") for name in line.split("|")[1].split(",")}
    assert "refused: " in rows["Proposal"] and "refused: " in rows["Python"]
    assert rows["ROIPooling"] == rows["PSROIPooling"] and "own axis 0" in rows["ROIPooling"]
