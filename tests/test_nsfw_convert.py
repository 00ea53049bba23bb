"""The real Yahoo open_nsfw ResNet-50 (1by2): converted, compared with the numpy forward pass, and
reloaded from the CLI's .h5 in a fresh Python process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import caffe2keras
from caffe2keras.api import prepare
from caffe2keras.cli import main
from numpy_forward import assert_close, forward, keras_values, normal, to_keras

# Caffe layers whose tops are compared besides the output: the first conv (before its in-place
# BatchNorm), a fused BatchNorm+Scale (named after the Scale), the stem pooling, a residual sum
# in each stage, the global pooling and the classifier.
INNER = ["conv_1", "scale_1", "relu_1", "pool1", "eltwise_stage0_block0", "eltwise_stage1_block3",
         "scale_stage2_block5_branch2b", "eltwise_stage3_block2", "pool", "fc_nsfw", "prob"]

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "nsfw" / "golden.npz"

RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import caffe2keras, keras
    model = keras.models.load_model(sys.argv[1], safe_mode=True)
    np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
    with open(sys.argv[4], "w") as names:
        json.dump([layer.name for layer in model.layers], names)
""")


@pytest.fixture(scope="module")
def nsfw(nsfw_model):
    """(prototxt, caffemodel, converted model, input NCHW, numpy values by Caffe layer name)."""
    prototxt, caffemodel = nsfw_model
    model = caffe2keras.convert(prototxt, caffemodel)
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    x = normal((1, 3, 224, 224), seed=0, scale=50.0)  # about the spread of mean-subtracted pixels
    values = forward(net, {"data": x})
    by_layer = {layer.name: values[layer.tops[0]] for layer in net.layers if layer.tops}
    return prototxt, caffemodel, model, x, by_layer


def test_numpy_forward_matches_real_caffe(nsfw):
    """The reference itself, checked once against activations real Caffe stored (when the
    golden fixture is present): same blobs within 1e-4 of their largest value."""
    if not GOLDEN.is_file():
        pytest.skip(f"no {GOLDEN}")
    prototxt, caffemodel, _, _, _ = nsfw
    with np.load(GOLDEN, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    manifest = json.loads(str(arrays["__manifest__"]))
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    values = forward(net, {"data": arrays[manifest["inputs"][0]["key"]]})
    by_layer = {layer.name: dict(zip(layer.top_blobs, layer.tops)) for layer in net.layers}
    assert manifest["blobs"]
    for entry in manifest["blobs"]:
        want = arrays[entry["key"]]
        got = values[by_layer[entry["layer"]][entry["top"]]]
        error = float(np.max(np.abs(got.astype(np.float64) - want)))
        assert got.shape == want.shape, entry["layer"]
        assert error <= 1e-4 * float(np.max(np.abs(want))), f"{entry['layer']}: {error:.3g}"


def test_output_matches_numpy_forward(nsfw):
    _, _, model, x, reference = nsfw
    assert [t.name for t in model.inputs] == ["data"]
    assert len(model.outputs) == 1 and model.outputs[0] is model.get_layer("prob").output
    got = model.predict(to_keras(x), verbose=0)
    assert_close(got, reference["prob"], "prob", rtol=1e-4)
    assert got.shape == (1, 2) and np.allclose(got.sum(axis=1), 1, atol=1e-5)


def test_inner_blobs_match_numpy_forward(nsfw):
    _, _, model, x, reference = nsfw
    got = keras_values(model, INNER, {"data": x})
    for name in INNER:
        # Relative to the blob's own largest value: max |err| <= 1e-4 * max |ref|.
        want = reference[name]
        error = float(np.max(np.abs(got[name].astype(np.float64) - want)))
        assert got[name].shape == want.shape, name
        assert error <= 1e-4 * float(np.max(np.abs(want))), f"{name}: max |err| {error:.3g}"


def test_batchnorm_is_fused_under_the_scale_names(nsfw):
    _, _, model, _, _ = nsfw
    names = {layer.name for layer in model.layers}
    assert "scale_stage1_block2_branch2a" in names and "bn_stage1_block2_branch2a" not in names
    assert not any(name.startswith("bn_") for name in names)
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)


def test_cli_h5_reloads_in_a_fresh_process(nsfw, tmp_path):
    prototxt, caffemodel, model, x, _ = nsfw
    output = tmp_path / "nsfw.h5"
    assert main(["convert", prototxt, caffemodel, str(output)]) == 0
    assert output.is_file()
    np.save(tmp_path / "x.npy", to_keras(x))
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    done = subprocess.run(
        [sys.executable, str(script), str(output), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy"), str(tmp_path / "names.json")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    reloaded = np.load(tmp_path / "y.npy")
    in_process = model.predict(to_keras(x), verbose=0)
    assert reloaded.shape == in_process.shape
    assert np.max(np.abs(reloaded - in_process)) <= 1e-6
    names = json.loads((tmp_path / "names.json").read_text())
    assert names == [layer.name for layer in model.layers]
