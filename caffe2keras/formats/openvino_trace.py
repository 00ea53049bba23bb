"""The route from a Keras model to an ``openvino.Model``: trace the model (TensorFlow backend)
into one ``tf.function`` and let OpenVINO's TensorFlow frontend convert its graph.

The function's inputs carry the canonical input names and a free batch dimension; each of
its outputs is matched to the OpenVINO output it became through the TensorFlow tensor
name, and renamed to the canonical output name, so the IR's outputs are found by name.

An op the frontend cannot convert is reported by the Keras layer it came from: the
frontend names the op types it has no rule for, and TensorFlow names every op inside a
layer's call ``<model>/<layer>_<k>/...``.
"""

from __future__ import annotations

import re

from ..errors import OutputError, UnsupportedInFormatError
from .base import input_names, output_names

FORMAT = "OpenVINO IR"


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise OutputError("the openvino format needs the openvino package, which is not "
                          "installed: pip install 'caffe2keras[export]'") from None
    return openvino


def trace(model):
    """A concrete ``tf.function`` computing ``model``: inputs named as the model's, batch
    free, outputs a flat list in the model's output order."""
    from ..lazy import keras
    if keras.backend.backend() != "tensorflow":
        raise OutputError(f"the openvino format is written from a TensorFlow graph: it needs "
                          f"the TensorFlow backend (KERAS_BACKEND=tensorflow); this is "
                          f"{keras.backend.backend()}")
    import tensorflow as tf

    specs = [tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype, name=name)
             for name, tensor in zip(input_names(model), model.inputs)]

    @tf.function(input_signature=specs, autograph=False)
    def forward(*inputs):
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    return forward.get_concrete_function()


def convert(model):
    """``model`` as an ``openvino.Model`` with canonical input and output tensor names."""
    ov = import_openvino()
    from openvino.frontend import GeneralFailure, OpConversionFailure, OpValidationFailure
    function = trace(model)
    try:
        converted = ov.convert_model(function)
    except (OpConversionFailure, OpValidationFailure, GeneralFailure, RuntimeError) as error:
        raise _refusal(model, function, str(error)) from None
    _name_inputs(converted, input_names(model))
    _name_outputs(converted, [tensor.name for tensor in function.outputs], output_names(model))
    return converted


def _name_inputs(converted, names: list[str]) -> None:
    by_name = {name: port for port in converted.inputs for name in port.get_names()}
    for name in names:
        if name not in by_name:
            raise OutputError(f"OpenVINO's TensorFlow frontend lost input {name!r}")
        by_name[name].get_tensor().set_names({name})


def _name_outputs(converted, traced: list[str], canonical: list[str]) -> None:
    """Each output tensor named by the canonical names of the model outputs it is (one
    tensor is several outputs when layers are identities, Dropout after ReLU say)."""
    # The frontend also returns what ops inside the graph compute but nothing reads (the
    # last round of a top-k loop, say); only the traced outputs are the model's.
    for result in converted.get_results():
        if not set(traced) & _names_of(result):
            converted.remove_result(result)
    carried = [set(traced) & _names_of(result) for result in converted.get_results()]
    missing = set(traced) - set().union(*carried)
    if missing:
        raise OutputError(f"OpenVINO's TensorFlow frontend lost outputs {sorted(missing)} "
                          f"of {traced}")
    canonical_of = dict(zip(traced, canonical))
    for result, names in zip(converted.get_results(), carried):
        result.output(0).get_tensor().set_names({canonical_of[name] for name in names})


def _names_of(result) -> set[str]:
    """The TensorFlow names a result carries: its tensor's, and its own (a result that
    returns an input as it is has only the input's tensor name)."""
    return set(result.output(0).get_names()) | {result.get_friendly_name()}


_NO_RULE = re.compile(r"No conversion rule found for operations: ([^\n]+)")


def _refusal(model, function, message: str) -> Exception:
    """UnsupportedInFormatError naming the Keras layers holding the ops the frontend has no
    rule for; an OutputError with the frontend's message when it names none."""
    found = _NO_RULE.search(message)
    missing = {kind.strip() for kind in found.group(1).split(",")} if found else set()
    graph = function.graph.as_graph_def()
    nodes = list(graph.node) + [node for f in graph.library.function for node in f.node_def]
    layers = {layer.name: layer for layer in model.layers}
    refused = {}
    for node in nodes:
        if node.op in missing:
            for part in node.name.split("/"):
                layer = layers.get(part) or layers.get(re.sub(r"_\d+$", "", part))
                if layer is not None:
                    refused.setdefault(layer.name, (type(layer).__name__, set()))[1].add(node.op)
                    break
    if not refused:
        lines = message.strip().splitlines() or ["no message"]
        summary = found.group(0) if found else lines[-1]
        return OutputError(f"{FORMAT}: OpenVINO's TensorFlow frontend failed: {summary}")
    return UnsupportedInFormatError(FORMAT, [
        (name, kind, f"OpenVINO has no conversion for the TensorFlow op(s) "
                     f"{', '.join(sorted(ops))} it computes with")
        for name, (kind, ops) in refused.items()])
