"""All or nothing: a failed or interrupted conversion leaves no output (not even a half or
temporary one) and keeps an existing file as it was; Ctrl-C ends the command cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import netbuild as nb
from caffe2keras import errors
from caffe2keras.export import export_saved_model
from caffe2keras.save import save_model

OLD = b"the model converted yesterday"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from caffe2keras.api import convert
    with pytest.warns(UserWarning):
        return convert(nb.write(tmp_path_factory.mktemp("net"), "deploy.prototxt", nb.v2_net()))


def _partial_save(failure):
    """A Model.save that writes half a file (or folder) at the path it is given, then fails."""
    def save(self, path, *args, **kwargs):
        path = str(path)
        if kwargs.get("zipped") is False or os.path.isdir(path):  # a folder: .keras unzipped, export
            os.makedirs(path, exist_ok=True)
            Path(path, "model.weights.h5").write_bytes(b"half")
        else:
            Path(path).write_bytes(b"half a model")
        raise failure
    return save


def _folder_is_clean(folder: Path, *expected: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


@pytest.mark.parametrize("extension", [".h5", ".keras"])
@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError(28, "No space left on device"),
                                     MemoryError()], ids=["ctrl_c", "disk_full", "memory"])
def test_a_save_that_fails_midway_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch,
                                                                        model, extension, failure):
    import keras
    monkeypatch.setattr(keras.Model, "save", _partial_save(failure))
    target = tmp_path / f"model{extension}"
    target.write_bytes(OLD)
    expected = errors.OutputError if isinstance(failure, OSError) else type(failure)
    with pytest.raises(expected) as info:
        save_model(model, str(target))
    if expected is errors.OutputError:
        assert str(target) in str(info.value) and "No space left" in str(info.value)
    assert target.read_bytes() == OLD
    _folder_is_clean(tmp_path, target.name)


@pytest.mark.parametrize("extension", [".h5", ".keras"])
def test_a_new_file_appears_only_when_complete(tmp_path, monkeypatch, model, extension):
    """The writers (Keras' save, and the zip of a .keras) are watched: while any of them
    writes, and when each returns, the target does not exist yet. A writer working at the
    target itself would be seen there."""
    import zipfile

    import keras
    target = tmp_path / f"model{extension}"
    seen = []

    def watched(writer, name):
        def write(*args, **kwargs):
            seen.append((name, "before", target.exists()))
            result = writer(*args, **kwargs)
            seen.append((name, "after", target.exists()))
            return result
        return write

    monkeypatch.setattr(keras.Model, "save", watched(keras.Model.save, "Model.save"))
    monkeypatch.setattr(zipfile.ZipFile, "write", watched(zipfile.ZipFile.write, "ZipFile.write"))
    save_model(model, str(target))
    assert ("Model.save", "after", False) in seen  # the watch did see the writing
    assert [event for event in seen if event[2]] == []
    _folder_is_clean(tmp_path, target.name)
    assert len(keras.models.load_model(target, safe_mode=True).layers) == len(model.layers)


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError(28, "No space left on device")],
                         ids=["ctrl_c", "disk_full"])
def test_a_saved_model_export_that_fails_midway_leaves_the_old_one(tmp_path, monkeypatch, model,
                                                                    failure):
    import keras
    old = tmp_path / "served"
    old.mkdir()
    (old / "saved_model.pb").write_bytes(OLD)
    monkeypatch.setattr(keras.Model, "export", _partial_save(failure))
    with pytest.raises(errors.OutputError if isinstance(failure, OSError) else KeyboardInterrupt):
        export_saved_model(model, str(old) + "/")
    assert (old / "saved_model.pb").read_bytes() == OLD and len(list(old.iterdir())) == 1
    _folder_is_clean(tmp_path, "served")


@pytest.mark.parametrize("target, words", [
    ("missing/model.keras", "does not exist"),
    ("deploy.prototxt/model.keras", "does not exist"),
])
def test_an_unwritable_target_is_one_clean_error(tmp_path, run_cli, target, words):
    prototxt = nb.write(tmp_path, "deploy.prototxt", nb.v2_net())
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli("convert", prototxt, tmp_path / target)
    assert code == errors.OutputError.exit_code, err
    assert err.splitlines()[-1].startswith("caffe2keras: error: ") and words in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_ctrl_c_in_the_command_is_one_line_exit_130_and_no_file(tmp_path, monkeypatch, run_cli):
    import keras
    monkeypatch.setattr(keras.Model, "save", _partial_save(KeyboardInterrupt()))
    prototxt = nb.write(tmp_path, "deploy.prototxt", nb.v2_net())
    target = tmp_path / "model.h5"
    target.write_bytes(OLD)
    code, out, err = run_cli("convert", prototxt, target)
    assert code == 130 and out == ""
    assert err.splitlines()[-1] == "caffe2keras: interrupted" and "Traceback" not in err
    assert target.read_bytes() == OLD
    _folder_is_clean(tmp_path, "deploy.prototxt", "model.h5")


# A real SIGINT, made deterministic: the child's Model.save writes half the output, then a
# "ready" file beside the output folder, and waits; the test sends SIGINT once it sees it.
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import keras

    def slow_save(self, path, *args, **kwargs):
        path = str(path)
        if kwargs.get("zipped") is False:
            os.makedirs(path)
            Path(path, "model.weights.h5").write_bytes(b"half")
        else:
            Path(path).write_bytes(b"half a model")
        Path(os.environ["C2K_READY"]).write_text("writing")
        time.sleep(120)

    keras.Model.save = slow_save
    from caffe2keras.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("extension", [".h5", ".keras"])
def test_a_real_sigint_during_the_write_leaves_no_file(tmp_path, extension):
    prototxt = nb.write(tmp_path, "deploy.prototxt", nb.v2_net())
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"model{extension}"
    target.write_bytes(OLD)
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, "convert", prototxt, str(target)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "C2K_READY": str(ready)})
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.02)
        assert [p for p in out.iterdir() if p.name.startswith(".")]  # the half file is there
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 130, err
    assert err.splitlines()[-1] == "caffe2keras: interrupted" and "Traceback" not in err
    assert target.read_bytes() == OLD
    _folder_is_clean(out, target.name)
