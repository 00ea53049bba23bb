"""Embed, CaffeLSTM and CaffeRNN as their layers compute them: Gather for the table, and the
recurrent layers unrolled over their static T with the same MatMul / Add / Sigmoid / Tanh / Mul
steps (batch-major, (N, T, ...))."""

from __future__ import annotations

import math

import numpy as np

from .custom_common import INT64, i64, squeeze
from .graph import to_numpy
from .registry import lowering


@lowering("Embed")
def embed(layer, g, inputs, outputs):
    """Row int(x) (truncated, clipped to the table) of the table, plus the bias."""
    index = g.op("Cast", g.value(inputs[0], "keras"), to=INT64)
    index = g.op("Clip", index, g.const(np.int64(0)), g.const(np.int64(layer.input_dim - 1)))
    y = g.op("Gather", g.const(to_numpy(layer.embeddings), name=f"{layer.name}/embeddings"),
             index, axis=0)
    if layer.bias_term:
        y = g.op("Add", y, g.const(to_numpy(layer.bias)))
    g.set(outputs[0], y, "keras")


def _step_slices(g, value: str, steps: int, axis: int = 1):
    """``value`` split along ``axis`` into ``steps`` slices, that axis dropped."""
    parts = g.op("Split", value, i64(g, [1] * steps), axis=axis, outputs=steps) if steps > 1 \
        else [value]
    return [squeeze(g, part, [axis]) for part in parts]


def _projections(layer, g, inputs):
    """(x_t @ W_x + b per step, the static term or None, cont_t (N, 1) per step)."""
    x_tensor = inputs[0]
    steps = x_tensor.shape[1]
    features = math.prod(x_tensor.shape[2:])
    x = g.value(x_tensor, "keras")
    if len(x_tensor.shape) != 3:
        x = g.op("Reshape", x, i64(g, [-1, steps, features]))
    projected = g.op("Add", g.op("MatMul", x, g.const(to_numpy(layer.input_kernel))),
                     g.const(to_numpy(layer.input_bias)))
    static = None
    if layer.static_input:
        x_static = g.op("Reshape", g.value(inputs[2], "keras"),
                        i64(g, [-1, layer.static_kernel.shape[0]]))
        static = g.op("MatMul", x_static, g.const(to_numpy(layer.static_kernel)))
    cont = g.value(inputs[1], "keras")
    if str(inputs[1].dtype) != "float32":
        cont = g.op("Cast", cont, to=1)
    conts = g.op("Split", cont, i64(g, [1] * steps), axis=1, outputs=steps) if steps > 1 \
        else [cont]
    return _step_slices(g, projected, steps), static, conts


def _pre_activation(g, h, keep: str, recurrent: str, x_t: str, static) -> str:
    """(cont_t * h) @ W_h + x_t [+ static]; at the first step h is 0 and the product drops
    out (0 @ W + x_t is x_t exactly)."""
    pre = x_t if h is None else g.op("Add", g.op("MatMul", g.op("Mul", h, keep), recurrent), x_t)
    return pre if static is None else g.op("Add", pre, static)


def _gate(g, x: str, start: int, width: int) -> str:
    return g.op("Slice", x, i64(g, [start]), i64(g, [start + width]), i64(g, [1]))


@lowering("CaffeLSTM")
def caffe_lstm(layer, g, inputs, outputs):
    projected, static, conts = _projections(layer, g, inputs)
    width = layer.num_output
    recurrent = g.const(to_numpy(layer.recurrent_kernel))
    h = c = None
    states = []
    for x_t, keep in zip(projected, conts):
        gates = _pre_activation(g, h, keep, recurrent, x_t, static)
        i = g.op("Sigmoid", _gate(g, gates, 0, width))
        f = g.op("Mul", keep, g.op("Sigmoid", _gate(g, gates, width, width)))
        o = g.op("Sigmoid", _gate(g, gates, 2 * width, width))
        cell = g.op("Tanh", _gate(g, gates, 3 * width, width))
        c = g.op("Mul", i, cell) if c is None else g.op("Add", g.op("Mul", f, c),
                                                        g.op("Mul", i, cell))
        h = g.op("Mul", o, g.op("Tanh", c))
        states.append(h)
    g.set(outputs[0], _stack(g, states), "keras")


@lowering("CaffeRNN")
def caffe_rnn(layer, g, inputs, outputs):
    projected, static, conts = _projections(layer, g, inputs)
    recurrent = g.const(to_numpy(layer.recurrent_kernel))
    output_kernel = g.const(to_numpy(layer.output_kernel))
    output_bias = g.const(to_numpy(layer.output_bias))
    h = None
    results = []
    for x_t, keep in zip(projected, conts):
        h = g.op("Tanh", _pre_activation(g, h, keep, recurrent, x_t, static))
        results.append(g.op("Tanh", g.op("Add", g.op("MatMul", h, output_kernel), output_bias)))
    g.set(outputs[0], _stack(g, results), "keras")


def _stack(g, steps) -> str:
    """(N, H) per step -> (N, T, H)."""
    parts = [g.op("Unsqueeze", step, i64(g, [1])) for step in steps]
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
