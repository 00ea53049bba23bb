"""Writing converted models: all or nothing, and without a second copy of the weights.

The model is written to a temporary file in the target folder and renamed over the
target only once it is complete, so a failed or interrupted run leaves no half file
and an existing file stays as it was.

Memory: ``.h5`` is Keras' legacy writer, which copies one layer's weights at a time.
For ``.keras``, Keras builds the weights file in memory (a second copy of every weight)
whenever it thinks memory is plentiful; we let Keras write the model unzipped to a
temporary folder on disk instead and zip that folder into the ``.keras`` file, which
is what Keras itself does when memory is short.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager

from .errors import OutputError

FORMATS = {".h5": "Keras HDF5 (legacy)", ".keras": "Keras v3"}


def output_format(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise OutputError(f"{path}: unknown output format {extension or '(no extension)'!r}; "
                          f"use one of {', '.join(FORMATS)}")
    return extension


@contextmanager
def atomic_output(path: str, suffix: str, what: str):
    """Yield a temporary path beside ``path`` (not yet created); rename it over ``path``
    once the body finishes, remove it if anything fails."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{path}: folder {folder} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix,
                                         dir=folder)
    try:
        os.close(handle)
        os.remove(temporary)  # writers such as Keras' refuse to overwrite: let them create it
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot write {what}: {error.strerror or error}") from None
    except (RuntimeError, ValueError) as error:  # h5py and Keras report write failures so too
        raise OutputError(f"{path}: cannot write {what}: {error}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_model(model, path: str) -> None:
    """Save ``model`` to ``path`` (.h5 or .keras) atomically."""
    extension = output_format(path)
    with atomic_output(path, extension, "the model") as temporary:
        if extension == ".keras" and _can_save_unzipped():
            _save_keras_via_folder(model, temporary, os.path.dirname(os.path.abspath(path)))
        else:
            model.save(temporary)


def _can_save_unzipped() -> bool:
    from .lazy import keras
    return "zipped" in inspect.signature(keras.Model.save).parameters  # Keras >= 3.5


def _save_keras_via_folder(model, path: str, folder: str) -> None:
    """A ``.keras`` file (a zip of config.json, metadata.json, model.weights.h5 and any
    assets, stored uncompressed as Keras writes it), streamed from Keras' unzipped save."""
    unzipped = path + ".d"  # in the target folder; Keras creates it
    try:
        model.save(unzipped, zipped=False)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for root, _, files in sorted(os.walk(unzipped)):
                for name in sorted(files):
                    full = os.path.join(root, name)
                    archive.write(full, os.path.relpath(full, unzipped))
    finally:
        if os.path.isdir(unzipped):
            shutil.rmtree(unzipped, ignore_errors=True)
        elif os.path.exists(unzipped):
            os.remove(unzipped)
