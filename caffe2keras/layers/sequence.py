"""Caffe's Embed, LSTM and RNN, batch-major.

Caffe's recurrent blobs are time-major, (T, N, ...); these layers take and give the same
values batch-major, (N, T, ...), so that axis 0 stays Keras' free batch (see
``caffe2keras/time_major.py``). The time loop is unrolled over the static T, as Caffe unrolls
its own net (lstm_layer.cpp, rnn_layer.cpp), in the same order of operations:

LSTM, per step t (cont_t in (N, 1), state h, c start at 0, gates in Caffe's i, f, o, g order)::

    gates = (cont_t * h) @ W_hc^T + (x_t @ W_xc^T + b_c) [+ x_static @ W_xc_static^T]
    i, f, o, g = sigmoid, cont_t * sigmoid, sigmoid, tanh of the four H-wide slices
    c = f * c + i * g;  h = o * tanh(c)            (the output at t is h)

RNN, per step t::

    h = tanh((cont_t * h) @ W_hh^T + (x_t @ W_xh^T + b_h) [+ x_static @ W_xh_static^T])
    o = tanh(h @ W_ho^T + b_o)                     (the output at t is o)

Kernels are stored transposed, (inputs, outputs), for ``x @ kernel``.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def _positive(owner: str, name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner} {name} must be a positive int, got {value!r}")
    return value


@keras.saving.register_keras_serializable(package="caffe2keras")
class Embed(keras.layers.Layer):
    """Caffe's Embed: each input value, truncated to an int index, picks a row of the
    (input_dim, num_output) table, plus the bias. Output: the input's shape + (num_output,).

    Indices outside [0, input_dim) are undefined in Caffe (it reads past its table); here
    they are clipped to the table.
    """

    def __init__(self, input_dim=1, num_output=1, bias_term=True, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = _positive("Embed", "input_dim", input_dim)
        self.num_output = _positive("Embed", "num_output", num_output)
        self.bias_term = bool(bias_term)

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings",
                                          shape=(self.input_dim, self.num_output))
        if self.bias_term:
            self.bias = self.add_weight(name="bias", shape=(self.num_output,))
        super().build(input_shape)

    def call(self, inputs):
        # clipped before the cast (which truncates): the same index, and no integer clip,
        # which LiteRT has no builtin for
        index = ops.cast(ops.clip(inputs, 0.0, float(self.input_dim - 1)), "int32")
        y = ops.take(self.embeddings, index, axis=0)
        return y + self.bias if self.bias_term else y

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.num_output)

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, num_output=self.num_output,
                      bias_term=self.bias_term)
        return config


class _Recurrent(keras.layers.Layer):
    """Shared by CaffeLSTM and CaffeRNN: inputs [x (N, T, ...), cont (N, T)] or with
    x_static (N, ...) third; output (N, T, num_output)."""

    gates = 1  # H-wide slices of the recurrent pre-activation

    def __init__(self, num_output=1, static_input=False, **kwargs):
        super().__init__(**kwargs)
        self.num_output = _positive(type(self).__name__, "num_output", num_output)
        self.static_input = bool(static_input)

    def _shapes(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) != 2 + self.static_input:
            raise ValueError(f"{type(self).__name__} takes {2 + self.static_input} inputs "
                             f"(x, cont{', x_static' if self.static_input else ''}), got "
                             f"{len(shapes)}")
        x, cont = shapes[0], shapes[1]
        if len(x) < 3 or x[1] is None or any(d is None for d in x[2:]) or cont[1:] != x[1:2]:
            raise ValueError(f"{type(self).__name__} needs x (N, T, ...) with a static T and "
                             f"cont (N, T), got {x} and {cont}")
        return shapes

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        width = self.gates * self.num_output
        self.input_kernel = self.add_weight(name="input_kernel",
                                            shape=(math.prod(shapes[0][2:]), width))
        self.input_bias = self.add_weight(name="input_bias", shape=(width,))
        if self.static_input:
            self.static_kernel = self.add_weight(name="static_kernel",
                                                 shape=(math.prod(shapes[2][1:]), width))
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel",
                                                shape=(self.num_output, width))
        self._build_output()
        super().build(input_shape)

    def _build_output(self):
        pass

    def _projections(self, inputs):
        """x_t @ W_x^T + b for every t, a list of (N, width), the static term (or None) and
        cont. Step by step, 2-D: OpenVINO's CPU plugin runs a 3-D product of an input plus
        a bias in bf16 whatever the precision marks say."""
        x, cont = inputs[0], inputs[1]
        steps = x.shape[1]
        if len(x.shape) != 3:  # (a no-op reshape of an input confuses OpenVINO)
            x = ops.reshape(x, (-1, steps, self.input_kernel.shape[0]))
        projected = [ops.matmul(x[:, t], self.input_kernel) + self.input_bias
                     for t in range(steps)]
        static = None
        if self.static_input:
            x_static = inputs[2]
            if len(x_static.shape) != 2:  # (a no-op reshape of an input confuses OpenVINO)
                x_static = ops.reshape(x_static, (-1, self.static_kernel.shape[0]))
            static = ops.matmul(x_static, self.static_kernel)
        return projected, static, ops.cast(cont, projected[0].dtype), steps

    def compute_output_shape(self, input_shape):
        x = tuple(input_shape[0])
        return (x[0], x[1], self.num_output)

    def get_config(self):
        config = super().get_config()
        config.update(num_output=self.num_output, static_input=self.static_input)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class CaffeLSTM(_Recurrent):
    """Caffe's LSTM, batch-major (see the module docstring)."""

    gates = 4

    def call(self, inputs):
        projected, static, cont, steps = self._projections(inputs)
        width = self.num_output
        h = c = ops.zeros_like(projected[0][:, :width])
        outputs = []
        for t in range(steps):
            keep = cont[:, t:t + 1]
            gates = ops.matmul(h * keep, self.recurrent_kernel) + projected[t]
            if static is not None:
                gates = gates + static
            i = ops.sigmoid(gates[:, :width])
            f = keep * ops.sigmoid(gates[:, width:2 * width])
            o = ops.sigmoid(gates[:, 2 * width:3 * width])
            g = ops.tanh(gates[:, 3 * width:])
            c = f * c + i * g
            h = o * ops.tanh(c)
            outputs.append(h)
        return ops.stack(outputs, axis=1)


@keras.saving.register_keras_serializable(package="caffe2keras")
class CaffeRNN(_Recurrent):
    """Caffe's RNN, batch-major (see the module docstring)."""

    def _build_output(self):
        self.output_kernel = self.add_weight(name="output_kernel",
                                             shape=(self.num_output, self.num_output))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.num_output,))

    def call(self, inputs):
        projected, static, cont, steps = self._projections(inputs)
        h = ops.zeros_like(projected[0])
        outputs = []
        for t in range(steps):
            pre = ops.matmul(h * cont[:, t:t + 1], self.recurrent_kernel) + projected[t]
            if static is not None:
                pre = pre + static
            h = ops.tanh(pre)
            outputs.append(ops.tanh(ops.matmul(h, self.output_kernel) + self.output_bias))
        return ops.stack(outputs, axis=1)
