"""Every golden net, exported to every runtime format and run in that runtime, against real
Caffe's stored activations: the model with every stored blob as an output is exported (so
each layer is checked in each format, not only the net outputs) and each blob compared
within the manifest's tolerance."""

from __future__ import annotations

import importlib.util
import os

import pytest

from caffe2keras.errors import UnsupportedInFormatError

from test_golden import FIXTURES, LOCAL, _check

RUNTIMES = {"onnx": "onnxruntime", "tflite": "ai_edge_litert", "openvino": "openvino",
            "torch": "torch"}
# Every golden net exports but these, which must be refused by naming the layer:
# (format, fixture) -> the layer. LiteRT's TRANSPOSE_CONV has no dilation (only a Flex op has).
REFUSED: dict[tuple[str, str], str] = {("tflite", "deconv_variants"): "deconv_dilated"}


def require_runtime(format_name: str) -> None:
    module = RUNTIMES[format_name]
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install '.[export]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def check_against_caffe(format_name, prototxt, caffemodel, golden, fuse_batchnorm=False):
    require_runtime(format_name)
    return _check(prototxt, caffemodel, golden, fuse_batchnorm, runtime=format_name)


@pytest.mark.parametrize("name", LOCAL)
@pytest.mark.parametrize("format_name", list(RUNTIMES))
def test_every_blob_matches_caffe_in_the_runtime(format_name, name):
    folder = FIXTURES / name
    files = folder / "deploy.prototxt", folder / "weights.caffemodel", folder / "golden.npz"
    if (format_name, name) in REFUSED:
        require_runtime(format_name)
        with pytest.raises(UnsupportedInFormatError) as refused:
            check_against_caffe(format_name, *files)
        assert [layer for layer, _, _ in refused.value.layers] == [REFUSED[format_name, name]]
        return
    check_against_caffe(format_name, *files)


@pytest.mark.parametrize("format_name", list(RUNTIMES))
def test_nsfw_resnet50_matches_caffe_in_the_runtime(format_name, nsfw_model):
    prototxt, caffemodel = nsfw_model
    checks = check_against_caffe(format_name, prototxt, caffemodel,
                                 FIXTURES / "nsfw" / "golden.npz", fuse_batchnorm=True)
    assert any(c.top == "prob" and c.max_abs_error is not None for c in checks)
