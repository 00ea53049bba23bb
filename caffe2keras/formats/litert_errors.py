"""A failed LiteRT conversion as one caffe2keras error, naming the Keras layers at fault
(and the C++ side's own printing kept off the terminal).

TensorFlow's converter reports each op it could not lower with the op's location: the
name scope of the traced graph, e.g. ``functional_1/deconv_1/conv_transpose@__inference_...``,
where Keras scoped every layer's ops under the layer's name plus a ``_1`` it adds when
tracing. ``layer_of`` walks that path back to the model's layer names.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

from ..errors import OutputError, UnsupportedInFormatError

_QUOTED_NAME = re.compile(r'name: "([^"]*)"')
_KERAS_SUFFIX = re.compile(r"_\d+$")
_REASONS = {
    "ERROR_NEEDS_FLEX_OPS": "TensorFlow's {op} has no LiteRT builtin op (it would need the "
                            "Flex delegate, which LiteRT runtimes do not ship)",
    "ERROR_NEEDS_CUSTOM_OPS": "TensorFlow's {op} has no LiteRT builtin op (it would need a "
                              "custom op)",
}


def layer_of(model, scope: str):
    """The model's layer whose name scope ``scope`` (a ``/`` path) passes through, or None."""
    layers = {layer.name: layer for layer in model.layers}
    for part in scope.split("@", 1)[0].split("/"):
        for candidate in (_KERAS_SUFFIX.sub("", part), part):
            if candidate in layers:
                return layers[candidate]
    return None


def converter_failure(model, error: Exception) -> Exception:
    """UnsupportedInFormatError when the failing ops can be traced to layers, else
    OutputError with the converter's first error line."""
    refused = {}
    for item in getattr(error, "errors", None) or []:
        op = item.operator.name.removeprefix("tf.") or "an op"
        code = _error_code_name(item)
        reason = _REASONS.get(code, "the LiteRT converter cannot lower TensorFlow's {op}")
        for scope in _QUOTED_NAME.findall(str(item.location)):
            layer = layer_of(model, scope)
            if layer is not None:
                entry = refused.setdefault(layer.name, (type(layer).__name__, []))
                text = reason.format(op=op)
                if text not in entry[1]:
                    entry[1].append(text)
                break
    if refused:
        from .litert import LiteRTFormat
        return UnsupportedInFormatError(
            LiteRTFormat.description,
            [(name, kind, "; ".join(reasons)) for name, (kind, reasons) in refused.items()])
    first = next((line.strip() for line in str(error).splitlines() if line.strip()),
                 type(error).__name__)
    return OutputError(f"the TensorFlow Lite converter failed: {first[:500]}")


def _error_code_name(item) -> str:
    try:
        return type(item).ErrorCode.Name(item.error_code)
    except (AttributeError, ValueError):
        return ""


@contextlib.contextmanager
def quiet_stderr():
    """Hide what TensorFlow's and LiteRT's C++ sides print to file descriptor 2 (every
    failing op with its MLIR location, "Created TensorFlow Lite XNNPACK delegate"): what
    matters of it comes back in the exception."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
