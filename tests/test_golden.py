"""Golden tests: every fixture converted and compared, blob by blob, with real Caffe's activations.

The activations in fixtures/<name>/golden.npz were produced by real Caffe
(scripts/make_golden.py); each blob must match within the manifest's tolerance
(max |keras - caffe| <= tolerance * max |caffe|). A failure names the first
diverging layer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from caffe2keras.api import prepare
from caffe2keras.verify import first_failure, format_checks, load_activations, verify_net

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# custom_layer needs a user-registered converter: tests/test_custom_converter.py runs it.
NEEDS_USER_CONVERTER = {"custom_layer"}
LOCAL = sorted(p.name for p in FIXTURES.iterdir()
               if (p / "golden.npz").exists() and (p / "deploy.prototxt").exists()
               and p.name not in NEEDS_USER_CONVERTER)


def _check(prototxt, caffemodel, golden, fuse_batchnorm, runtime=None):
    """Every stored blob against Caffe's: run by Keras, or by ``runtime``'s format."""
    manifest, arrays = load_activations(str(golden))
    net = prepare(str(prototxt), str(caffemodel), fuse_batchnorm=fuse_batchnorm)
    checks = verify_net(net, manifest, arrays, runtime=runtime)
    compared = [c for c in checks if c.max_abs_error is not None]
    assert compared, "no blob was compared"
    failure = first_failure(checks)
    assert failure is None, (
        f"{runtime or 'keras'}: first diverging layer {failure.layer!r} (top {failure.top!r}): "
        f"{failure.note or f'relative error {failure.relative_error:.3g}'}\n"
        + format_checks(checks, manifest["tolerance"]))
    return checks


@pytest.mark.parametrize("name", LOCAL)
def test_every_blob_matches_caffe(name):
    folder = FIXTURES / name
    checks = _check(folder / "deploy.prototxt", folder / "weights.caffemodel", folder / "golden.npz",
                    fuse_batchnorm=False)
    # Unfused, every stored blob exists in the Keras model and is compared.
    skipped = [c for c in checks if c.max_abs_error is None]
    assert not skipped, [f"{c.layer}:{c.top} {c.note}" for c in skipped]


@pytest.mark.parametrize("name", [n for n in LOCAL if "BatchNorm" in
                                  (FIXTURES / n / "deploy.prototxt").read_text()])
def test_fused_batchnorm_matches_caffe(name):
    folder = FIXTURES / name
    _check(folder / "deploy.prototxt", folder / "weights.caffemodel", folder / "golden.npz",
           fuse_batchnorm=True)


def test_nsfw_resnet50_matches_caffe(nsfw_model):
    prototxt, caffemodel = nsfw_model
    checks = _check(prototxt, caffemodel, FIXTURES / "nsfw" / "golden.npz", fuse_batchnorm=True)
    assert any(c.top == "prob" and c.max_abs_error is not None for c in checks)


def test_a_broken_converter_fails_at_its_layer(monkeypatch):
    """The suite must catch a classic mistake: LRN's alpha used without Caffe's 1/n."""
    from caffe2keras import registry
    from caffe2keras.converters import norm
    from caffe2keras.lazy import custom_layers

    def lrn_without_division(layer, ctx):
        p = layer.param.lrn_param
        # The custom layer divides alpha by n itself; pre-multiplying undoes that.
        return [registry.Step(custom_layers.LRN(local_size=p.local_size, alpha=p.alpha * p.local_size,
                                                beta=p.beta, k=p.k, name=norm.name_of(layer)))]

    monkeypatch.setitem(registry._CONVERTERS, "LRN", lrn_without_division)
    folder = FIXTURES / "caffenet"
    manifest, arrays = load_activations(str(folder / "golden.npz"))
    net = prepare(str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"))
    failure = first_failure(verify_net(net, manifest, arrays))
    assert failure is not None and failure.layer == "norm1"
