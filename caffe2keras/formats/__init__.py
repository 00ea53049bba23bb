"""Output formats: one small module per format behind the interface in ``base.py``.

``for_output(path, name)`` picks the format of an output path (by extension, or by the
``--format`` name); ``write.write_artifact`` writes one atomically and checks it in its
runtime. Importing this package loads no runtime: each format imports its own on use.
"""

from __future__ import annotations

import os

from ..errors import OutputError
from .base import Format, Runner, input_names, output_names

# extension -> format name (SavedModel: a folder path ending in '/')
_EXTENSIONS = {".keras": "keras", ".h5": "h5", ".onnx": "onnx", ".tflite": "tflite",
               ".xml": "openvino", ".pt2": "torch"}
SAVED_MODEL_HINT = "a folder path ending in '/' for a TensorFlow SavedModel"
_loaded: dict[str, Format] = {}


def format_names() -> list[str]:
    return list(_formats())


def _formats() -> dict[str, Format]:
    """Every format by name. The modules are light (each imports its runtime on use)."""
    if not _loaded:
        from .keras_file import H5Format, KerasFormat
        from .litert import LiteRTFormat
        from .onnx_file import OnnxFormat
        from .openvino_ir import OpenVINOFormat
        from .saved_model import SavedModelFormat
        from .torch_program import TorchFormat
        for fmt in (KerasFormat(), H5Format(), SavedModelFormat(), OnnxFormat(), LiteRTFormat(),
                    OpenVINOFormat(), TorchFormat()):
            _loaded[fmt.name] = fmt
    return _loaded


def get_format(name: str) -> Format:
    """The format called ``name`` (a ``--format`` choice)."""
    formats = _formats()
    if name not in formats:
        raise OutputError(f"unknown output format {name!r}; use one of {', '.join(formats)}")
    return formats[name]


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
    if by_path != chosen.name:
        wanted = ("a folder path ending in '/'" if name == "savedmodel"
                  else " or ".join(chosen.extensions))
        raise OutputError(f"{path}: --format {name} writes {wanted}")
    return chosen


BATCH_START = "<!-- formats-batch:start (generated from the formats' batch notes) -->"
BATCH_END = "<!-- formats-batch:end -->"


def formats_markdown() -> str:
    """The README's table of formats: extension, runtime, what the batch dimension is."""
    rows = ["| format | file | runtime | batch dimension |", "| --- | --- | --- | --- |"]
    for fmt in _formats().values():
        files = "folder path ending in `/`" if fmt.name == "savedmodel" else \
            " + ".join(f"`{os.path.splitext(f)[1]}`" for f in fmt.files("model" + fmt.extensions[0]))
        rows.append(f"| {fmt.description} (`--format {fmt.name}`) | {files} | {fmt.runtime} | "
                    f"{fmt.batch} |")
    return "\n".join(rows)


__all__ = ["Format", "Runner", "input_names", "output_names", "format_names", "get_format",
           "format_name_of", "for_output", "formats_markdown"]
