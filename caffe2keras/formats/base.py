"""The interface every output format implements: write an artifact, load it in its own
runtime, run it on named inputs and get named outputs back.

The conversion check (``check.py``), ``caffe2keras verify`` and the tests all go through
this interface, so a runtime's quirks (output order, default precision, batch handling,
naming rules) are handled once, inside that format's module. Format modules know Keras
models, never Caffe.

Names: an artifact's inputs are the Keras model's input names (``input_names``), its
outputs ``output_names(model)``: the producing layer's name, with ``:k`` appended for the
k-th output of a layer that has several (Keras' own ``model.output_names`` repeats the
layer's name there). A runtime whose artifact cannot carry such names maps them inside
its module; ``Runner.run`` always returns the canonical names.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np


class Runner:
    """An artifact loaded in its runtime."""

    #: canonical input names, in the Keras model's input order
    inputs: list[str]
    #: canonical output names, in the Keras model's output order
    outputs: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on ``feeds`` (input name -> float32 array in the Keras layout, any batch
        size the format allows); return every output by canonical name, as numpy."""
        raise NotImplementedError


class Format:
    """One output format. Subclasses set the class attributes and implement the methods."""

    name: str = ""  # the --format choice, e.g. "onnx"
    extensions: tuple[str, ...] = ()  # e.g. (".onnx",); lower case, with the dot
    description: str = ""  # for the summary, e.g. "ONNX (opset 17)"
    runtime: str = ""  # the runtime that loads it, e.g. "onnxruntime"
    batch: str = ""  # what the artifact's batch dimension is (for the README)
    checked: bool = True  # run in its runtime and compared with Keras after writing

    def files(self, path: str) -> list[str]:
        """Every file the artifact at ``path`` consists of (``path`` first)."""
        return [path]

    def expresses(self, layer_class: str) -> str | None:
        """None when this format can express every layer of the Keras class named
        ``layer_class`` (as our converters configure it); else the reason it cannot (for the
        README's formats table, and the default ``unsupported``)."""
        return None

    def unsupported(self, model) -> list[tuple[str, str, str]]:
        """(layer name, layer class, reason) for each layer of ``model`` this format cannot
        express; asked before anything is written."""
        refused = []
        for layer in model.layers:
            reason = self.expresses(type(layer).__name__)
            if reason is not None:
                refused.append((layer.name, type(layer).__name__, reason))
        return refused

    def write(self, model, path: str) -> None:
        """Write ``model`` to ``path`` (a fresh temporary name with this format's extension;
        the caller renames it, and the files beside it, into place)."""
        raise NotImplementedError

    def load(self, path: str) -> Runner:
        """Load the artifact at ``path`` in its runtime, with the runtime's default settings
        (what a user would do): the artifact itself must make them exact."""
        raise NotImplementedError


def input_names(model) -> list[str]:
    return [tensor.name for tensor in model.inputs]


def own_batch_inputs(model) -> dict[str, tuple]:
    """The inputs whose axis 0 is their own, not the batch the other inputs share, by name:
    those a layer takes at a position it lists in ``own_batch_inputs`` (e.g. the box list of
    an ROI pooling, R boxes for N images), each with (that layer, the position)."""
    names = {id(tensor): name for name, tensor in zip(input_names(model), model.inputs)}
    found = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for position in getattr(layer, "own_batch_inputs", ()):
                tensor = node.input_tensors[position]
                if id(tensor) in names:
                    found[names[id(tensor)]] = (layer, position)
    return found


def keras_results(model, values: list) -> list:
    """``model`` run by Keras on ``values`` (one array per input), one array per output:
    ``predict``, or a direct call when the inputs differ in axis 0 (``predict`` wants one
    batch size for all, "Data cardinality is ambiguous")."""
    if len({len(value) for value in values}) > 1:
        import keras
        results = model(values, training=False)
        results = results if isinstance(results, (list, tuple)) else [results]
        return [keras.ops.convert_to_numpy(result) for result in results]
    results = model.predict(values if len(values) > 1 else values[0], verbose=0)
    return [results] if len(model.outputs) == 1 else list(results)


def output_names(model) -> list[str]:
    """Canonical output names (see the module docstring), in the model's output order."""
    names = []
    for tensor in model.outputs:
        layer, node_index, tensor_index = tensor._keras_history
        several = len(layer._inbound_nodes[node_index].outputs) > 1
        names.append(f"{layer.name}:{tensor_index}" if several else layer.name)
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:  # the same tensor twice among the outputs
        raise ValueError(f"the model returns {repeated} more than once")
    return names


def companion(path: str, extension: str) -> str:
    """``model.xml`` -> ``model.bin`` and the like."""
    return os.path.splitext(path)[0] + extension
