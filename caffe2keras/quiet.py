"""Keep the libraries' start-up noise off the command's stderr.

TensorFlow, XLA and absl log from C++ straight to the process's stderr (oneDNN notices,
"could not find cuda drivers", cuInit failures, CPU feature hints, XLA compilation), some of
it while their shared libraries load, before any setting is read; Keras, TensorFlow, torch,
ONNX and OpenVINO issue Python warnings and log through Python's ``logging`` (Keras' "HDF5
file format is considered legacy" among them, although the user named a .h5 output). None of
it is about the model, so ``caffe2keras`` (without ``--debug``) silences it:

- ``TF_CPP_MIN_LOG_LEVEL=3`` (and gRPC's verbosity), set before TensorFlow loads, only where
  the user has not set them;
- what the libraries write to the process's stderr (file descriptor 2) goes to a temporary
  file while the command runs, and the command's own lines (``sys.stderr``) straight to the
  real stderr. At the end, the captured text is shown but for the C++ log records (absl/glog
  format: ``I1130 04:27:56.123 839 port.cc:153] ...``) below TF_CPP_MIN_LOG_LEVEL (the user's,
  else 3; ERROR records are shown when the command failed), their continuation lines and
  absl's "before absl::InitializeLog()" banner. Anything else a library wrote is kept;
- Python warnings, unless the user asked for some (``-W`` or ``PYTHONWARNINGS``);
- the libraries' Python loggers below ERROR.

The API (``import caffe2keras``) changes none of this: only :func:`silenced` does, and only the
command uses it. A library that kills the process (a C++ fatal error) takes the captured text
with it: ``--debug`` shows everything as it is written.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Set only where unset: TensorFlow/XLA's C++ logging (3: ERROR records too, e.g. "failed call
# to cuInit"), and the gRPC core TensorFlow links.
ENVIRONMENT = {
    LEVEL_VARIABLE: "3",
    "GRPC_VERBOSITY": "ERROR",
}
# A C++ log record: severity, MMDD, time, thread id, file:line].
# (TensorFlow's records give the seconds since the epoch: I0000 00:00:1796012911.129687.)
NATIVE_RECORD = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 0..3 shows these from that index on
ABSL_BANNER = ("WARNING: All log messages before absl::InitializeLog() is called are written "
               "to STDERR")

# Python loggers of the libraries a conversion loads.
LOGGERS = ("absl", "tensorflow", "keras", "h5py", "torch", "onnx", "onnxruntime", "openvino",
           "jax", "ai_edge_litert")


def native_lines_to_show(text: str, level: int, failed: bool) -> list[str]:
    """The lines of ``text`` (what the libraries wrote to stderr) that are shown: all but the
    C++ log records below ``level`` (TF_CPP_MIN_LOG_LEVEL; ERROR ones also shown when the
    command ``failed``), their continuation lines, and absl's banner when ``level`` > 0."""
    shown, dropping = [], False
    for line in text.splitlines():
        record = NATIVE_RECORD.match(line)
        if record:
            rank = SEVERITIES.index(record.group(1))
            dropping = rank < min(level, 3) and not (rank == 2 and failed)
        elif line == ABSL_BANNER and level > 0:
            continue
        if not dropping:
            shown.append(line)
    return shown


def _user_level(environ) -> int:
    try:
        return int(environ.get(LEVEL_VARIABLE, "3"))
    except ValueError:
        return 0


@contextmanager
def native_stderr_filtered(environ=None):
    """Capture file descriptor 2 while the body runs; our ``sys.stderr`` writes to the real
    stderr meanwhile; afterwards show what :func:`native_lines_to_show` keeps. Does nothing
    when ``sys.stderr`` is not file descriptor 2 (already redirected, e.g. under pytest)."""
    environ = os.environ if environ is None else environ
    try:
        ours = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        ours = False
    if not ours:
        yield
        return
    original = sys.stderr
    original.flush()
    real = os.dup(2)
    stream = open(real, "w", encoding=original.encoding or "utf-8", errors="backslashreplace",
                  buffering=1, closefd=False)
    capture = tempfile.TemporaryFile()
    failed = True
    os.dup2(capture.fileno(), 2)
    sys.stderr = stream
    try:
        yield
        failed = False
    finally:
        stream.flush()
        sys.stderr = original
        stream.close()
        os.dup2(real, 2)
        os.close(real)
        capture.seek(0)
        text = capture.read().decode("utf-8", errors="replace")
        capture.close()
        for line in native_lines_to_show(text, _user_level(environ), failed):
            print(line, file=original)
        original.flush()


@contextmanager
def silenced(environ=None):
    """Silence the libraries while the body runs (enter before TensorFlow loads).

    The environment variables stay set (TensorFlow reads them once, when it loads); stderr,
    the warning filters and logger levels are put back on exit."""
    environ = os.environ if environ is None else environ
    for name, value in ENVIRONMENT.items():
        environ.setdefault(name, value)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    with warnings.catch_warnings():
        if not sys.warnoptions:  # neither -W nor PYTHONWARNINGS
            warnings.simplefilter("ignore")
        for name in LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            with native_stderr_filtered(environ):
                yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
