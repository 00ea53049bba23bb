"""Writing an artifact in one of the runtime formats: atomically, then checked in its runtime.

The artifact is written under a temporary name beside the target (its companion files too,
e.g. OpenVINO's ``.bin``), loaded in its own runtime and compared with the Keras model on a
probe input (``check.py``); only then is it renamed into place. Any failure removes every
temporary file and leaves an existing artifact as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import nullcontext

import numpy as np

from ..errors import OutputError, UnsupportedInFormatError
from . import get_format
from .base import Format, companion
from .check import DEFAULT_TOLERANCE, OutputCheck, check_artifact


def refuse_unsupported(fmt: Format, model) -> None:
    refused = fmt.unsupported(model)
    if refused:
        raise UnsupportedInFormatError(fmt.description, refused)


def write_artifact(model, path: str, fmt: Format, check: bool = True,
                   tolerance: float = DEFAULT_TOLERANCE, stage=None) -> list[OutputCheck] | None:
    """Write ``model`` to ``path`` in ``fmt``; with ``check``, run it in its runtime and
    compare with Keras first. Returns the checks (None without ``check``). ``stage(label)``
    is a context manager timing the "write" and "check" stages."""
    stage = stage or (lambda label: nullcontext())
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{path}: folder {folder} does not exist")
    refuse_unsupported(fmt, model)
    extension = os.path.splitext(path)[1]
    scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        temporary = os.path.join(scratch, "model" + extension)
        with stage("write"):
            fmt.write(model, temporary)
        checks = None
        if check:
            with stage("check"):
                checks = check_artifact(fmt, model, temporary, tolerance)
        targets = fmt.files(path)
        written = fmt.files(temporary)
        # companions first, the main file last: the main file appears only when all is there
        for source, target in list(zip(written, targets))[::-1]:
            os.replace(source, target)
        return checks
    except OSError as error:
        raise OutputError(f"{path}: cannot write the {fmt.description} file: "
                          f"{error.strerror or error}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_exported(model, format_name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Export ``model`` to a temporary artifact in ``format_name``, run it in its runtime on
    ``feeds`` and return its outputs by canonical name (for ``verify --runtime``)."""
    fmt = get_format(format_name)
    refuse_unsupported(fmt, model)
    with tempfile.TemporaryDirectory(prefix="caffe2keras-") as scratch:
        path = os.path.join(scratch, "model" + fmt.extensions[0])
        fmt.write(model, path)
        return fmt.load(path).run(feeds)


__all__ = ["write_artifact", "run_exported", "refuse_unsupported", "companion"]
