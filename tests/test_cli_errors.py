"""The command's help, exit codes and error lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import caffe2keras
from caffe2keras.cli import EXIT_CODES_END, EXIT_CODES_START, exit_codes, exit_codes_markdown
from caffe2keras.errors import ParseError, StructureError, VerificationError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
COMMANDS = ["convert", "inspect", "verify", "layers", "mean"]


def files(name: str) -> tuple[str, str]:
    return str(FIXTURES / name / "deploy.prototxt"), str(FIXTURES / name / "weights.caffemodel")


def test_help_lists_every_command_and_exit_code(run_cli):
    code, out, err = run_cli("--help")
    assert (code, err) == (0, "")
    for command in COMMANDS:
        assert f"\n    {command} " in out
    words = " ".join(out.split())
    for number, meaning in exit_codes():
        assert f"{number} {meaning}" in words


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_examples(run_cli, command):
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    examples = out[out.index("examples:"):]
    assert f"caffe2keras {command} " in examples and "--debug" in out


def test_convert_help_shows_every_option(run_cli):
    _, out, _ = run_cli("convert", "--help")
    for option in ("--input-shape", "--outputs", "--fold-batchnorm", "--no-fuse-batchnorm",
                   "--preprocess", "--mean", "--scale", "--raw-scale", "--channel-swap"):
        assert option in out


def test_exit_codes_are_distinct_and_in_the_readme():
    numbers = [number for number, _ in exit_codes()]
    assert len(numbers) == len(set(numbers))
    assert {2, 3, 4, 5, 6, 7, 8} <= set(numbers)
    text = (ROOT / "README.md").read_text()
    table = text[text.index(EXIT_CODES_START) + len(EXIT_CODES_START):text.index(EXIT_CODES_END)]
    assert table.strip() == exit_codes_markdown(), "the README's exit-code table is stale"


@pytest.mark.parametrize("argv, message", [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["convert", "a.prototxt"], "the following arguments are required: [CAFFEMODEL] OUTPUT"),
    (["convert", "a.prototxt", "b", "c", "d"], "expected PROTOTXT [CAFFEMODEL] OUTPUT, got 4"),
    (["convert", "a", "b.keras", "--input-shape", "data=1,x"], "expected NAME=N,C,H,W"),
    (["convert", "a", "b.keras", "--outputs", "fc7,,fc8"], "expected LAYER[,LAYER...]"),
    (["verify", "a", "b"], "the following arguments are required: --activations"),
    (["inspect", "a", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_usage_errors_are_one_line_with_exit_code_2(run_cli, argv, message):
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "--help" in err, err


def test_conversion_errors_are_one_line_with_their_class_exit_code(tmp_path, run_cli):
    code, _, err = run_cli("convert", tmp_path / "missing.prototxt", tmp_path / "m.keras")
    assert code == ParseError.exit_code
    assert err == f"caffe2keras: error: {tmp_path / 'missing.prototxt'}: cannot read: " \
                  "No such file or directory\n"
    code, _, err = run_cli("inspect", files("caffenet")[0], "--input-shape", "image=1,3,8,8")
    assert code == StructureError.exit_code and err.count("\n") == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, run_cli, where):
    """The installed command with --debug (before or after the command) prints Python's
    traceback down to the frame that raised, ending with the error; without it, one line."""
    argv = ["convert", "missing.prototxt", "m.keras"]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    command = Path(sys.executable).parent / "caffe2keras"
    program = [str(command)] if command.is_file() else [sys.executable, "-m", "caffe2keras.cli"]
    done = subprocess.run([*program, *argv], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and done.stdout == "", done.stderr  # Python's uncaught exception
    assert "Traceback (most recent call last):" in lines, done.stderr  # libraries may log first
    lines = lines[lines.index("Traceback (most recent call last):"):]
    assert any("caffe2keras/cli.py" in line and "in main" in line for line in lines)
    assert any("caffe2keras/reader/prototxt.py" in line and "in read_text_file" in line
               for line in lines), done.stderr
    assert lines[-1] == ("caffe2keras.errors.ParseError: missing.prototxt: cannot read: No such "
                         "file or directory")
    assert "caffe2keras: error:" not in done.stderr
    with pytest.raises(ParseError, match="cannot read"):  # main() itself re-raises
        run_cli(*argv)


def test_a_bug_is_one_line_and_exit_code_70(tmp_path, run_cli, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(caffe2keras.api, "convert_file", broken)
    code, _, err = run_cli("convert", *files("caffenet"), tmp_path / "m.keras")
    assert code == 70
    assert err == ("caffe2keras: internal error: RuntimeError: something inside broke (run again "
                   "with --debug for the traceback, and please report it)\n")
    with pytest.raises(RuntimeError, match="inside broke"):
        run_cli("convert", *files("caffenet"), tmp_path / "m.keras", "--debug")


def test_the_installed_command_exits_with_the_code_and_no_traceback(tmp_path):
    command = Path(sys.executable).parent / "caffe2keras"
    argv = [str(command)] if command.is_file() else [sys.executable, "-m", "caffe2keras.cli"]
    done = subprocess.run([*argv, "convert", "missing.prototxt", "m.keras"], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == ParseError.exit_code
    assert done.stderr == "caffe2keras: error: missing.prototxt: cannot read: No such file or " \
                          "directory\n"
    assert os.listdir(tmp_path) == []
    done = subprocess.run([*argv, "convert"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_verify_with_another_nets_activations_is_one_clear_error(run_cli):
    prototxt, caffemodel = files("caffenet")
    other = FIXTURES / "lrn" / "golden.npz"
    code, _, err = run_cli("verify", prototxt, caffemodel, "--activations", other)
    assert code == VerificationError.exit_code
    assert err.startswith("caffe2keras: error: none of the ") and err.count("\n") == 1
    assert "another net's?" in err
