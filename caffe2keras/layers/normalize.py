"""SSD's Normalize and Caffe's MVN: per-item normalisations.

Normalize (normalize_layer.cpp), with ``s`` the learned scale (one value, or one per channel):

* across_spatial: ``norm = sqrt(sum_{c,h,w} x^2 + eps)`` per item, ``y = x * (1 / norm) * s``;
* otherwise: ``norm = sqrt(eps + sum_c x^2)`` per item and position, ``y = x / norm * s``.

MVN (mvn_layer.cpp), over (H, W) per item and channel, or over (C, H, W) per item with
``across_channels``: ``y = x - mean``, then with ``normalize_variance``
``y = y / (sqrt(mean(y^2)) + eps)``. Caffe adds eps to the standard deviation, not to the variance.
"""

from __future__ import annotations

import keras
from keras import ops


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@keras.saving.register_keras_serializable(package="caffe2keras")
class Normalize(keras.layers.Layer):
    """L2 normalisation and a learned scale; ``axis`` is the channel axis (-1 for NHWC)."""

    def __init__(self, across_spatial=True, channel_shared=True, eps=1e-10, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(axis):
            raise ValueError(f"Normalize axis must be an int, got {axis!r}")
        self.across_spatial = bool(across_spatial)
        self.channel_shared = bool(channel_shared)
        self.eps = float(eps)
        self.axis = axis

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2:
            raise ValueError(f"Normalize needs an input with a channel axis, got shape "
                             f"{tuple(input_shape)}")
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"Normalize axis {self.axis} is not a non-batch axis of a rank-{rank} "
                             f"input")
        channels = input_shape[axis]
        if channels is None and not self.channel_shared:
            raise ValueError("Normalize with a per-channel scale needs a static channel count")
        self._axis = axis
        self._rank = rank
        self.scale = self.add_weight(shape=(1,) if self.channel_shared else (channels,),
                                     initializer="ones", name="scale")
        super().build(input_shape)

    def call(self, inputs):
        squares = ops.square(inputs)
        if self.across_spatial:
            total = ops.sum(squares, axis=tuple(range(1, self._rank)), keepdims=True)
            # Caffe multiplies by the reciprocal of the norm here, and divides below.
            y = inputs * (1.0 / ops.sqrt(total + self.eps))
        else:
            total = ops.sum(squares, axis=self._axis, keepdims=True)
            y = inputs / ops.sqrt(total + self.eps)
        scale = self.scale
        if not self.channel_shared:
            shape = [1] * self._rank
            shape[self._axis] = -1
            scale = ops.reshape(scale, shape)
        return y * scale

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(across_spatial=self.across_spatial, channel_shared=self.channel_shared,
                      eps=self.eps, axis=self.axis)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class MVN(keras.layers.Layer):
    """Mean (and variance) normalisation over ``axes``, the axes Caffe's MVN averages over
    in the Keras layout: (1, 2) for NHWC per channel, (1, 2, 3) across channels. An empty
    ``axes`` normalises each value alone (Caffe on an N x C blob without across_channels)."""

    def __init__(self, axes=(1, 2), normalize_variance=True, eps=1e-9, **kwargs):
        super().__init__(**kwargs)
        try:
            axes = tuple(axes)
        except TypeError:
            raise ValueError(f"MVN axes must be a sequence of ints, got {axes!r}") from None
        if not all(_is_int(a) and a >= 1 for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"MVN axes must be distinct non-batch axes, got {axes!r}")
        self.axes = axes
        self.normalize_variance = bool(normalize_variance)
        self.eps = float(eps)

    def build(self, input_shape):
        if any(a >= len(input_shape) for a in self.axes):
            raise ValueError(f"MVN axes {self.axes} do not fit an input of shape "
                             f"{tuple(input_shape)}")
        super().build(input_shape)

    def _mean(self, x):
        return ops.mean(x, axis=self.axes, keepdims=True) if self.axes else x

    def call(self, inputs):
        centred = inputs - self._mean(inputs)
        if not self.normalize_variance:
            return centred
        std = ops.sqrt(self._mean(ops.square(centred)))
        return centred / (std + self.eps)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(axes=list(self.axes), normalize_variance=self.normalize_variance,
                      eps=self.eps)
        return config
