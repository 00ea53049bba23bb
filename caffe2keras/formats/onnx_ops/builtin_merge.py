"""Add, Subtract, Multiply, Maximum, Minimum, Average and Concatenate.

All inputs are taken in one layout: the first input's when every input is 4-D (so a ResNet
shortcut stays channels-first), else the Keras layout. Keras folds the inputs pairwise
from the first, ((a + b) + c), and so do these lowerings, for the same round-off.
"""

from __future__ import annotations

import numpy as np
from keras import layers

from .graph import keras_axis_in
from .registry import lowering, refusal


def common_layout(g, inputs) -> tuple[list[str], str]:
    """Every input's value in one layout, and that layout."""
    if all(len(tensor.shape) == 4 for tensor in inputs):
        layout = g.layout(inputs[0])
    else:
        layout = "keras"
    return [g.value(tensor, layout) for tensor in inputs], layout


def _fold(op_type):
    def lower(layer, g, inputs, outputs):
        values, layout = common_layout(g, inputs)
        y = values[0]
        for value in values[1:]:
            y = g.op(op_type, y, value)
        g.set(outputs[0], y, layout)
    return lower


lowering(layers.Add)(_fold("Add"))
lowering(layers.Subtract)(_fold("Sub"))
lowering(layers.Multiply)(_fold("Mul"))
lowering(layers.Maximum)(_fold("Max"))
lowering(layers.Minimum)(_fold("Min"))


@refusal(layers.Add, layers.Subtract, layers.Multiply, layers.Maximum, layers.Minimum,
         layers.Average)
def mixed_ranks_refusal(layer):
    # Keras inserts the missing axes of a lower-rank input at axis 1; ONNX broadcasting
    # aligns the trailing axes instead.
    ranks = {len(tensor.shape) for node in layer._inbound_nodes for tensor in node.input_tensors}
    if len(ranks) > 1:
        return f"merging inputs of different ranks {sorted(ranks)} has no ONNX lowering"
    return None


@lowering(layers.Average)
def average(layer, g, inputs, outputs):
    values, layout = common_layout(g, inputs)
    y = values[0]
    for value in values[1:]:
        y = g.op("Add", y, value)
    g.set(outputs[0], g.op("Div", y, g.const(np.float32(len(values)))), layout)


@lowering(layers.Concatenate)
def concatenate(layer, g, inputs, outputs):
    values, layout = common_layout(g, inputs)
    axis = keras_axis_in(layer.axis, len(inputs[0].shape), layout)
    g.set(outputs[0], g.op("Concat", *values, axis=axis), layout)
