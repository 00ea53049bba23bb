"""A PyTorch ``torch.export`` program (``.pt2``), run by plain torch.

Writing: Keras fixes its backend at import and the conversion runs on TensorFlow, so the
model is saved to a temporary ``.keras`` file and exported by a child process on the torch
backend (``torch_child.py``). The child's output is captured, never shown; what it reports
comes back as one caffe2keras error: a tracing failure inside a layer as
UnsupportedInFormatError naming that layer, anything else as OutputError with the child's
last error line. The ``.pt2`` appears only when the child succeeded.

Running: ``torch.export.load(path).module()`` called with the inputs in the Keras model's
order (NHWC, float32), as a PyTorch user would; no Keras involved. The program returns a
tuple of outputs; their canonical names travel in the file (an extra file, see
``torch_child.METADATA``). The batch dimension is dynamic.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from ..errors import OutputError, UnsupportedInFormatError
from .base import Format, Runner, input_names, output_names
from .torch_child import METADATA, METADATA_FORMAT

INSTALL_HINT = "pip install 'caffe2keras[export]'"


def require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise OutputError(f"the torch format needs PyTorch, which is not installed: "
                          f"{INSTALL_HINT}")


class TorchRunner(Runner):
    def __init__(self, path: str):
        require_torch()
        import torch

        extra = {METADATA: ""}
        try:
            program = torch.export.load(path, extra_files=extra)
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            raise OutputError(f"{path}: cannot load the torch program: {error}") from None
        try:
            metadata = json.loads(extra[METADATA])
        except ValueError:
            metadata = {}
        if metadata.get("format") != METADATA_FORMAT:
            raise OutputError(f"{path}: not a program written by caffe2keras (no "
                              f"{METADATA} of format {METADATA_FORMAT})")
        self.inputs, self.outputs = metadata["inputs"], metadata["outputs"]
        self.module = program.module()

    def run(self, feeds):
        import torch

        values = [torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.float32))
                  for name in self.inputs]
        with torch.no_grad():
            results = self.module(*values)
        return {name: result.numpy() for name, result in zip(self.outputs, results)}


def layer_modules(model) -> list[str]:
    """Modules outside Keras and caffe2keras that define the model's layer classes."""
    modules = {type(layer).__module__ for layer in model.layers}
    return sorted(module for module in modules
                  if module.split(".")[0] not in ("keras", "caffe2keras", "__main__"))


def child_environment() -> dict[str, str]:
    """The torch backend, quiet TensorFlow, and this very caffe2keras first on the path."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


class TorchFormat(Format):
    name = "torch"
    extensions = (".pt2",)
    description = "PyTorch ExportedProgram (torch.export)"
    runtime = "torch"
    batch = "dynamic (torch.export.Dim, 1 and up)"

    def unsupported(self, model):
        return super().unsupported(model) + [
            (layer.name, type(layer).__name__, "its class is defined in __main__, which the "
             "torch export process cannot import; define it in a module")
            for layer in model.layers if type(layer).__module__ == "__main__"]

    def write(self, model, path):
        require_torch()
        from ..save import save_model

        scratch = tempfile.mkdtemp(prefix=".torch-export.", dir=os.path.dirname(
            os.path.abspath(path)))
        try:
            saved = os.path.join(scratch, "model.keras")
            save_model(model, saved)
            exported = os.path.join(scratch, "model.pt2")
            self._export_in_child(saved, exported, input_names(model), output_names(model),
                                  layer_modules(model), scratch, path)
            os.replace(exported, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _export_in_child(self, saved, exported, inputs, outputs, modules, scratch, path):
        request = {"keras": saved, "pt2": exported, "inputs": inputs, "outputs": outputs,
                   "result": os.path.join(scratch, "result.json"),
                   "modules": modules,
                   "sys_path": [os.path.abspath(entry) for entry in sys.path]}
        request_path = os.path.join(scratch, "request.json")
        with open(request_path, "w", encoding="utf-8") as handle:
            json.dump(request, handle)
        environment = child_environment()
        done = subprocess.run([sys.executable, "-m", "caffe2keras.formats.torch_child",
                               request_path], env=environment, stdin=subprocess.DEVNULL,
                              cwd=scratch,  # not the user's folder, which `-m` would put first
                              capture_output=True, text=True, errors="replace")
        try:
            with open(request["result"], encoding="utf-8") as handle:
                result = json.load(handle)
        except (OSError, ValueError):
            why = (f"killed by signal {-done.returncode}" if done.returncode < 0
                   else last_error_line(done.stderr or done.stdout))
            raise OutputError(f"{path}: the torch export process failed: {why}") from None
        if result["status"] == "layer":
            raise UnsupportedInFormatError(self.description, [
                (result["layer"], result["class"], result["reason"])])
        if result["status"] != "ok":
            raise OutputError(f"{path}: the torch export process failed: {result['message']}")

    def load(self, path):
        return TorchRunner(path)


__all__ = ["TorchFormat", "TorchRunner"]
