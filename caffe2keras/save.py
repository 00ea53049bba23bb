"""Writing converted models: all or nothing.

The model is written to a temporary file in the target folder and renamed over the
target only once it is complete, so a failed or interrupted run leaves no half file
and an existing file stays as it was.
"""

from __future__ import annotations

import os
import tempfile

from .errors import OutputError

FORMATS = {".h5": "Keras HDF5 (legacy)", ".keras": "Keras v3"}


def output_format(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise OutputError(f"{path}: unknown output format {extension or '(no extension)'!r}; "
                          f"use one of {', '.join(FORMATS)}")
    return extension


def save_model(model, path: str) -> None:
    """Save ``model`` to ``path`` (.h5 or .keras) atomically."""
    extension = output_format(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{path}: folder {folder} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=extension,
                                         dir=folder)
    os.close(handle)
    try:
        os.remove(temporary)  # Keras refuses to overwrite some formats; let it create the file
        model.save(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot write the model: {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
