"""The machinery every output format shares: choosing the format, canonical names, the
conversion check, atomic writing, exit codes. A test format stands in for a runtime here
(it stores the model as .keras and runs it with Keras, optionally broken on purpose); each
real format has its own test module and runs the golden suite (test_formats_golden.py)."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras import formats
from caffe2keras.errors import ExportCheckError, OutputError, UnsupportedInFormatError
from caffe2keras.formats import for_output, format_name_of, output_names
from caffe2keras.formats.check import check_artifact, compare_outputs, probe_inputs
from caffe2keras.formats.keras_file import KerasFormat, KerasRunner
from caffe2keras.formats.write import write_artifact

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def files(name: str) -> tuple[str, str]:
    return str(FIXTURES / name / "deploy.prototxt"), str(FIXTURES / name / "weights.caffemodel")


class _Skewed(KerasRunner):
    """Keras' outputs with one of them changed, as a broken exporter would give."""

    def __init__(self, model, damage):
        super().__init__(model)
        self.damage = damage

    def run(self, feeds):
        return self.damage(super().run(feeds))


class FakeRuntimeFormat(KerasFormat):
    name = "fake"
    extensions = (".fake",)
    description = "Fake runtime format"
    runtime = "fakeruntime"
    checked = True
    damage = staticmethod(lambda outputs: outputs)
    refuse: list = []

    def unsupported(self, model):
        return [(layer.name, type(layer).__name__, "the fake runtime has no such op")
                for layer in model.layers if type(layer).__name__ in self.refuse]

    def write(self, model, path):
        from caffe2keras.save import save_model
        save_model(model, path + ".keras")
        os.replace(path + ".keras", path)

    def load(self, path):
        import shutil
        import tempfile
        with tempfile.TemporaryDirectory() as scratch:  # Keras reads .keras files by name
            copy = shutil.copy(path, os.path.join(scratch, "model.keras"))
            runner = super().load(copy)
        return _Skewed(runner.model, self.damage)


@pytest.fixture
def fake_format(monkeypatch):
    fmt = FakeRuntimeFormat()
    formats.format_names()  # load the real ones first
    monkeypatch.setitem(formats._EXTENSIONS, ".fake", "fake")
    monkeypatch.setitem(formats._loaded, "fake", fmt)
    return fmt


@pytest.fixture(scope="module")
def caffenet():
    return caffe2keras.convert(*files("caffenet"))


@pytest.fixture(scope="module")
def slicer():
    return caffe2keras.convert(*files("reshape_slice_crop"))


# --- choosing a format ---------------------------------------------------------------------------

@pytest.mark.parametrize("path, name", [("m.keras", "keras"), ("m.H5", "h5"), ("m.onnx", "onnx"),
                                        ("m.tflite", "tflite"), ("m.xml", "openvino"),
                                        ("m.pt2", "torch"), ("serving/1/", "savedmodel")])
def test_the_extension_chooses_the_format(path, name):
    assert format_name_of(path) == name
    assert for_output(path).name == name


def test_format_and_extension_must_agree():
    assert for_output("m.onnx", "onnx").name == "onnx"
    with pytest.raises(OutputError, match=r"m\.onnx: --format tflite writes \.tflite"):
        for_output("m.onnx", "tflite")
    with pytest.raises(OutputError, match="unknown output format '.pb'"):
        for_output("m.pb")
    with pytest.raises(OutputError, match="unknown output format 'caffe'"):
        for_output("m.onnx", "caffe")


def test_importing_the_formats_loads_no_runtime():
    import subprocess
    import sys
    code = ("import sys, caffe2keras.formats as f; [f.for_output(p) for p in "
            "('a.onnx', 'a.tflite', 'a.xml', 'a.pt2')]; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'openvino', 'torch', 'tensorflow', "
            "'ai_edge_litert', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- names -------------------------------------------------------------------------------------

def test_output_names_tell_apart_the_tops_of_one_layer(slicer):
    names = output_names(slicer)
    assert names[:4] == ["crop", "crop_axis1", "reshape", "reshape_axes"]
    assert names[4:] == ["slice_c:0", "slice_c:1", "slice_c:2", "slice_h:0", "slice_h:1",
                         "slice_w:0", "slice_w:1"]
    assert slicer.output_names[4:7] == ["slice_c"] * 3  # what Keras' own names would give


# --- the check -----------------------------------------------------------------------------------

def test_probe_inputs_are_seeded_with_a_large_and_a_small_item(slicer):
    first, again = probe_inputs(slicer), probe_inputs(slicer)
    assert list(first) == ["data", "ref"]
    for name, array in first.items():
        assert array.shape[0] == 2 and array.dtype == np.float32
        np.testing.assert_array_equal(array, again[name])
        assert 30 < float(np.std(array[0])) < 70 and 0.6 < float(np.std(array[1])) < 1.4


def test_compare_outputs_is_relative_per_output_and_item():
    want = {"a": np.array([[1000.0, 2.0]]), "b": np.array([[0.5, -0.25]])}
    checks = compare_outputs(want, {"a": want["a"] + [[0.0, 0.05]], "b": want["b"] * 1.001})
    assert [c.passed for c in checks] == [True, False]  # 5e-5 of 1000 passes, 1e-3 fails
    assert checks[1].relative_error == pytest.approx(1e-3)
    with pytest.raises(ExportCheckError, match="'b' has shape"):
        compare_outputs(want, {"a": want["a"], "b": want["b"].T})
    with pytest.raises(ExportCheckError, match="are not the model's"):
        compare_outputs(want, {"a": want["a"]})
    nan = compare_outputs(want, {"a": want["a"] * np.nan, "b": want["b"]})
    assert not nan[0].passed
    # the same overflow on both sides agrees; a different one does not
    inf = {"d": np.array([[np.inf, 2.0, np.nan], [-np.inf, 1.0, 3.0]])}
    assert compare_outputs(inf, {"d": inf["d"].copy()})[0].relative_error == 0.0
    assert not compare_outputs(inf, {"d": inf["d"] * [[-1, 1, 1], [1, 1, 1]]})[0].passed
    assert not compare_outputs(inf, {"d": np.nan_to_num(inf["d"])})[0].passed
    # the small item is judged by its own scale, not the large one's
    two = {"c": np.array([[1000.0, 1.0], [0.002, 0.001]])}
    skewed = compare_outputs(two, {"c": two["c"] + [[0.0, 0.0], [0.0, 0.0001]]})[0]
    assert skewed.relative_error == pytest.approx(0.05) and not skewed.passed


def test_an_exact_artifact_passes_the_check(tmp_path, fake_format, caffenet):
    path = str(tmp_path / "net.fake")
    checks = write_artifact(caffenet, path, fake_format)
    assert [c.name for c in checks] == ["prob"] and checks[0].max_abs_error == 0.0
    assert os.listdir(tmp_path) == ["net.fake"]


def test_a_broken_artifact_fails_the_check_and_is_not_kept(tmp_path, fake_format, slicer):
    target = tmp_path / "net.fake"
    target.write_bytes(b"the user's previous artifact")
    fake_format.damage = lambda outputs: {**outputs, "slice_h:1": outputs["slice_h:1"] * 1.01}
    with pytest.raises(ExportCheckError) as caught:
        write_artifact(slicer, str(target), fake_format)
    message = str(caught.value)
    assert "Fake runtime format (fakeruntime)" in message and "'slice_h:1'" in message
    assert "differs from the Keras model's by 0.01 of its largest value" in message
    assert caught.value.exit_code == 9
    assert os.listdir(tmp_path) == ["net.fake"]
    assert target.read_bytes() == b"the user's previous artifact"


def test_swapped_outputs_of_one_shape_fail_the_check(tmp_path, fake_format, slicer):
    # slice_c's three tops have one shape: only the values tell them apart
    fake_format.damage = lambda outputs: {**outputs, "slice_c:0": outputs["slice_c:1"],
                                          "slice_c:1": outputs["slice_c:0"]}
    with pytest.raises(ExportCheckError, match="slice_c:[01]"):
        write_artifact(slicer, str(tmp_path / "net.fake"), fake_format)
    assert os.listdir(tmp_path) == []


def test_check_artifact_on_a_written_file(tmp_path, fake_format, caffenet):
    path = str(tmp_path / "net.fake")
    write_artifact(caffenet, path, fake_format, check=False)
    fake_format.damage = lambda outputs: {"prob": outputs["prob"][:, ::-1]}
    with pytest.raises(ExportCheckError, match="'prob'"):
        check_artifact(fake_format, caffenet, path)


def test_a_layer_the_format_cannot_express_is_refused_before_writing(tmp_path, fake_format,
                                                                     caffenet):
    fake_format.refuse = ["LRN"]
    with pytest.raises(UnsupportedInFormatError) as caught:
        write_artifact(caffenet, str(tmp_path / "net.fake"), fake_format)
    assert str(caught.value) == ("Fake runtime format cannot express 2 layers: 'norm1' (LRN): the "
                                 "fake runtime has no such op; 'norm2' (LRN): the fake runtime "
                                 "has no such op")
    assert caught.value.exit_code == 10 and os.listdir(tmp_path) == []


# --- the command line ----------------------------------------------------------------------------

def test_cli_reports_the_check_in_the_summary(tmp_path, run_cli, fake_format):
    code, _, err = run_cli("convert", *files("caffenet"), tmp_path / "net.fake")
    assert code == 0, err
    assert "  check       fakeruntime: 1 output(s) match Keras, largest error 0 of max |value| " \
           "(prob)" in err
    assert "net.fake (Fake runtime format)" in err


def test_cli_no_check_skips_the_runtime(tmp_path, run_cli, fake_format):
    fake_format.damage = lambda outputs: {"prob": outputs["prob"] + 1}
    code, _, err = run_cli("convert", *files("caffenet"), tmp_path / "net.fake", "--no-check")
    assert code == 0 and "check       skipped (--no-check)" in err
    assert os.listdir(tmp_path) == ["net.fake"]


def test_cli_check_failure_exit_code_and_no_file(tmp_path, run_cli, fake_format):
    fake_format.damage = lambda outputs: {"prob": outputs["prob"] + 1}
    code, out, err = run_cli("convert", *files("caffenet"), tmp_path / "net.fake")
    assert code == 9 and out == ""
    assert err.startswith("caffe2keras: error: Fake runtime format (fakeruntime): output 'prob' "
                          "differs from the Keras model's by ")
    assert "Traceback" not in err and os.listdir(tmp_path) == []


def test_cli_format_option(tmp_path, run_cli, fake_format):
    code, _, err = run_cli("convert", *files("caffenet"), tmp_path / "net.fake", "--format", "fake")
    assert code == 0, err
    code, _, err = run_cli("convert", *files("caffenet"), tmp_path / "net.onnx", "--format", "fake")
    assert code == 7 and "--format fake writes .fake" in err
    code, _, err = run_cli("convert", *files("caffenet"), tmp_path / "n.onnx", "--format", "nope")
    assert code == 2 and "invalid choice: 'nope'" in err


def test_cli_verify_an_artifact_against_caffe(tmp_path, run_cli, fake_format):
    artifact = tmp_path / "net.fake"
    assert run_cli("convert", *files("caffenet"), artifact, "--outputs", "relu7,prob")[0] == 0
    golden = FIXTURES / "caffenet" / "golden.npz"
    code, out, err = run_cli("verify", artifact, "--activations", golden)
    assert code == 0, out + err
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "pass (not an output of the artifact)" in rows["conv1"]
    assert rows["relu7"].split()[-1] == "pass" and rows["prob"].split()[-1] == "pass"
    assert "2 blobs compared, 0 failed" in out

    fake_format.damage = lambda outputs: {**outputs, "relu7": outputs["relu7"] * 1.5}
    code, out, _ = run_cli("verify", artifact, "--activations", golden)
    assert code == 1 and "first diverging layer: 'relu7'" in out


def test_cli_verify_through_a_runtime(run_cli, fake_format):
    golden = FIXTURES / "caffenet" / "golden.npz"
    code, out, err = run_cli("verify", *files("caffenet"), "--activations", golden,
                             "--runtime", "fake")
    assert code == 0, out + err
    assert "0 failed" in out and "not an output" not in out  # every blob is an output
    fake_format.damage = lambda outputs: {**outputs, "norm2": outputs["norm2"] * 0.99}
    code, out, _ = run_cli("verify", *files("caffenet"), "--activations", golden,
                           "--runtime", "fake")
    assert code == 1 and "first diverging layer: 'norm2'" in out


def test_cli_verify_artifact_usage_errors(tmp_path, run_cli):
    golden = FIXTURES / "caffenet" / "golden.npz"
    code, _, err = run_cli("verify", "a.onnx", "--activations", golden, "--fold-batchnorm")
    assert code == 2 and "apply to a Caffe net" in err
    code, _, err = run_cli("verify", "a", "b", "c", "--activations", golden)
    assert code == 2 and "got 3 paths" in err


def test_keras_file_verifies_like_an_artifact(tmp_path, run_cli):
    model = tmp_path / "net.keras"
    assert run_cli("convert", *files("caffenet"), model)[0] == 0
    code, out, _ = run_cli("verify", model, "--activations", FIXTURES / "caffenet" / "golden.npz")
    assert code == 0 and "1 blobs compared, 0 failed" in out
    assert isinstance(keras.models.load_model(model, safe_mode=True), keras.Model)


def test_a_saved_model_verifies_like_an_artifact(tmp_path, run_cli):
    folder = tmp_path / "served"
    code, _, err = run_cli("convert", *files("reshape_slice_crop"), f"{folder}/")
    assert code == 0, err
    code, out, _ = run_cli("verify", f"{folder}/", "--activations",
                           FIXTURES / "reshape_slice_crop" / "golden.npz")
    assert code == 0 and "11 blobs compared, 0 failed" in out  # slice tops told apart by name
