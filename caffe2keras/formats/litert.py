"""A LiteRT (TensorFlow Lite) flatbuffer, run by ai-edge-litert's Interpreter.

Writing (``litert_convert``): the Keras model (TensorFlow backend) is traced into one
``tf.function`` whose inputs and outputs are keyed by the model's canonical names and
converted by TensorFlow's converter with builtin ops only (no Flex ops: a user's runtime
does not have them), float32, no optimisation. Large kernels go around the converter
(``litert_weights``, ``litert_file``). An op the converter cannot lower becomes
UnsupportedInFormatError naming the Keras layer it came from (``litert_errors``).

Running: ``Interpreter(model_path=...)`` with its defaults (XNNPACK on) and the model's one
signature. LiteRT orders a model's outputs its own way, so outputs are read by signature
key, never by position: the keys are the canonical names, escaped into the characters
TensorFlow accepts (``signature_key``) and unescaped on the way back; the file records the
Keras model's input and output order.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile

import numpy as np

from ..errors import OutputError
from .base import Format, Runner, input_names, output_names
from .litert_errors import quiet_stderr

INSTALL_HINT = "pip install 'caffe2keras[export]'"
SIGNATURE = "serving_default"
# TensorFlow op names (hence signature input keys): [A-Za-z0-9.][A-Za-z0-9_.\-/]*
_PLAIN = re.compile(r"[A-Za-z0-9_\-]")
_ESCAPE = "."
_ESCAPED = re.compile(r"\.([0-9a-f]{2})")
TRANSPOSED_CONVOLUTIONS = ("Conv2DTranspose", "GroupedConv2DTranspose")
DILATED_TRANSPOSE_REASON = ("LiteRT's TRANSPOSE_CONV has no dilation (TensorFlow's dilated "
                            "Conv2DBackpropInput exists only as a Flex op)")


def signature_key(name: str) -> str:
    """``name`` with every character TensorFlow may refuse (and the escape ``.`` itself)
    written as ``.hh`` per UTF-8 byte; a leading ``_`` or ``-`` is escaped too."""
    out = []
    for position, char in enumerate(name):
        if _PLAIN.fullmatch(char) and not (position == 0 and char in "_-"):
            out.append(char)
        else:
            out.extend(f"{_ESCAPE}{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def name_of_key(key: str) -> str:
    """The inverse of ``signature_key``."""
    pieces, last = bytearray(), 0
    for match in _ESCAPED.finditer(key):
        pieces += key[last:match.start()].encode("utf-8") + bytes([int(match.group(1), 16)])
        last = match.end()
    pieces += key[last:].encode("utf-8")
    return pieces.decode("utf-8")


def require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise OutputError(f"the tflite format needs {what}, which is not installed: "
                          f"{INSTALL_HINT}")


class LiteRTRunner(Runner):
    def __init__(self, path: str):
        require("ai_edge_litert", "ai-edge-litert")
        from ai_edge_litert.interpreter import Interpreter
        from .litert_file import read_io_names

        try:
            with quiet_stderr():
                self.interpreter = Interpreter(model_path=path)
        except (ValueError, RuntimeError) as error:
            raise OutputError(f"{path}: cannot load the LiteRT model: {error}") from None
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE not in signatures:
            raise OutputError(f"{path}: no {SIGNATURE!r} signature (found "
                              f"{sorted(signatures)}); not written by caffe2keras")
        self.signature = self.interpreter.get_signature_runner(SIGNATURE)
        self.input_keys = {name_of_key(key): key for key in signatures[SIGNATURE]["inputs"]}
        outputs = [name_of_key(key) for key in signatures[SIGNATURE]["outputs"]]
        # the Keras model's order, when the file records it
        order = read_io_names(path) or {}
        self.inputs = order.get("inputs") or list(self.input_keys)
        self.outputs = order.get("outputs") or outputs
        if sorted(self.inputs) != sorted(self.input_keys) or sorted(self.outputs) != sorted(outputs):
            raise OutputError(f"{path}: the signature's names {sorted(self.input_keys)} -> "
                              f"{sorted(outputs)} are not the recorded {order}")

    def run(self, feeds):
        # The signature runner resizes every input to the given batch before running.
        values = {self.input_keys[name]: np.ascontiguousarray(feeds[name], dtype=np.float32)
                  for name in self.inputs}
        with quiet_stderr():  # LiteRT announces its XNNPACK delegate on the first run
            results = self.signature(**values)
        return {name_of_key(key): np.asarray(value) for key, value in results.items()}


class LiteRTFormat(Format):
    name = "tflite"
    extensions = (".tflite",)
    description = "LiteRT flatbuffer"
    runtime = "ai-edge-litert"
    batch = ("dynamic (shape signature -1): the signature runner resizes the inputs to the "
             "batch it is given (or `resize_tensor_input`, then `allocate_tensors`)")

    def expresses(self, layer_class):
        if layer_class in TRANSPOSED_CONVOLUTIONS:
            return f"dilated ones: {DILATED_TRANSPOSE_REASON}"
        return None

    def unsupported(self, model):
        # by configuration, not by class: a transposed convolution without dilation converts
        refused = []
        for layer in model.layers:
            dilation = getattr(layer, "dilation_rate", None)
            if type(layer).__name__ in TRANSPOSED_CONVOLUTIONS and dilation is not None \
                    and tuple(dilation) != (1, 1):
                refused.append((layer.name, type(layer).__name__, DILATED_TRANSPOSE_REASON))
        return refused

    def write(self, model, path):
        from ..lazy import keras
        from .litert_convert import write_tflite

        if keras.backend.backend() != "tensorflow":
            raise OutputError(f"{path}: the tflite format needs the TensorFlow backend "
                              f"(KERAS_BACKEND=tensorflow); this is {keras.backend.backend()}")
        require("tensorflow", "TensorFlow")
        require("ai_edge_litert", "ai-edge-litert")  # its flatbuffer schema writes the file
        scratch = tempfile.mkdtemp(prefix=".tflite-export.",
                                   dir=os.path.dirname(os.path.abspath(path)))
        try:
            write_tflite(model, path, scratch, signature_key)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def load(self, path):
        return LiteRTRunner(path)


__all__ = ["LiteRTFormat", "LiteRTRunner", "signature_key", "name_of_key", "input_names",
           "output_names"]
