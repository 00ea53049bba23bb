"""Every fenced block of the README runs, as written, on the small fixture models.

A block is preceded by ``<!-- recipe: NAME (FIXTURE) -->`` or by ``<!-- not run here: WHY -->``.
A recipe runs in a fresh folder holding the FIXTURE's files under the names the README uses
(``deploy.prototxt``, ``VGG_ILSVRC_16_layers.caffemodel``, ...): shell blocks line by line
through ``caffe2keras.cli.main`` (each command must exit 0), Python blocks with ``exec``. Then
a check per recipe looks at what it produced. A recipe that stops working, or disappears, fails
here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from caffe2keras import registry
from caffe2keras.cli import main
from caffe2keras.proto import caffe_pb2
from caffe2keras.shapes import registry as shape_registry
from caffe2keras.verify import load_activations, to_keras_layout
from readme_devices import BACKENDS as ON_DEVICES, check_several_gpus, run_on_devices

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FIXTURES = ROOT / "fixtures"

RECIPE = re.compile(r"^<!-- recipe: ([\w-]+) \((\w+)\) -->$")
NOT_RUN = re.compile(r"^<!-- not run here: .+ -->$")

# README file name -> fixture file, per fixture.
SANDBOXES = {
    "caffenet": {"deploy.prototxt": "caffenet/deploy.prototxt",
                 "model.caffemodel": "caffenet/weights.caffemodel",
                 "ref.npz": "caffenet/golden.npz"},
    "vgg16": {"VGG_ILSVRC_16_layers_deploy.prototxt": "vgg16/deploy.prototxt",
              "VGG_ILSVRC_16_layers.caffemodel": "vgg16/weights.caffemodel"},
    "resnet": {"ResNet-50-deploy.prototxt": "resnet/deploy.prototxt",
               "ResNet-50-model.caffemodel": "resnet/weights.caffemodel",
               "ref.npz": "resnet/golden.npz"},
    "custom_layer": {"deploy.prototxt": "custom_layer/deploy.prototxt",
                     "model.caffemodel": "custom_layer/weights.caffemodel",
                     "ref.npz": "custom_layer/golden.npz"},
}
REQUIRES = {"serving-python": "serving-cli", "onnx-python": "deploy-cli",
            "litert-python": "deploy-cli", "openvino-python": "deploy-cli",
            "torch-python": "deploy-cli"}  # recipes that read what another one wrote


def readme_blocks() -> list[dict]:
    """Fenced blocks: line number, the line before, language, code."""
    lines = README.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append({"line": i + 1, "before": lines[i - 1] if i else "",
                           "language": lines[i][3:].strip(), "code": "\n".join(lines[i + 1:end])})
            i = end
        i += 1
    return blocks


def recipes() -> dict[str, dict]:
    found = {}
    for block in readme_blocks():
        match = RECIPE.match(block["before"])
        if match:
            assert match.group(1) not in found, f"two README recipes are named {match.group(1)}"
            found[match.group(1)] = dict(block, fixture=match.group(2))
    return found


def make_sandbox(folder: Path, fixture: str) -> None:
    for name, source in SANDBOXES[fixture].items():
        shutil.copy(FIXTURES / source, folder / name)
    if fixture == "caffenet":  # a mean image larger than the 103x87 input, like ImageNet's
        values = np.random.default_rng(3).uniform(90, 130, (1, 3, 110, 100)).astype(np.float32)
        blob = caffe_pb2.BlobProto()
        blob.shape.dim.extend(values.shape)
        blob.data.extend(values.ravel().tolist())
        (folder / "mean.binaryproto").write_bytes(blob.SerializeToString())
    if fixture == "custom_layer":  # the README registers a type no built-in rule knows
        prototxt = folder / "deploy.prototxt"
        prototxt.write_text(prototxt.read_text().replace('"HardSwish"', '"MyHardSwish"'))


def run_shell(code: str, where: str) -> None:
    """caffe2keras and mkdir -p lines, with backslash continuations and # comments."""
    for line in code.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        if argv[:2] == ["mkdir", "-p"]:
            for folder in argv[2:]:
                Path(folder).mkdir(parents=True, exist_ok=True)
            continue
        assert argv[0] == "caffe2keras", f"{where}: the recipe runner knows no {argv[0]!r}"
        assert main(argv[1:]) == 0, f"{where}: `{line.strip()}` failed"


def run_recipe(recipe: dict) -> dict:
    where = f"README.md:{recipe['line']}"
    if recipe["language"] == "python":
        namespace = {"__name__": "__readme__"}
        exec(compile(recipe["code"], where, "exec"), namespace)  # noqa: S102  (our README)
        return namespace
    assert recipe["language"] == "", f"{where}: unexpected block language {recipe['language']!r}"
    run_shell(recipe["code"], where)
    return {}


# --- what each recipe must have produced ---------------------------------------------------------

def golden(fixture: str, layer: str):
    manifest, arrays = load_activations(str(FIXTURES / fixture / "golden.npz"))
    entry = next(e for e in manifest["blobs"] if e["layer"] == layer)
    return to_keras_layout(arrays[manifest["inputs"][0]["key"]]), arrays[entry["key"]]


def _relative_error(got, want) -> float:
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


def check_intro(ns, folder):
    assert keras.models.load_model(folder / "model.h5", safe_mode=True).output.shape == (None, 10)


def check_convert_and_verify(ns, folder):
    assert (folder / "model.keras").is_file()


def check_convert_and_verify_python(ns, folder):
    assert len(ns["checks"]) > 20 and all(check.passed for check in ns["checks"])
    assert [layer.name for layer in ns["net"].layers][-1] == "prob"


def check_features_cli(ns, folder):
    model = keras.models.load_model(folder / "fc7.keras", safe_mode=True)
    assert "fc8" not in {layer.name for layer in model.layers}
    x, want = golden("caffenet", "relu7")
    assert _relative_error(model.predict(x, verbose=0), want) < 1e-4


def check_features_python(ns, folder):
    assert ns["features"].shape == (4, 32)  # the fixture's fc7 has 32 outputs
    assert "fc8" not in {layer.name for layer in ns["fc7"].layers}
    x, want = golden("caffenet", "relu7")  # both of the recipe's models give Caffe's features
    assert _relative_error(ns["extractor"].predict(x, verbose=0), want) < 1e-4
    assert _relative_error(ns["fc7"].predict(x, verbose=0), want) < 1e-4


def check_preprocess_cli(ns, folder):
    assert np.load(folder / "mean.npy").shape == (3, 110, 100)
    model = keras.models.load_model(folder / "model.keras", safe_mode=True)
    layer = model.get_layer("data_preprocess")
    assert layer.get_config()["channel_swap"] == [2, 1, 0]
    assert np.array_equal(layer.get_weights()[0], np.float32([104, 117, 123]))


def check_preprocess_python(ns, folder):
    assert ns["probabilities"].shape == (2, 10)
    assert "center-cropped to 103x87" in ns["model"].get_layer("data_preprocess").mean_source


STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
VGG_MEAN = np.float32([103.939, 116.779, 123.68])


def vgg_style_reference(rgb: np.ndarray) -> list[np.ndarray]:
    """Caffe's relu1_1 ... relu5_1 (NHWC) for RGB images at the recipe's 256x256 size. The
    fixture's golden activations are at 40x36 and its fc6 fits only that size, so the
    reference here is Caffe's forward pass in numpy (``numpy_forward``, the one every
    conversion test uses) on the same weights, of the BGR, mean-subtracted blob."""
    from caffe2keras.api import prepare
    from numpy_forward import forward
    net = prepare(str(FIXTURES / "vgg16" / "deploy.prototxt"),
                  str(FIXTURES / "vgg16" / "weights.caffemodel"),
                  input_shapes={"data": (len(rgb), 3, *rgb.shape[1:3])}, fuse_batchnorm=False,
                  outputs=STYLE_LAYERS)
    values = forward(net, {"data": (rgb[..., ::-1] - VGG_MEAN).transpose(0, 3, 1, 2)})
    return [values[net.layer(name).tops[0]].transpose(0, 2, 3, 1) for name in STYLE_LAYERS]


def check_style_cli(ns, folder):
    model = keras.models.load_model(folder / "vgg_style.keras", safe_mode=True)
    assert tuple(model.input.shape) == (None, 256, 256, 3) and len(model.outputs) == 5
    assert not {"fc6", "fc7", "fc8"} & {layer.name for layer in model.layers}
    rgb = np.random.default_rng(5).uniform(0, 255, (1, 256, 256, 3)).astype(np.float32)
    for got, want in zip(model.predict(rgb, verbose=0), vgg_style_reference(rgb)):
        assert _relative_error(got, want) < 1e-4


def check_style_python(ns, folder):
    channels = [4, 8, 16, 16, 16]  # the fixture's VGG-16 widths
    assert [tuple(gram.shape) for gram in ns["style"]] == [(1, c, c) for c in channels]
    for got, features in zip(ns["style"], vgg_style_reference(ns["image"])):
        n, h, w, c = features.shape
        flat = features.reshape(n, h * w, c).astype(np.float64)
        assert _relative_error(got, flat.transpose(0, 2, 1) @ flat / (h * w)) < 1e-4


def check_fine_tune(ns, folder):
    import caffe2keras
    fresh = caffe2keras.convert("ResNet-50-deploy.prototxt", "ResNet-50-model.caffemodel",
                                outputs=["pool5"])
    normalisations = [layer for layer in ns["base"].layers
                      if isinstance(layer, keras.layers.BatchNormalization)]
    assert normalisations
    for layer in normalisations:  # statistics, gamma and beta: all frozen
        for got, want in zip(layer.weights, fresh.get_layer(layer.name).weights):
            assert np.array_equal(got.numpy(), want.numpy()), f"{got.path} moved"
    convolutions = [layer for layer in ns["base"].layers if isinstance(layer, keras.layers.Conv2D)]
    assert not np.array_equal(convolutions[0].get_weights()[0],
                              fresh.get_layer(convolutions[0].name).get_weights()[0])


def check_siamese(ns, folder):
    """Both branches are Caffe's relu7 (one shared network); the head sees their difference."""
    siamese = ns["siamese"]
    assert len(siamese.inputs) == 2
    x, relu7 = golden("caffenet", "relu7")
    assert _relative_error(ns["cnn"].predict(x, verbose=0), relu7) < 1e-4
    kernel, bias = siamese.layers[-1].get_weights()
    logit = (relu7[:1].astype(np.float64) - relu7[1:]) @ kernel + bias
    want = 1 / (1 + np.exp(-logit))
    assert _relative_error(siamese.predict([x[:1], x[1:]], verbose=0), want) < 1e-4


SERVING_MEAN = np.float32([104, 117, 123])  # the recipe's --mean, BGR


def golden_as_rgb(fixture: str, layer: str, mean: np.ndarray):
    """The golden input as the raw RGB images a model with --preprocess takes (Caffe's blob
    is BGR minus the mean), and Caffe's ``layer`` blob for it."""
    x, want = golden(fixture, layer)
    return (x + mean)[..., ::-1].copy(), want


def check_serving_cli(ns, folder):
    import tensorflow as tf
    assert (folder / "serving" / "caffenet" / "1" / "saved_model.pb").is_file()
    served = tf.saved_model.load(str(folder / "serving" / "caffenet" / "1"))
    rgb, want = golden_as_rgb("caffenet", "prob", SERVING_MEAN)
    assert _relative_error(served.serve(rgb).numpy(), want) < 1e-4


def check_serving_python(ns, folder):
    probabilities = ns["probabilities"]
    assert probabilities.shape == (1, 10) and abs(float(probabilities.sum()) - 1) < 1e-5
    rgb, want = golden_as_rgb("caffenet", "prob", SERVING_MEAN)
    assert _relative_error(ns["served"].serve(rgb).numpy(), want) < 1e-4


def check_fold(ns, folder):
    model = keras.models.load_model(folder / "resnet50.keras", safe_mode=True)
    assert not [layer for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)]


def check_custom_layer(ns, folder):
    compared = [check for check in ns["checks"] if check.max_abs_error is not None]
    assert len(compared) == 4 and all(check.passed for check in compared)


def check_deploy_cli(ns, folder):
    from caffe2keras.formats import get_format
    x, want = golden("caffenet", "prob")
    for name, artifact in (("onnx", "model.onnx"), ("tflite", "model.tflite"),
                           ("openvino", "model.xml"), ("torch", "model.pt2")):
        got = get_format(name).load(str(folder / artifact)).run({"data": x})["prob"]
        assert _relative_error(got, want) < 1e-4, name
    assert (folder / "model.bin").is_file()


def _check_probabilities(ns):
    probabilities = np.asarray(ns["probabilities"])
    assert probabilities.shape == (4, 10)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def _runs_like_caffe(ns, run):
    """The recipe's own call, on Caffe's stored input: Caffe's numbers."""
    x, want = golden("caffenet", "prob")
    assert _relative_error(run(x), want) < 1e-4


def check_onnx_python(ns, folder):
    _check_probabilities(ns)
    _runs_like_caffe(ns, lambda x: ns["session"].run(["prob"], {"data": x})[0])


def check_litert_python(ns, folder):
    _check_probabilities(ns)
    _runs_like_caffe(ns, lambda x: ns["runner"](data=x)["prob"])


def check_openvino_python(ns, folder):
    _check_probabilities(ns)
    _runs_like_caffe(ns, lambda x: ns["compiled"](x)["prob"])


def check_torch_python(ns, folder):
    import torch
    _check_probabilities(ns)
    assert not ns["probabilities"].requires_grad

    def run(x):
        with torch.no_grad():
            return ns["program"](torch.from_numpy(x))[0].numpy()

    _runs_like_caffe(ns, run)


CHECKS = {
    "intro": check_intro,
    "convert-and-verify": check_convert_and_verify,
    "convert-and-verify-python": check_convert_and_verify_python,
    "features-cli": check_features_cli,
    "features-python": check_features_python,
    "preprocess-cli": check_preprocess_cli,
    "preprocess-python": check_preprocess_python,
    "style-cli": check_style_cli,
    "style-python": check_style_python,
    "fine-tune": check_fine_tune,
    "siamese": check_siamese,
    "serving-cli": check_serving_cli,
    "serving-python": check_serving_python,
    "fold": check_fold,
    "deploy-cli": check_deploy_cli,
    "onnx-python": check_onnx_python,
    "litert-python": check_litert_python,
    "openvino-python": check_openvino_python,
    "torch-python": check_torch_python,
    "custom-layer": check_custom_layer,
    "several-gpus-tensorflow": lambda ns, folder: check_several_gpus(ns, folder, golden),
    "several-gpus-jax": lambda ns, folder: check_several_gpus(ns, folder, golden),
}


# --- the tests ----------------------------------------------------------------------------------

def test_every_block_is_a_recipe_or_says_why_not():
    for block in readme_blocks():
        assert RECIPE.match(block["before"]) or NOT_RUN.match(block["before"]), (
            f"README.md:{block['line']}: a fenced block needs `<!-- recipe: NAME (FIXTURE) -->` "
            "or `<!-- not run here: WHY -->` on the line before it")


def test_every_recipe_is_checked_and_none_is_missing():
    found = recipes()
    assert set(found) == set(CHECKS), "README recipes and the checks here differ"
    assert all(recipe["fixture"] in SANDBOXES for recipe in found.values())


def test_quick_start_is_unchanged():
    """CI runs these two commands; they stay exactly as they are."""
    text = README.read_text()
    quick = text[text.index("## Quick start"):text.index("## Recipes")]
    assert ('```\npip install torch==2.13.0 ".[test,export]" && caffe2keras convert fixtures/caffenet/deploy.prototxt '
            'fixtures/caffenet/weights.caffemodel caffenet.h5\npython -m pytest\n```') in quick


def test_performance_placeholder_is_there():
    assert README.read_text().count("<!-- performance -->") == 1


@pytest.fixture
def clean_registry():
    yield
    registry.unregister("MyHardSwish")
    shape_registry.unregister("MyHardSwish")


@pytest.mark.parametrize("name", sorted(recipes()))
def test_recipe(name, tmp_path, monkeypatch, clean_registry):
    found = recipes()
    recipe = found[name]
    make_sandbox(tmp_path, recipe["fixture"])
    monkeypatch.chdir(tmp_path)
    if name in REQUIRES:
        run_recipe(found[REQUIRES[name]])
    if name in ON_DEVICES:  # in a subprocess, on two devices (tests/readme_devices.py)
        namespace = run_on_devices(name, recipe, tmp_path)
    else:
        namespace = run_recipe(recipe)
    CHECKS[name](namespace, tmp_path)
