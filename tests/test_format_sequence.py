"""Embed, CaffeLSTM, CaffeRNN, Im2col, SpatialPyramidPooling and Parameter in every runtime
format, against Keras at batch sizes 1 and 3: the configurations the golden fixtures leave
out (a 4-D static input, whose kernel columns follow the NHWC order; image layers reading a
value held channels-first after a pooling)."""

from __future__ import annotations

import numpy as np
import pytest

import caffe2keras
from caffe2keras.formats.base import input_names, output_names
from caffe2keras.formats.write import run_exported
from numpy_forward import normal, write_net
from test_formats_golden import RUNTIMES, require_runtime

T, N = 4, 2
NET = f"""name: "seq_formats"
layer {{ name: "in" type: "Input" top: "x" top: "cont" top: "xs" top: "idx" top: "data"
        input_param {{ shape {{ dim: {T} dim: {N} dim: 3 }} shape {{ dim: {T} dim: {N} }}
                      shape {{ dim: {N} dim: 3 dim: 2 dim: 5 }} shape {{ dim: {N} dim: 3 dim: 4 }}
                      shape {{ dim: {N} dim: 3 dim: 11 dim: 9 }} }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "xs" top: "lstm"
        recurrent_param {{ num_output: 5 }} }}
layer {{ name: "rnn" type: "RNN" bottom: "lstm" bottom: "cont" bottom: "xs" top: "rnn"
        recurrent_param {{ num_output: 6 }} }}
layer {{ name: "embed" type: "Embed" bottom: "idx" top: "embed" embed_param {{ num_output: 7 input_dim: 8 }} }}
layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param {{ pool: MAX kernel_size: 3 stride: 1 pad: 1 }} }}
layer {{ name: "im2col" type: "Im2col" bottom: "pool" top: "im2col"
        convolution_param {{ kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 2 pad_h: 1 }} }}
layer {{ name: "spp" type: "SPP" bottom: "pool" top: "spp" spp_param {{ pyramid_height: 2 pool: AVE }} }}
layer {{ name: "param" type: "Parameter" top: "param" parameter_param {{ shape {{ dim: 1 dim: 4 dim: 3 dim: 2 }} }} }}
"""


def _blobs():
    return {"lstm": [normal((20, 3), 1, scale=0.5), normal((20,), 2), normal((20, 30), 3, scale=0.2),
                     normal((20, 5), 4, scale=0.5)],
            "rnn": [normal((6, 5), 5, scale=0.5), normal((6,), 6), normal((6, 30), 7, scale=0.2),
                    normal((6, 6), 8, scale=0.5), normal((6, 6), 9, scale=0.5), normal((6,), 10)],
            "embed": [normal((8, 7), 11), normal((7,), 12)],
            "param": [normal((1, 4, 3, 2), 13)]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    prototxt, caffemodel = write_net(tmp_path_factory.mktemp("net"), NET, _blobs())
    return caffe2keras.convert(prototxt, caffemodel)


def _feeds(model, batch):
    rng = np.random.default_rng(batch)
    feeds = {}
    for tensor in model.inputs:
        shape = (batch, *tensor.shape[1:])
        if tensor.name == "cont":
            feeds["cont"] = (rng.random(shape) > 0.3).astype(np.float32)
        elif tensor.name == "idx":
            feeds["idx"] = rng.integers(0, 8, shape).astype(np.float32)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("format_name", list(RUNTIMES))
def test_every_output_matches_keras(model, format_name):
    require_runtime(format_name)
    for batch in (1, 3):
        feeds = _feeds(model, batch)
        want = model.predict([feeds[name] for name in input_names(model)], verbose=0)
        got = run_exported(model, format_name, feeds)
        for name, expected in zip(output_names(model), want):
            assert got[name].shape == expected.shape, (format_name, name, batch)
            error = float(np.max(np.abs(got[name].astype(np.float64) - expected)))
            assert error <= 1e-5 * max(1.0, float(np.max(np.abs(expected)))), \
                (format_name, name, batch, error)
