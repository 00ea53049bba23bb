"""A PyTorch ``torch.export`` program (``.pt2``), run by plain torch.

Writing: Keras fixes its backend at import and the conversion runs on TensorFlow, so a child
process on the torch backend exports (``torch_child.py``). It starts first and imports torch
and Keras while this process writes the model's config and raw weights beside the target
(``torch_transfer.py``), then rebuilds the model, traces it and saves the program. Its
output goes to a log, never to the terminal; what it reports comes back as one caffe2keras
error: a tracing failure inside a layer as UnsupportedInFormatError naming that layer,
anything else as OutputError with the child's last error line. The ``.pt2`` appears only
when the child succeeded.

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


class ExportProcess:
    """The export child (``torch_child.py``), its output kept in a log in ``scratch``."""

    def __init__(self, scratch: str):
        self.log = os.path.join(scratch, "export.log")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "caffe2keras.formats.torch_child"],
                env=child_environment(), stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT,
                cwd=scratch)  # not the user's folder, which `-m` would put first on the path

    def finish(self, request: dict, path: str) -> dict:
        """Send ``request``, wait, and return the child's result (an OutputError with its
        last line if it left none)."""
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # it died already; its log says why
        code = self.process.wait()
        try:
            with open(request["result"], encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                why = (f"killed by signal {-code}" if code < 0
                       else last_error_line(handle.read()))
            raise OutputError(f"{path}: the torch export process failed: {why}") from None

    def stop(self) -> None:
        """End the child if it still runs (the parent failed or was interrupted)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()


class TorchFormat(Format):
    name = "torch"
    extensions = (".pt2",)
    description = "PyTorch ExportedProgram (torch.export)"
    runtime = "torch"
    batch = "free: one program for any batch size (torch.export dynamic dimension, 1 to 2^20)"

    def unsupported(self, model):
        return super().unsupported(model) + [
            (layer.name, type(layer).__name__, "its class is defined in __main__, which the "
             "torch export process cannot import; define it in a module")
            for layer in model.layers if type(layer).__module__ == "__main__"]

    def write(self, model, path):
        require_torch()
        for name, tensor in zip(input_names(model), model.inputs):
            if None in tuple(tensor.shape)[1:]:  # the program is traced at one size
                raise OutputError(f"{path}: input {name!r} has an unknown size "
                                  f"{tuple(tensor.shape)}; give it with --input-shape")
        from .torch_transfer import write_model

        scratch = tempfile.mkdtemp(prefix=".torch-export.", dir=os.path.dirname(
            os.path.abspath(path)))
        process = None
        try:
            process = ExportProcess(scratch)  # first: its imports overlap what follows
            write_model(model, scratch)
            import torch  # noqa: F401  (the check loads the program next; meanwhile, import)
            exported = os.path.join(scratch, "model.pt2")
            result = process.finish({
                "model": scratch, "pt2": exported, "result": os.path.join(scratch, "result.json"),
                "inputs": input_names(model), "outputs": output_names(model),
                "modules": layer_modules(model),
                "sys_path": [os.path.abspath(entry) for entry in sys.path]}, path)
            if result["status"] == "layer":
                raise UnsupportedInFormatError(self.description, [
                    (result["layer"], result["class"], result["reason"])])
            if result["status"] != "ok":
                raise OutputError(f"{path}: the torch export process failed: "
                                  f"{result['message']}")
            os.replace(exported, path)
        finally:
            if process is not None:
                process.stop()
            shutil.rmtree(scratch, ignore_errors=True)

    def load(self, path):
        return TorchRunner(path)


__all__ = ["TorchFormat", "TorchRunner"]
