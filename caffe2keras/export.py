"""A TensorFlow SavedModel folder, written by Keras' ``model.export``, for TensorFlow Serving.

A path ending in ``/`` (or naming an existing folder) asks for one (``formats.format_name_of``).
Like the files (see ``save.py``) it appears whole or not at all: it is exported into a
temporary folder beside the target, then renamed into place; an existing SavedModel there
is replaced only once the new one is complete (moved aside, then deleted).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from .errors import OutputError


def _is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def export_saved_model(model, path: str) -> None:
    """``model.export(path)``, atomically."""
    from .lazy import keras

    target = os.path.abspath(path.rstrip("/" + os.sep) or path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise OutputError(f"{path}: folder {folder} does not exist")
    if os.path.exists(target) and not (os.path.isdir(target) and (
            _is_saved_model(target) or not os.listdir(target))):
        raise OutputError(f"{path}: exists and is not a SavedModel folder; not replacing it")
    if keras.backend.backend() != "tensorflow":
        raise OutputError(f"{path}: a SavedModel needs the TensorFlow backend (KERAS_BACKEND="
                          f"tensorflow); this is {keras.backend.backend()}")
    base = os.path.basename(target)
    temporary = tempfile.mkdtemp(prefix=f".{base}.", dir=folder)
    old = None
    try:
        os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp makes it private; a model is not
        model.export(temporary, verbose=False)
        _write_names(model, temporary)
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{base}.old.", dir=folder)
            os.replace(target, os.path.join(old, base))
        os.replace(temporary, target)
    except OSError as error:
        raise OutputError(f"{path}: cannot write the SavedModel: {error.strerror or error}") \
            from None
    finally:
        if old is not None and not os.path.exists(target):
            os.replace(os.path.join(old, base), target)  # failed midway: the old one goes back
        for leftover in (temporary, old):
            if leftover is not None and os.path.exists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)


NAMES_FILE = "caffe2keras.json"  # beside saved_model.pb; TensorFlow Serving ignores it


def _write_names(model, folder: str) -> None:
    """The canonical input and output names (``formats.base``), in the order of the ``serve``
    function's arguments and results, for ``caffe2keras verify`` and the tests."""
    import json
    from .formats.base import input_names, output_names
    with open(os.path.join(folder, NAMES_FILE), "w") as names:
        json.dump({"inputs": input_names(model), "outputs": output_names(model)}, names)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_size(path: str) -> int:
    """Bytes of a written file, or of every file in a written folder."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name))
                   for root, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)
