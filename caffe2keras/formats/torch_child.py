"""The child process of the torch format: a saved Keras model -> a ``torch.export`` program.

Keras fixes its backend when it is imported and the conversion runs on TensorFlow, so the
parent (``torch_program.py``) saves the model to a ``.keras`` file and runs this module with
``KERAS_BACKEND=torch``::

    python -m caffe2keras.formats.torch_child REQUEST.json

The request (JSON) names the ``.keras`` file, the ``.pt2`` to write, the result file, the
canonical input and output names, and the modules (with the parent's ``sys.path``) that
define layer classes of the model from outside Keras and caffe2keras. The child never prints what the parent needs: it writes a
result JSON, one of

* ``{"status": "ok"}``;
* ``{"status": "layer", "layer": name, "class": class, "reason": text}`` when tracing failed
  inside a layer's ``call`` (the innermost Keras layer on the failing stack);
* ``{"status": "error", "message": text}`` for anything else.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback

METADATA = "caffe2keras.json"  # the extra file of the .pt2 holding the canonical names
METADATA_FORMAT = "caffe2keras-torch/1"
EXAMPLE_BATCH = 2  # torch.export fixes a dimension traced at size 1, so trace at 2
MAX_BATCH = 1 << 20  # the bound torch.export wants on a dynamic dimension


class ExportedModel:
    """Builds the ``torch.nn.Module`` that is exported: positional inputs in the Keras
    model's input order, a tuple of outputs in its output order (made in ``module()``, so
    that this file imports torch only in the child)."""

    @staticmethod
    def module(model):
        import torch

        class KerasProgram(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model  # a torch Module on the torch backend: its weights come along
                self.several_inputs = len(model.inputs) > 1

            def forward(self, *inputs):
                outputs = self.model(list(inputs) if self.several_inputs else inputs[0],
                                     training=False)
                return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)

        return KerasProgram(model)


def failing_layer(error: BaseException):
    """The innermost Keras layer (not a model) whose ``call`` is on ``error``'s stack."""
    import keras

    found = None
    frame_list = traceback.walk_tb(error.__traceback__)
    for frame, _ in frame_list:
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.layers.Layer) and not isinstance(owner, keras.Model):
            found = owner
    return found


def summary(error: BaseException) -> str:
    """The error's type and its first informative line: Keras prefixes the message of an
    error raised in a layer with "Exception encountered when calling ...", and torch puts
    ANSI colour codes in some."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()
             and not line.strip().startswith("Exception encountered when calling")]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def import_layer_modules(request: dict) -> None:
    """Import the modules that define the model's layer classes outside Keras and caffe2keras
    (a user's custom converters may emit their own layers), with the parent's import path."""
    import importlib

    sys.path.extend(entry for entry in request["sys_path"] if entry not in sys.path)
    for module in request["modules"]:
        importlib.import_module(module)


def export(request: dict) -> dict:
    import caffe2keras  # noqa: F401  (before Keras: the package's own import order)
    import caffe2keras.layers  # noqa: F401  (registers the custom layers for loading)
    import keras
    import torch

    from .torch_lowering import export_lowerings

    keras.config.disable_traceback_filtering()  # failing_layer() looks for the layer's frame
    import_layer_modules(request)
    model = keras.models.load_model(request["keras"], safe_mode=True, compile=False)
    program = ExportedModel.module(model).eval()
    examples = tuple(torch.zeros((EXAMPLE_BATCH, *tensor.shape[1:]), dtype=torch.float32)
                     for tensor in model.inputs)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic = [tuple({0: batch} for _ in examples)]
    try:
        with torch.no_grad(), export_lowerings():
            exported = torch.export.export(program, examples, dynamic_shapes=dynamic,
                                           strict=False)
    except Exception as error:  # noqa: BLE001  (any tracing failure is reported, by layer if we can)
        layer = failing_layer(error)
        if layer is None:
            return {"status": "error", "message": summary(error)}
        return {"status": "layer", "layer": layer.name, "class": type(layer).__name__,
                "reason": summary(error)}
    metadata = {"format": METADATA_FORMAT, "inputs": request["inputs"],
                "outputs": request["outputs"]}
    torch.export.save(exported, request["pt2"], extra_files={METADATA: json.dumps(metadata)})
    return {"status": "ok"}


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        result = export(request)
    except Exception as error:  # noqa: BLE001  (reported to the parent as one line)
        result = {"status": "error", "message": summary(error)}
    with open(request["result"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main(sys.argv[1:]))
