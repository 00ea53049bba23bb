"""Keep the libraries' start-up noise off the command's stderr.

TensorFlow, XLA and absl log from C++ straight to the process's stderr (oneDNN notices,
"could not find cuda drivers", cuInit failures, CPU feature hints); Keras, TensorFlow, torch,
ONNX and OpenVINO issue Python warnings and log through Python's ``logging`` (Keras' "HDF5
file format is considered legacy" among them, although the user named a .h5 output). None of
it is about the model, so ``caffe2keras`` (without ``--debug``) silences it:

- the C++ loggers through their environment variables, set before TensorFlow loads and only
  where the user has not set them (a user's ``TF_CPP_MIN_LOG_LEVEL=0`` is kept);
- what TensorFlow's shared libraries log while they load, before any setting is read (the
  absl "log messages before absl::InitializeLog()" banner, oneDNN, "Could not find cuda
  drivers"): the import of ``tensorflow`` runs with the process's stderr (file descriptor 2)
  pointed at /dev/null; Python errors in that import are raised as usual, and nothing else
  is redirected;
- Python warnings, unless the user asked for some (``-W`` or ``PYTHONWARNINGS``);
- the libraries' Python loggers below ERROR.

The command's own lines (progress, warnings about the model, the summary, errors) are printed
by caffe2keras itself and are not affected. The API (``import caffe2keras``) changes none of
this: only :func:`silenced` does, and only the command uses it.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
import warnings
from contextlib import contextmanager

# C++ logging of TensorFlow/XLA (3: errors too, e.g. "failed call to cuInit"), and the gRPC
# core TensorFlow links. Set only where unset.
ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
}

# Python loggers of the libraries a conversion loads.
LOGGERS = ("absl", "tensorflow", "keras", "h5py", "torch", "onnx", "onnxruntime", "openvino",
           "jax", "ai_edge_litert")


# Packages whose import writes to file descriptor 2 before any log level applies.
NOISY_IMPORTS = frozenset({"tensorflow"})


@contextmanager
def native_stderr_to_devnull():
    """Point file descriptor 2 at /dev/null while the body runs (sys.stderr flushed first)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's exec_module with native stderr silenced."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with native_stderr_to_devnull():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # resources, is_package, get_code, ... of the real loader
        return getattr(self._loader, name)


class _QuietImports(importlib.abc.MetaPathFinder):
    """Finds NOISY_IMPORTS with the other finders and wraps their loader in _QuietLoader."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in NOISY_IMPORTS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


@contextmanager
def silenced(environ=None):
    """Silence the libraries while the body runs (enter before TensorFlow loads).

    The environment variables stay set (TensorFlow reads them once, when it loads); the
    warning filters and logger levels are put back on exit."""
    environ = os.environ if environ is None else environ
    for name, value in ENVIRONMENT.items():
        environ.setdefault(name, value)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    with warnings.catch_warnings():
        if not sys.warnoptions:  # neither -W nor PYTHONWARNINGS
            warnings.simplefilter("ignore")
        for name in LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        finder = _QuietImports()
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
