"""The export process of the torch format: a Keras model -> a ``torch.export`` program.

Keras fixes its backend when it is imported and the conversion runs on TensorFlow, so the
parent (``torch_program.py``) starts this module with ``KERAS_BACKEND=torch``::

    python -m caffe2keras.formats.torch_child

It imports torch and Keras first (seconds, while the parent writes the model out, see
``torch_transfer.py``), then reads one JSON request line from stdin: the model's folder,
the ``.pt2`` to write, the result file, the canonical input and output names, and the
modules (with the parent's ``sys.path``) that define layer classes of the model outside
Keras and caffe2keras. Its own output goes to a log the parent keeps to itself; what the
parent needs is in the result file (JSON), one of

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


def parameter_names(paths: list[str]) -> list[str]:
    """Keras variable paths ("conv1/kernel") as torch parameter names, which cannot hold '.'."""
    names, taken = [], set()
    for path in paths:
        name, suffix = path.replace(".", "_"), 1
        while name in taken:
            suffix += 1
            name = f"{path.replace('.', '_')}_{suffix}"
        taken.add(name)
        names.append(name)
    return names


def program_module(model):
    """The ``torch.nn.Module`` that is exported: positional inputs in the Keras model's
    input order, a tuple of outputs in its output order, the Keras variables as its
    parameters, named by their Keras paths.

    torch.export traces with stand-ins for a module's parameters, but Keras layers read
    their variables' own tensors, which the tracer would then copy into the program as
    constants beside the (unused) parameters: every weight twice. So the model is called in
    a StatelessScope that gives each variable the module's parameter, and is kept out of
    the module's children (its own parameter registry is not what is traced)."""
    import keras
    import torch

    class KerasProgram(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.keras_model = (model,)  # a tuple: not registered as a submodule
            self.variables = list(model.variables)
            self.names = parameter_names([variable.path for variable in self.variables])
            self.weights = torch.nn.ParameterDict({
                name: variable.value for name, variable in zip(self.names, self.variables)})

        def forward(self, *inputs):
            model = self.keras_model[0]
            state = [(variable, self.weights[name])
                     for name, variable in zip(self.names, self.variables)]
            with keras.StatelessScope(state_mapping=state):
                outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
            return tuple(outputs) if isinstance(outputs, (list, tuple)) else (outputs,)

    return KerasProgram(model)


def failing_layer(error: BaseException):
    """The innermost Keras layer (not a model) whose ``call`` is on ``error``'s stack."""
    import keras

    found = None
    for frame, _ in traceback.walk_tb(error.__traceback__):
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
    import keras
    import torch

    from .base import input_names, own_batch_inputs
    from .torch_lowering import drop_layout_copies, export_lowerings
    from .torch_transfer import read_model

    keras.config.disable_traceback_filtering()  # failing_layer() looks for the layer's frame
    import_layer_modules(request)
    model = read_model(request["model"])
    # an input with its own axis 0 (base.own_batch_inputs: an ROI list) gets its own
    # dynamic dimension, traced at another size
    own = own_batch_inputs(model)
    names = input_names(model)
    examples = tuple(torch.zeros((EXAMPLE_BATCH + (name in own), *tensor.shape[1:]),
                                 dtype=torch.float32) for name, tensor in zip(names, model.inputs))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dims = [{0: torch.export.Dim(f"own_{i}", min=1, max=MAX_BATCH) if name in own else batch}
            for i, name in enumerate(names)]
    try:
        with torch.no_grad(), export_lowerings():
            exported = torch.export.export(program_module(model).eval(), examples,
                                           dynamic_shapes=[tuple(dims)], strict=False)
    except Exception as error:  # noqa: BLE001  (any tracing failure, named by layer if we can)
        layer = failing_layer(error)
        if layer is None:
            return {"status": "error", "message": summary(error)}
        return {"status": "layer", "layer": layer.name, "class": type(layer).__name__,
                "reason": summary(error)}
    drop_layout_copies(exported)
    metadata = {"format": METADATA_FORMAT, "inputs": request["inputs"],
                "outputs": request["outputs"]}
    torch.export.save(exported, request["pt2"], extra_files={METADATA: json.dumps(metadata)})
    return {"status": "ok"}


def main() -> int:
    import caffe2keras  # noqa: F401  (first: it registers our layers once Keras is imported)
    import keras  # noqa: F401  (the slow imports, done while the parent writes the model)
    import torch  # noqa: F401

    request = json.loads(sys.stdin.readline())
    try:
        result = export(request)
    except Exception as error:  # noqa: BLE001  (reported to the parent as one line)
        result = {"status": "error", "message": summary(error)}
    with open(request["result"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
