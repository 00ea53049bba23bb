"""The command's stderr holds only caffe2keras's own lines, in a clean environment.

Each command runs in a subprocess (TensorFlow must load inside it, after the command has set
its logging up) with none of the variables that quiet TensorFlow set by the caller. What
counts as ours, exactly:

- ``convert``: zero or more ``warning: <text>`` lines (warnings about the model), then
  ``caffe2keras: converted <PROTOTXT>``, then the summary: lines ``  <label>  <text>`` whose
  labels are the summary's, starting with ``output`` and ending with ``warnings <count>``,
  the count being the number of warning lines (no progress line: stderr is not a terminal);
- ``verify``, ``inspect``, ``layers``, ``mean``: nothing (their report is on stdout);
- a refused input: one line ``caffe2keras: error: <text>``.

Anything else (TensorFlow/absl/oneDNN/CUDA start-up lines, Keras' HDF5 notice, a Python
warning from any library) fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from test_formats_golden import require_runtime
from test_golden import FIXTURES

CAFFENET = FIXTURES / "caffenet"
PROTOTXT, WEIGHTS, GOLDEN = (str(CAFFENET / name) for name in
                             ("deploy.prototxt", "weights.caffemodel", "golden.npz"))
# The caller's settings that would hide the noise under test.
QUIETING = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "GRPC_VERBOSITY", "PYTHONWARNINGS")
SUMMARY_LABELS = ("output", "layers", "parameters", "inputs", "outputs", "note", "preprocess",
                  "folded", "fused", "check", "file size", "time", "warnings")
SUMMARY_LINE = re.compile(r"  (%s) +(\S.*)" % "|".join(map(re.escape, SUMMARY_LABELS)))
# The runtime formats, by the runtime whose Python package they need (the export group).
RUNTIME_OUTPUTS = {"onnx": "model.onnx", "tflite": "model.tflite", "openvino": "model.xml",
                   "torch": "model.pt2"}


def clean_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in QUIETING}


def run(*argv: str, cwd, module: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "caffe2keras"] if module else [_script()]
    return subprocess.run(command + list(argv), cwd=cwd, env=clean_environment(),
                          capture_output=True, text=True, timeout=900)


def _script() -> str:
    script = shutil.which("caffe2keras", path=os.path.dirname(sys.executable))
    assert script, f"no caffe2keras script beside {sys.executable}: pip install ."
    return script


def assert_convert_stderr(stderr: str, prototxt: str) -> list[str]:
    """The convert run's stderr is ours (see the module's docstring); returns the warnings."""
    lines = stderr.splitlines()
    warnings = lines[:next((i for i, line in enumerate(lines)
                            if not line.startswith("warning: ")), len(lines))]
    rest = lines[len(warnings):]
    assert rest and rest[0] == f"caffe2keras: converted {prototxt}", stderr
    matches = [SUMMARY_LINE.fullmatch(line) for line in rest[1:]]
    foreign = [line for line, match in zip(rest[1:], matches) if match is None]
    assert not foreign, f"not caffe2keras's lines: {foreign}\n--- stderr:\n{stderr}"
    labels = [match.group(1) for match in matches]
    assert labels[0] == "output" and labels[-1] == "warnings", stderr
    assert matches[-1].group(2).split()[0] == str(len(warnings)), stderr
    assert len(set(labels) - {"note"}) == len(labels) - labels.count("note"), stderr
    return warnings


def assert_silent(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"stderr should be empty:\n{result.stderr}"


@pytest.mark.parametrize("output", ["model.keras", "model.h5", "serving/"])
def test_convert_to_keras_formats_prints_only_ours(tmp_path, output):
    result = run("convert", PROTOTXT, WEIGHTS, output, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert assert_convert_stderr(result.stderr, PROTOTXT) == []
    assert (tmp_path / output).exists()


def test_convert_keeps_our_warnings_about_the_model(tmp_path):
    """Without weights the model warning stays, alone with the summary (.h5: Keras' legacy
    notice is not shown)."""
    result = run("convert", PROTOTXT, "model.h5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = assert_convert_stderr(result.stderr, PROTOTXT)
    assert warnings == ["warning: no caffemodel given: weights come from the prototxt's "
                        "fillers"]


@pytest.mark.export
@pytest.mark.parametrize("runtime", sorted(RUNTIME_OUTPUTS))
def test_convert_to_runtime_formats_prints_only_ours(tmp_path, runtime):
    require_runtime(runtime)
    output = RUNTIME_OUTPUTS[runtime]
    result = run("convert", PROTOTXT, WEIGHTS, output, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert assert_convert_stderr(result.stderr, PROTOTXT) == []
    assert any(line.startswith("  check ") and "match Keras" in line
               for line in result.stderr.splitlines()), result.stderr


def test_verify_prints_nothing_on_stderr(tmp_path):
    result = run("verify", PROTOTXT, WEIGHTS, "--activations", GOLDEN, cwd=tmp_path)
    assert_silent(result)
    assert "prob" in result.stdout


@pytest.mark.export
@pytest.mark.parametrize("runtime", sorted(RUNTIME_OUTPUTS))
def test_verify_runtime_prints_nothing_on_stderr(tmp_path, runtime):
    require_runtime(runtime)
    result = run("verify", PROTOTXT, WEIGHTS, "--activations", GOLDEN, "--runtime", runtime,
                 cwd=tmp_path)
    assert_silent(result)
    assert "prob" in result.stdout


@pytest.mark.parametrize("argv", [("inspect", PROTOTXT, WEIGHTS), ("layers",),
                                  ("layers", "--formats"), ("mean", GOLDEN + ".missing")])
def test_other_commands_print_only_ours(tmp_path, argv):
    result = run(*argv, cwd=tmp_path)
    if argv[0] == "mean":  # a refused input: one line, ours
        assert result.returncode != 0
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("caffe2keras: error: "), result.stderr
    else:
        assert_silent(result)
        assert result.stdout.strip()


@pytest.mark.export
def test_a_refusal_after_keras_loaded_is_one_line(tmp_path):
    """LiteRT refuses the dilated Deconvolution once the model is built (TensorFlow loaded)."""
    require_runtime("tflite")
    folder = FIXTURES / "deconv_variants"
    result = run("convert", str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"),
                 "model.tflite", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("caffe2keras: error: "), result.stderr
    assert "deconv_dilated" in lines[0]
    assert not (tmp_path / "model.tflite").exists()


def test_version_and_bare_command(tmp_path):
    from caffe2keras import __version__
    for module in (True, False):
        version = run("--version", cwd=tmp_path, module=module)
        assert version.returncode == 0 and version.stdout == f"caffe2keras {__version__}\n"
    bare = run(cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.startswith("usage: caffe2keras") and bare.stderr == ""
    assert "convert" in bare.stdout and "exit codes:" in bare.stdout


def test_silenced_keeps_the_users_settings():
    from caffe2keras.quiet import silenced
    import logging
    import warnings
    user = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    with silenced(user):
        assert logging.getLogger("absl").level == logging.ERROR
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("from a library", UserWarning)
        assert caught == [] if not sys.warnoptions else len(caught) == 1
    assert logging.getLogger("absl").level != logging.ERROR or logging.getLogger("absl").level
    assert user == {"TF_CPP_MIN_LOG_LEVEL": "0", "GRPC_VERBOSITY": "ERROR"}
    fresh: dict[str, str] = {}
    with silenced(fresh):
        pass
    assert fresh["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_the_version_is_the_packages():
    """pyproject.toml takes the version from caffe2keras.__version__."""
    from importlib.metadata import version
    from caffe2keras import __version__
    assert version("caffe2keras") == __version__


NATIVE = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
something a library printed
I0000 00:00:1796012911.129687     839 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796012912.262231     839 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
W0000 00:00:1796012913.000001     839 some.cc:1] a warning
E0000 00:00:1796012934.074033     839 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)
F0000 00:00:1796012935.000000     839 check.cc:9] Check failed: x"""


@pytest.mark.parametrize("level, failed, shown", [
    (3, False, [1, 7]),  # what is not a record, and FATAL records
    (3, True, [1, 6, 7]),  # ERROR records too when the command failed
    (2, False, [1, 6, 7]),
    (1, False, [1, 5, 6, 7]),
    (0, False, list(range(8))),  # the banner too
])
def test_native_records_below_the_level_are_dropped(level, failed, shown):
    """TF_CPP_MIN_LOG_LEVEL (the user's, else 3) applied to what the libraries wrote to fd 2;
    a continuation line (line 4) goes with its record."""
    from caffe2keras.quiet import native_lines_to_show
    lines = NATIVE.splitlines()
    assert native_lines_to_show(NATIVE, level, failed) == [lines[i] for i in shown]
