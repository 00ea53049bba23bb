"""Caffe names whatever they hold (spaces, slashes, dots, unicode, leading digits) give a Keras
model that builds, predicts, saves, loads and exports on the TensorFlow, PyTorch and JAX
backends. OpenPose's ``name: "OpenPose - BODY_25"`` once failed on TensorFlow ("not a valid
root scope name"); a layer named ``a.b`` fails on PyTorch ("parameter name can't contain '.'").

Keras fixes its backend at import, so each backend runs in a subprocess (``CHILD``) on a net
written here, against the numpy reference of Caffe's forward pass computed here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caffe2keras.api import prepare
from caffe2keras.registry import keras_layer_name, keras_model_name
from numpy_forward import forward, normal, write_net

ROOT = Path(__file__).resolve().parent.parent

# Every layer's name is hostile to some backend or format; the net's name is OpenPose's, plus more.
NET = """name: "OpenPose - BODY_25 ü/1.0"
layer { name: "image data" type: "Input" top: "image data"
        input_param { shape { dim: 2 dim: 3 dim: 7 dim: 5 } } }
layer { name: "conv1/7x7_s2" type: "Convolution" bottom: "image data" top: "conv1/7x7_s2"
        convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 } }
layer { name: "inception 3a" type: "ReLU" bottom: "conv1/7x7_s2" top: "conv1/7x7_s2" }
layer { name: "1conv" type: "Convolution" bottom: "conv1/7x7_s2" top: "1conv"
        convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "ü" type: "Pooling" bottom: "1conv" top: "ü"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "a.b" type: "InnerProduct" bottom: "ü" top: "a.b" inner_product_param { num_output: 5 } }
layer { name: "层" type: "Softmax" bottom: "a.b" top: "层" }
layer { name: "_tail-1" type: "Scale" bottom: "a.b" top: "_tail-1" scale_param { bias_term: true } }
"""
BLOBS = {"conv1/7x7_s2": [normal((4, 3, 3, 2), seed=1), normal((4,), seed=2)],
         "1conv": [normal((6, 4, 1, 1), seed=3), normal((6,), seed=4)],
         "a.b": [normal((5, 6 * 4 * 2), seed=5), normal((5,), seed=6)],
         "_tail-1": [normal((5,), seed=7), normal((5,), seed=8)]}
OUTPUTS = ["_tail-1", "层"]  # Caffe's order: by blob name, bytewise

# Runs in a child process on $KERAS_BACKEND: convert, predict, save/load .keras and .h5, export
# to every format (each checked in its runtime against Keras by write_output, then run again
# here); compare everything with the reference. Prints one JSON line of results.
CHILD = r"""
import json, os, sys
import numpy as np
import keras
import caffe2keras
from caffe2keras.api import write_output
from caffe2keras.errors import CaffeToKerasError
from caffe2keras.formats import for_output

folder, prototxt, caffemodel = sys.argv[1:4]
data = np.load(os.path.join(folder, "reference.npz"))
x = data["x"].transpose(0, 2, 3, 1)
want = [data[f"y{i}"] for i in range(int(data["count"]))]
results = {"backend": keras.backend.backend()}

def error(got):
    return max(float(np.max(np.abs(np.asarray(g) - w)) / np.max(np.abs(w))) for g, w in zip(got, want))

model = caffe2keras.convert(prototxt, caffemodel)
results["model"] = model.name
results["layers"] = sorted(layer.name for layer in model.layers)
results["predict"] = error(model.predict(x, verbose=0))
for extension in (".keras", ".h5"):
    path = os.path.join(folder, "model" + extension)
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    results[extension] = error(loaded.predict(x, verbose=0))
for name, path in [("onnx", "m.onnx"), ("tflite", "m.tflite"), ("openvino", "m.xml"),
                   ("torch", "m.pt2"), ("savedmodel", "saved/")]:
    path = os.path.join(folder, path)
    try:
        write_output(model, path, name)
    except CaffeToKerasError as refusal:
        results[name] = "refused: " + str(refusal)
        continue
    if name == "savedmodel":
        path = path.rstrip("/")
    runner = for_output(path, name).load(path)
    outputs = runner.run({runner.inputs[0]: x})
    results[name] = error([outputs[output] for output in runner.outputs])
    results[name + " names"] = [runner.inputs, runner.outputs]
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def hostile_net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("names")
    prototxt, caffemodel = write_net(folder, NET, BLOBS)
    x = normal((2, 3, 7, 5), seed=9)
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    values = forward(net, {"image data": x})
    np.savez(folder / "reference.npz", x=x, count=len(OUTPUTS),
             **{f"y{i}": values[name] for i, name in enumerate(OUTPUTS)})
    return folder, prototxt, caffemodel


def test_keras_names_use_only_name_characters():
    names = ["conv1/7x7_s2", "inception 3a", "1conv", "ü", "a.b", "层", "_tail-1", "x:y>z\\w"]
    mapped = [keras_layer_name(name) for name in names]
    assert mapped == ["conv1_7x7_s2", "inception_3a", "1conv", "u", "a_b", "u5c42", "_tail-1",
                      "x_y_z_w"]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", name) for name in mapped)
    # TensorFlow's root scope: the first character a letter or digit.
    for net_name, model_name in [("OpenPose - BODY_25", "OpenPose_-_BODY_25"), ("_x", "net_x"),
                                 ("-", "net-"), ("", "caffe_net"), ("ü net", "u_net"),
                                 ("7.1", "7_1")]:
        assert keras_model_name(net_name) == model_name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", model_name)


def _run_on(backend: str, folder, prototxt, caffemodel) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", CHILD, str(folder), prototxt, caffemodel],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")]
    assert result.returncode == 0 and lines, result.stdout[-4000:] + result.stderr[-6000:]
    return json.loads(lines[-1][len("RESULTS "):])


EXPECTED_LAYERS = sorted(["image_data", "conv1_7x7_s2", "inception_3a", "1conv", "u", "a_b",
                          "u5c42", "_tail-1"])
# Formats that need the TensorFlow backend refuse the others by name, before writing anything.
TENSORFLOW_ONLY = {"tflite", "openvino", "savedmodel"}


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_hostile_names_work_on_every_backend(hostile_net, backend):
    folder = hostile_net[0] / backend
    folder.mkdir()
    (folder / "reference.npz").write_bytes((hostile_net[0] / "reference.npz").read_bytes())
    results = _run_on(backend, folder, *hostile_net[1:])
    assert results["backend"] == backend
    assert results["model"] == "OpenPose_-_BODY_25_u_1_0"
    assert set(EXPECTED_LAYERS) <= set(results["layers"])  # helper layers add suffixes
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", name) for name in results["layers"])
    for key in ["predict", ".keras", ".h5", "onnx", "torch"]:
        assert isinstance(results[key], float) and results[key] < 1e-5, (key, results[key])
    for key in sorted(TENSORFLOW_ONLY):
        if backend == "tensorflow":
            assert isinstance(results[key], float) and results[key] < 1e-5, (key, results[key])
        else:
            assert results[key].startswith("refused: ") and "tensorflow" in results[key], results[key]
    assert results["onnx names"] == [["image_data"], ["_tail-1", "u5c42"]]
