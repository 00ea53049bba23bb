"""Golden tests: every fixture converted and compared, blob by blob, with real Caffe's activations.

The activations in fixtures/<name>/golden.npz were produced by real Caffe
(scripts/make_golden.py); each blob must match within the manifest's tolerance
(max |keras - caffe| <= tolerance * max |caffe|). A failure names the first
diverging layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffe2keras.api import prepare
from caffe2keras.verify import (compare_blob, compare_values, first_failure, format_checks,
                                load_activations, verify_net)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# custom_layer needs a user-registered converter: tests/test_custom_converter.py runs it.
NEEDS_USER_CONVERTER = {"custom_layer"}
# Every folder holding a deploy.prototxt is a golden fixture, run here: one that lost its
# golden.npz or weights fails in its own test and in test_every_fixture_folder_is_complete.
LOCAL = sorted(p.name for p in FIXTURES.iterdir()
               if (p / "deploy.prototxt").exists() and p.name not in NEEDS_USER_CONVERTER)
# The golden fixtures run here on 2026-11-30; fixtures are added, never taken away.
MINIMUM_LOCAL = 31
GOLDEN_FILES = {"deploy.prototxt", "weights.caffemodel", "golden.npz"}


def test_every_fixture_folder_is_complete():
    """A folder under fixtures/ is a golden fixture (deploy.prototxt, weights.caffemodel and
    golden.npz), or documents itself in a SOURCE.md (nsfw: golden.npz of a model fetched at
    test time; train_val: published prototxts). Nothing may silently drop out of LOCAL."""
    problems = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir() and p.name != "__pycache__"):
        present = {p.name for p in folder.iterdir()}
        if "SOURCE.md" in present:
            continue
        missing = sorted(GOLDEN_FILES - present)
        if missing:
            problems.append(f"fixtures/{folder.name}: no {', '.join(missing)}")
        elif folder.name not in LOCAL and folder.name not in NEEDS_USER_CONVERTER:
            problems.append(f"fixtures/{folder.name}: complete, yet not collected")
    assert not problems, "\n".join(problems)
    assert len(LOCAL) >= MINIMUM_LOCAL, f"{len(LOCAL)} golden fixtures, at least {MINIMUM_LOCAL} expected"


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


# --- the comparison rule: small values cannot drift beside large ones ----------------------------

def _stored(fixture: str, layer: str) -> tuple[dict, np.ndarray]:
    manifest, arrays = load_activations(str(FIXTURES / fixture / "golden.npz"))
    entry = next(e for e in manifest["blobs"] if e["layer"] == layer)
    return entry, arrays[entry["key"]]


def test_an_argmax_value_drifting_beside_its_indices_fails():
    """shape_ops' argmax_flat_val: indices up to 69 in channel 0, max values near 2 in channel
    1. Values off by 0.05% are 1.6e-5 of the blob's largest value (69): per blob they pass,
    per channel they fail; so does one index off by one, and nothing else."""
    entry, caffe = _stored("shape_ops", "argmax_flat_val")
    assert entry["type"] == "ArgMax" and caffe[:, 0].max() == 69 and caffe[:, 1].max() < 2.5
    drifted = caffe.copy()
    drifted[:, 1] *= 1.0005
    assert compare_blob(caffe, drifted, 1e-4)[2]  # what one scale per blob lets through
    error, relative, passed, _ = compare_values("ArgMax", caffe, drifted, 1e-4)
    assert not passed and relative == pytest.approx(5e-4, rel=1e-3)
    off_by_one = caffe.copy()
    off_by_one[1, 0, 2] += 1
    assert compare_values("ArgMax", caffe, off_by_one, 1e-4)[2:] == (False,
                                                                     "1 indices differ from Caffe's")
    assert compare_values("ArgMax", caffe, caffe.copy(), 1e-4)[2]


def test_a_large_index_off_by_one_fails():
    """Indices of a flattened ArgMax over a big blob reach 10^5: 1e-4 of that is 10 indices."""
    caffe = np.float32([[[150_000.0, 3.0]]]).reshape(1, 1, 2, 1)
    assert compare_blob(caffe, caffe + np.float32([[[[1.0], [0.0]]]]), 1e-4)[2]
    assert not compare_values("ArgMax", caffe, caffe + np.float32([[[[1.0], [0.0]]]]), 1e-4)[2]


def test_a_small_probability_drifting_fails():
    """open_nsfw's prob: 0.99967 and 3.3e-4. Class 1 off by 25% is 8e-5 of the largest value:
    it passes per blob, and fails probability by probability."""
    entry, caffe = _stored("nsfw", "prob")
    assert entry["type"] == "Softmax" and caffe[0, 1] < 1e-3
    drifted = caffe.copy()
    drifted[0, 1] *= 1.25
    assert compare_blob(caffe, drifted, 1e-4)[2]
    error, relative, passed, note = compare_values("Softmax", caffe, drifted, 1e-4)
    assert not passed and relative == pytest.approx(0.25, rel=1e-3) and "(0, 1)" in note
    assert compare_values("Softmax", caffe, caffe * np.float32(1 + 2e-5), 1e-4)[2]


def test_a_softmax_converter_adding_1e_5_fails_at_its_layer(monkeypatch):
    """The softmax fixture end to end: a converter whose probabilities are 1e-5 too large
    (1e-5 of the largest: passes per blob) fails at the first Softmax."""
    from caffe2keras import registry
    from caffe2keras.lazy import keras

    softmax = registry.lookup("Softmax")

    def plus_1e_5(layer, ctx):
        steps = softmax(layer, ctx)
        return steps + [registry.Step(keras.layers.Rescaling(1.0, offset=1e-5,
                                                             name=f"{steps[-1].layer.name}_off"))]

    monkeypatch.setitem(registry._CONVERTERS, "Softmax", plus_1e_5)
    folder = FIXTURES / "softmax"
    manifest, arrays = load_activations(str(folder / "golden.npz"))
    net = prepare(str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"))
    checks = verify_net(net, manifest, arrays)
    failure = first_failure(checks)
    assert failure is not None and net.layer(failure.layer).type == "Softmax"
    assert max(c.max_abs_error for c in checks if c.max_abs_error is not None) < 2e-5


def test_a_pooling_mask_index_off_by_one_fails():
    """A mask index among values up to H*W is a position: one off is a wrong pixel."""
    from caffe2keras.verify import POOLING_MASK, value_kind
    manifest, arrays = load_activations(str(FIXTURES / "unpooling" / "golden.npz"))
    entry = next(e for e in manifest["blobs"] if e["top"] == "pool1_mask")
    assert value_kind(entry, manifest) == POOLING_MASK
    assert value_kind(next(e for e in manifest["blobs"] if e["top"] == "pool1"), manifest) == "Pooling"
    caffe = arrays[entry["key"]]
    off_by_one = caffe.copy()
    off_by_one.flat[7] += 1
    assert compare_values(POOLING_MASK, caffe, off_by_one, 1e-4)[2:] == (
        False, "1 indices differ from Caffe's")
    assert compare_values(POOLING_MASK, caffe, caffe.copy(), 1e-4)[2]
    # On a 360x480 plane (SegNet's) indices reach 172799: one off is 6e-6 of the largest, which
    # the whole-blob rule would pass.
    large = np.float32([[[[172799.0, 12.0]]]])
    assert compare_blob(large, large + np.float32([0, 1]), 1e-4)[2]
    assert not compare_values(POOLING_MASK, large, large + np.float32([0, 1]), 1e-4)[2]
