"""ONNX files, written by walking the Keras model layer by layer (``onnx_ops``), run by
onnxruntime.

Keras' own ONNX export goes through tf2onnx, which needs tens of GB for VGG16 and gets SSD
wrong; here each Keras layer class has a lowering to ONNX nodes (``onnx_ops/builtin_*``
for Keras' layers, ``onnx_ops/custom_*`` for caffe2keras'), 4-D values stay channels-first
between layers, and the weights are streamed into the file from the model's own memory.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OutputError
from .base import Format, Runner, input_names, output_names

INSTALL_HINT = "pip install 'caffe2keras[export]'"


def _require(module: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OutputError(f"the ONNX format needs {module}, which is not installed: "
                          f"{INSTALL_HINT}") from None


def lower_model(model):
    """The :class:`OnnxGraph` of ``model``: inputs and outputs by canonical name, every
    layer through its lowering (all of them must have one: see ``OnnxFormat.unsupported``)."""
    from . import onnx_ops
    g = onnx_ops.OnnxGraph()
    outputs = output_names(model)
    inputs = input_names(model)
    for tensor, name in zip(model.inputs, inputs):
        g.add_input(tensor, name)
    for name in outputs:  # taken first: no internal value may be called like an output
        if name not in inputs:  # an input returned as it is
            g.reserve(name)
    for depth in sorted(model._nodes_by_depth, reverse=True):  # inputs first
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer = node.operation
            lower = onnx_ops.find_lowering(layer)
            if lower is None:
                raise OutputError(f"layer {layer.name!r} ({type(layer).__name__}) has no ONNX "
                                  "lowering")
            g.scope = layer.name
            lower(layer, g, list(node.input_tensors), list(node.output_tensors))
            missing = [t.name for t in node.output_tensors if not g.has(t)]
            if missing:
                raise RuntimeError(f"the ONNX lowering of layer {layer.name!r} did not set "
                                   f"its outputs {missing}")
    for tensor, name in zip(model.outputs, outputs):
        g.add_output(tensor, name)
    return g


class OnnxRunner(Runner):
    def __init__(self, path: str):
        ort = _require("onnxruntime")
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.inputs = [value.name for value in self.session.get_inputs()]
        self.outputs = [value.name for value in self.session.get_outputs()]

    def run(self, feeds):
        # the file's input and output names are the canonical ones
        results = self.session.run(self.outputs, {name: feeds[name] for name in self.inputs})
        return dict(zip(self.outputs, results))


OPSET = 17  # onnxruntime and OpenVINO's ONNX frontend both take it


class OnnxFormat(Format):
    name = "onnx"
    extensions = (".onnx",)
    runtime = "onnxruntime"
    batch = "free (symbolic 'N')"

    description = f"ONNX (opset {OPSET})"

    def expresses(self, layer_class):
        from .onnx_ops import registry
        return None if layer_class in registry.lowered_class_names() else "no ONNX lowering"

    def unsupported(self, model):
        from . import onnx_ops
        refused = []
        for layer in model.operations:
            if onnx_ops.is_input_layer(layer):
                continue
            if onnx_ops.find_lowering(layer) is None:
                reason = "no ONNX lowering"
            else:
                reason = onnx_ops.refusal_reason(layer)
            if reason:
                refused.append((layer.name, type(layer).__name__, reason))
        return refused

    def write(self, model, path):
        _require("onnx")
        from .onnx_ops.graph import PROTOBUF_LIMIT
        weight_bytes = sum(math.prod(variable.shape) * np.dtype(variable.dtype).itemsize
                           for variable in model.weights)
        if weight_bytes > PROTOBUF_LIMIT:
            raise OutputError(self._too_large(weight_bytes))
        graph = lower_model(model)
        from .. import __version__
        try:
            graph.write(path, model.name, __version__)
        except ValueError as error:  # the graph, with its constants, is beyond the limit
            raise OutputError(f"{path}: {error}") from None

    @staticmethod
    def _too_large(weight_bytes: int) -> str:
        return (f"the model's weights take {weight_bytes / 2**30:.2f} GiB; a single .onnx file "
                "holds at most 2 GiB (protobuf's limit), so it cannot be written as ONNX")

    def load(self, path):
        return OnnxRunner(path)
