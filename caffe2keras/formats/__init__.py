"""Output formats: one small module per format behind the interface in ``base.py``.

``for_output(path, name)`` picks the format of an output path (by extension, or by the
``--format`` name); ``write.write_artifact`` writes one atomically and checks it in its
runtime. Importing this package loads no runtime: each format imports its own on use.
"""

from __future__ import annotations

import os

from ..errors import OutputError
from .base import Format, Runner, input_names, output_names

# name -> "module:Class", imported on first use so that no runtime loads before it is needed
_FORMATS = {
    "keras": "keras_file:KerasFormat",
    "h5": "keras_file:H5Format",
    "savedmodel": "saved_model:SavedModelFormat",
    "onnx": "onnx_file:OnnxFormat",
    "tflite": "litert:LiteRTFormat",
    "openvino": "openvino_ir:OpenVINOFormat",
    "torch": "torch_program:TorchFormat",
}
# extension -> format name (SavedModel: a folder path ending in '/')
_EXTENSIONS = {".keras": "keras", ".h5": "h5", ".onnx": "onnx", ".tflite": "tflite",
               ".xml": "openvino", ".pt2": "torch"}
SAVED_MODEL_HINT = "a folder path ending in '/' for a TensorFlow SavedModel"
_loaded: dict[str, Format] = {}


def format_names() -> list[str]:
    return list(_FORMATS)


def get_format(name: str) -> Format:
    """The format called ``name`` (a ``--format`` choice)."""
    if name not in _FORMATS:
        raise OutputError(f"unknown output format {name!r}; use one of {', '.join(_FORMATS)}")
    if name not in _loaded:
        import importlib
        module, cls = _FORMATS[name].split(":")
        _loaded[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return _loaded[name]


def format_name_of(path: str) -> str | None:
    """The format an output path asks for by its form, or None."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        return "savedmodel"
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower())


def for_output(path: str, name: str | None = None) -> Format:
    """The format to write ``path`` in: ``name`` when given (the path's extension must then
    be the format's, so that the file says what it is), else the path's extension."""
    by_path = format_name_of(path)
    if name is None:
        if by_path is None:
            extension = os.path.splitext(path)[1].lower()
            raise OutputError(
                f"{path}: unknown output format {extension or '(no extension)'!r}; use a "
                f"{', '.join(_EXTENSIONS)} file, or {SAVED_MODEL_HINT}")
        return get_format(by_path)
    chosen = get_format(name)
    if by_path != name:
        wanted = ("a folder path ending in '/'" if name == "savedmodel"
                  else " or ".join(chosen.extensions))
        raise OutputError(f"{path}: --format {name} writes {wanted}")
    return chosen


__all__ = ["Format", "Runner", "input_names", "output_names", "format_names", "get_format",
           "format_name_of", "for_output"]
