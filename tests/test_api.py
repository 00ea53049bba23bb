"""The Python API: names and docstrings, a light import, verify(), convert_file()'s report."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras import BlobCheck, CaffeToKerasError, VerificationError
from caffe2keras.summary import ConversionReport
from caffe2keras.verify import first_failure, load_activations

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def files(name: str) -> tuple[str, str]:
    return str(FIXTURES / name / "deploy.prototxt"), str(FIXTURES / name / "weights.caffemodel")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_import_is_light():
    done = run_python("import caffe2keras, sys; "
                      "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    assert done.returncode == 0, done.stderr


def test_inspect_does_not_import_tensorflow():
    prototxt, caffemodel = files("caffenet")
    done = run_python(f"""
        import sys
        from caffe2keras.cli import main
        assert main(["inspect", {prototxt!r}, {caffemodel!r}]) == 0
        assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "imported"
    """)
    assert done.returncode == 0, done.stderr
    assert "23 layers, 1 input(s), outputs: prob" in done.stdout


def test_public_names_are_documented():
    for name in caffe2keras.__all__:
        value = getattr(caffe2keras, name)
        assert value.__doc__ and value.__doc__.strip(), f"caffe2keras.{name} has no docstring"
    for name in ("convert", "convert_file", "load_net", "verify", "converter", "shape_rule"):
        assert callable(getattr(caffe2keras, name)), name
    # `caffe2keras.verify` stays the function after the module is imported by name.
    importlib.import_module("caffe2keras.verify")
    assert callable(caffe2keras.verify) and caffe2keras.verify.__module__ == "caffe2keras.verify"


def test_error_classes_have_distinct_exit_codes():
    classes = [getattr(caffe2keras, name) for name in caffe2keras.__all__
               if name.endswith("Error")]
    assert all(issubclass(cls, CaffeToKerasError) for cls in classes)
    codes = [cls.exit_code for cls in classes if cls is not CaffeToKerasError]
    assert len(codes) == len(set(codes)) == 6 and 2 not in codes and 0 not in codes


# --- verify --------------------------------------------------------------------------------------

def test_verify_compares_every_stored_blob():
    manifest, _ = load_activations(str(FIXTURES / "caffenet" / "golden.npz"))
    checks = caffe2keras.verify(*files("caffenet"), str(FIXTURES / "caffenet" / "golden.npz"))
    assert all(isinstance(check, BlobCheck) for check in checks)
    assert [(c.layer, c.top) for c in checks] == [(e["layer"], e["top"]) for e in manifest["blobs"]]
    assert first_failure(checks) is None and all(c.relative_error < 1e-4 for c in checks)


def test_verify_with_a_zero_tolerance_reports_the_first_difference():
    checks = caffe2keras.verify(*files("caffenet"), str(FIXTURES / "caffenet" / "golden.npz"),
                                tolerance=0.0)
    failure = first_failure(checks)
    assert failure is not None and failure.relative_error > 0


def test_verify_folded_and_refuses_a_bad_activations_file(tmp_path):
    checks = caffe2keras.verify(*files("resnet"), str(FIXTURES / "resnet" / "golden.npz"),
                                fold_batchnorm=True)
    assert first_failure(checks) is None
    assert {c.layer for c in checks if c.max_abs_error is None} >= {"conv1", "bn_conv1"}
    (tmp_path / "ref.npz").write_bytes(b"not a zip")
    with pytest.raises(VerificationError, match="not a readable .npz"):
        caffe2keras.verify(*files("resnet"), str(tmp_path / "ref.npz"))


# --- convert_file --------------------------------------------------------------------------------

def test_convert_file_reports_what_it_did(tmp_path):
    output = str(tmp_path / "resnet.keras")
    report = caffe2keras.convert_file(*files("resnet"), output, fold_batchnorm=True,
                                      outputs=["pool5", "prob"])
    assert isinstance(report, ConversionReport)
    model = keras.models.load_model(output, safe_mode=True)
    assert report.kind == "keras" and report.size_bytes == Path(output).stat().st_size
    assert report.caffe_layers == 66  # every layer of the fixture but the Input
    assert report.folded == 2 * 15 and report.fused == 0  # 15 conv+BN+Scale chains
    assert report.keras_layers == len(model.layers) - 1  # not the InputLayer
    assert report.parameters == model.count_params()
    assert report.inputs == [("data", (None, 45, 39, 3))]
    assert report.outputs == [("pool5", (None, 1, 1, 24)), ("prob", (None, 10))]
    assert set(report.stage_seconds) == {"read", "build", "write"} and report.seconds > 0
    assert report.warnings == [] and report.preprocess is None


def test_convert_file_without_weights_reports_the_filler_warning(tmp_path):
    report = caffe2keras.convert_file(files("caffenet")[0], None, str(tmp_path / "m.h5"),
                                      fuse_batchnorm=False)
    assert len(report.warnings) == 1 and "fillers" in report.warnings[0]


def test_convert_and_convert_file_agree(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 103, 87, 3)).astype(np.float32)
    model = caffe2keras.convert(*files("caffenet"))
    caffe2keras.convert_file(*files("caffenet"), str(tmp_path / "m.keras"))
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
