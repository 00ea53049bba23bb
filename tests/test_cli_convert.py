"""`caffe2keras convert`: --outputs, SavedModel folders, the summary and the progress line."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras.errors import OutputError, StructureError
from caffe2keras.formats import format_name_of
from caffe2keras.progress import Progress
from caffe2keras.verify import load_activations, to_keras_layout

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def files(name: str) -> tuple[str, str]:
    return str(FIXTURES / name / "deploy.prototxt"), str(FIXTURES / name / "weights.caffemodel")


def golden(name: str, layer: str):
    manifest, arrays = load_activations(str(FIXTURES / name / "golden.npz"))
    entry = next(e for e in manifest["blobs"] if e["layer"] == layer)
    return to_keras_layout(arrays[manifest["inputs"][0]["key"]]), arrays[entry["key"]]


def summary_rows(err: str) -> dict[str, str]:
    rows = {}
    for line in err.splitlines():
        if line.startswith("  "):
            label, _, text = line.strip().partition("  ")
            rows[label] = text.strip()
    return rows


# --- --outputs -----------------------------------------------------------------------------------

def test_outputs_keeps_what_fc7_needs_and_the_file_shrinks(tmp_path, run_cli):
    full, features = tmp_path / "full.keras", tmp_path / "fc7.keras"
    assert run_cli("convert", *files("caffenet"), full)[0] == 0
    code, _, err = run_cli("convert", *files("caffenet"), features, "--outputs", "relu7")
    assert code == 0, err
    rows = summary_rows(err)
    assert rows["layers"].startswith("20 Caffe") and rows["outputs"] == "fc7 (N, 32)"
    model = keras.models.load_model(features, safe_mode=True)
    assert not {"fc8", "prob"} & {layer.name for layer in model.layers}
    assert features.stat().st_size < full.stat().st_size
    x, want = golden("caffenet", "relu7")
    got = model.predict(x, verbose=0)
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))


def test_outputs_for_style_transfer(tmp_path, run_cli):
    layers = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
    output = tmp_path / "vgg.keras"
    code, _, err = run_cli("convert", *files("vgg16"), output, "--outputs", layers,
                           "--input-shape", "data=1,3,64,48")
    assert code == 0, err
    model = keras.models.load_model(output, safe_mode=True)
    assert [tuple(t.shape) for t in model.outputs] == [
        (None, 64, 48, 4), (None, 32, 24, 8), (None, 16, 12, 16), (None, 8, 6, 16),
        (None, 4, 3, 16)]
    assert not {"fc6", "pool5", "conv5_3"} & {layer.name for layer in model.layers}


def test_outputs_naming_an_unknown_layer_is_one_error(tmp_path, run_cli):
    code, out, err = run_cli("convert", *files("caffenet"), tmp_path / "m.keras", "--outputs",
                             "fc7,fc9")
    assert code == StructureError.exit_code and out == ""
    assert err == "caffe2keras: error: --outputs names 'fc9', which the net does not have (after " \
                  "phase filtering)\n"
    assert os.listdir(tmp_path) == []


# --- the summary ---------------------------------------------------------------------------------

def test_summary_after_a_conversion(tmp_path, run_cli):
    output = tmp_path / "resnet.h5"
    code, out, err = run_cli("convert", *files("resnet"), output, "--fold-batchnorm")
    assert code == 0 and out == ""
    assert "\r" not in err  # not a terminal: no progress line
    rows = summary_rows(err)
    assert rows["output"] == f"{output} (Keras HDF5 (legacy))"
    assert rows["layers"] == "66 Caffe -> 42 Keras"
    model = keras.models.load_model(output, safe_mode=True)
    assert rows["parameters"].startswith(f"{model.count_params():,} (")
    assert rows["inputs"] == "data (N, 45, 39, 3)" and rows["outputs"] == "prob (N, 10)"
    assert rows["folded"] == "30 BatchNorm/Scale layer(s) into convolutions"
    assert rows["file size"].endswith("KiB") and rows["warnings"] == "0"
    assert rows["time"].endswith(")") and "read" in rows["time"] and "write" in rows["time"]
    assert len(err.splitlines()) < 24  # one screen


def test_summary_counts_fusions_and_lists_warnings(tmp_path, run_cli):
    code, _, err = run_cli("convert", files("resnet")[0], tmp_path / "r.keras")
    assert code == 0
    lines = err.splitlines()
    assert lines[0].startswith("warning: no caffemodel given")
    rows = summary_rows(err)
    assert rows["fused"] == "15 BatchNorm+Scale pair(s) into BatchNormalization"
    assert rows["warnings"] == "1 (above)"


# --- SavedModel folders --------------------------------------------------------------------------

@pytest.fixture
def tensorflow():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a SavedModel needs the TensorFlow backend")
    return tf


def test_a_folder_path_gets_a_saved_model(tmp_path, run_cli, tensorflow):
    target = tmp_path / "served"
    code, _, err = run_cli("convert", *files("caffenet"), f"{target}/")
    assert code == 0, err
    assert summary_rows(err)["output"] == f"{target}/ (TensorFlow SavedModel folder)"
    assert os.listdir(tmp_path) == ["served"] and (target / "saved_model.pb").is_file()
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)
    x, want = golden("caffenet", "prob")
    served = tensorflow.saved_model.load(str(target))
    got = served.serve(x).numpy()
    assert np.max(np.abs(got - want)) <= 1e-4


def test_an_existing_saved_model_is_replaced_anything_else_kept(tmp_path, run_cli, tensorflow):
    target = tmp_path / "served"
    assert run_cli("convert", *files("caffenet"), f"{target}/", "--outputs", "relu7")[0] == 0
    # An existing SavedModel folder is recognised without the trailing slash.
    assert format_name_of(str(target)) == "savedmodel"
    assert run_cli("convert", *files("caffenet"), str(target))[0] == 0
    assert os.listdir(tmp_path) == ["served"]
    served = tensorflow.saved_model.load(str(target))
    assert served.serve(np.zeros((1, 103, 87, 3), np.float32)).shape == (1, 10)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    code, _, err = run_cli("convert", *files("caffenet"), f"{other}/")
    assert code == OutputError.exit_code and "not a SavedModel folder" in err
    assert os.listdir(other) == ["cat.jpg"]


def test_a_failing_export_leaves_the_old_saved_model(tmp_path, run_cli, tensorflow, monkeypatch):
    target = tmp_path / "served"
    assert run_cli("convert", *files("caffenet"), f"{target}/")[0] == 0
    before = sorted(p.name for p in target.iterdir())

    def half_export(self, path, *args, **kwargs):
        Path(path, "saved_model.pb").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "export", half_export)
    code, _, err = run_cli("convert", *files("caffenet"), f"{target}/")
    assert code == OutputError.exit_code and "No space left on device" in err
    assert os.listdir(tmp_path) == ["served"]
    assert sorted(p.name for p in target.iterdir()) == before
    assert (target / "saved_model.pb").read_bytes() != b"half"


def test_bad_output_paths(tmp_path, run_cli):
    for output, message in ((tmp_path / "model", "folder path ending in '/'"),
                            (tmp_path / "missing" / "m.keras", "does not exist"),
                            (f"{tmp_path / 'missing' / 'm'}/", "does not exist")):
        code, _, err = run_cli("convert", *files("caffenet"), output)
        assert code == OutputError.exit_code and message in err, err
    assert os.listdir(tmp_path) == []


# --- the progress line ---------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_on_a_terminal_and_erases_itself():
    stream = Terminal()
    done = [0]
    with Progress(stream, delay=0.0, interval=0.01) as progress:
        with progress.stage("build", done=lambda: done[0], total=4):
            done[0] = 2
            time.sleep(0.1)
    text = stream.getvalue()
    assert "\rcaffe2keras: build [" in text or "\r\x1b[Kcaffe2keras: build [" in text
    assert "#" * 12 + "." * 12 + "] 2/4" in text
    assert text.endswith("\r\x1b[K")
    assert set(progress.timings) == {"build"} and progress.timings["build"] >= 0.1


def test_progress_waits_before_drawing_and_stays_silent_off_a_terminal():
    quick = Terminal()
    with Progress(quick, delay=5.0, interval=0.01) as progress:
        with progress.stage("read"):
            time.sleep(0.05)
    assert quick.getvalue() == ""
    piped = io.StringIO()
    progress = Progress(piped, delay=0.0, interval=0.01)
    assert not progress.enabled
    with progress, progress.stage("read"):
        time.sleep(0.05)
    assert piped.getvalue() == "" and progress.timings["read"] >= 0.05


def test_the_cli_draws_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    from caffe2keras import cli, progress as progress_module

    terminal = Terminal()
    original = progress_module.Progress.__init__

    def eager(self, stream=None, enabled=None, delay=0.5, interval=0.1):
        original(self, terminal, None, 0.0, 0.01)

    monkeypatch.setattr(progress_module.Progress, "__init__", eager)
    monkeypatch.setattr(caffe2keras.api, "build_model",
                        lambda net, _build=caffe2keras.api.build_model: (time.sleep(0.1),
                                                                         _build(net))[1])
    assert cli.main(["convert", *files("caffenet"), str(tmp_path / "m.keras")]) == 0
    assert "caffe2keras: build [" in terminal.getvalue()
    assert "/8" in terminal.getvalue()  # 8 CaffeNet layers have weights
    assert terminal.getvalue().endswith("\r\x1b[K")
