"""The Axpy layer of the SENet Caffe forks: ``top = a * x + y``.

Inputs [a, x, y]: ``a`` holds one factor per item and channel (Caffe shape (N, C) or
(N, C, 1, 1), so (N, C) or (N, 1, 1, C) in Keras), ``x`` and ``y`` have the same shape. Caffe
copies y into the top and adds a[n, c] * x[n, c, ...] with axpby.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="caffe2keras")
class Axpy(keras.layers.Layer):
    """``a * x + y`` with ``a`` broadcast over every axis of x but the batch and ``axis``
    (x's channel axis: -1 for NHWC, 1 for blobs that keep Caffe's order)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"Axpy axis must be an int, got {axis!r}")
        self.axis = axis

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Axpy takes three inputs [a, x, y], got {len(input_shape)}")
        a_shape, x_shape, y_shape = (tuple(s) for s in input_shape)
        rank = len(x_shape)
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"Axpy axis {self.axis} is not a non-batch axis of x {x_shape}")
        channels = x_shape[axis]
        factors = [d for d in a_shape[1:] if d != 1]
        if channels is None or not (factors == [channels] or (channels == 1 and not factors)):
            raise ValueError(f"Axpy factor shape {a_shape} does not hold one value per channel "
                             f"of x {x_shape}")
        if len(y_shape) != rank or any(a is not None and b is not None and a != b
                                       for a, b in zip(x_shape[1:], y_shape[1:])):
            raise ValueError(f"Axpy x {x_shape} and y {y_shape} differ in shape")
        self._axis, self._rank = axis, rank
        super().build(input_shape)

    def call(self, inputs):
        a, x, y = inputs
        shape = [1] * self._rank
        shape[0], shape[self._axis] = -1, x.shape[self._axis]
        return ops.reshape(a, shape) * x + y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis)
        return config
