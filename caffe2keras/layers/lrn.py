"""Caffe's local response normalisation on channels-last tensors.

Caffe (n = local_size, odd; r = (n - 1) / 2):

* ACROSS_CHANNELS: ``scale_c = k + alpha / n * sum_{|c' - c| <= r} x_{c'}^2`` with the channel
  axis zero-padded, ``y = x * scale^-beta``. (TF's ``local_response_normalization`` is the same
  with ``depth_radius = r``, ``alpha = alpha / n``, ``bias = k``, but exists on one backend only.)
* WITHIN_CHANNEL: ``y = x * (1 + alpha / n^2 * sum_{n x n window} x^2)^-beta``, the spatial window
  zero-padded and the divisor always n^2; ``k`` is ignored (Caffe hard-codes 1).

Window sums are built from n shifted slices of the zero-padded squares, which is exact for any
channel count and uses nothing beyond ``keras.ops``.
"""

from __future__ import annotations

import keras
from keras import ops

ACROSS_CHANNELS = "across_channels"
WITHIN_CHANNEL = "within_channel"


def _window_sum(squares, axis: int, size: int):
    """Sum of ``size`` neighbours (centred, zero-padded) along ``axis`` of a rank-4 tensor."""
    radius = (size - 1) // 2
    pad_width = [[0, 0]] * 4
    pad_width[axis] = [radius, radius]
    padded = ops.pad(squares, pad_width)
    total = None
    for offset in range(size):
        # Slice [offset, offset + length) with an end that works for unknown lengths too.
        end = offset - (size - 1) or None
        index = [slice(None)] * 4
        index[axis] = slice(offset, end)
        part = padded[tuple(index)]
        total = part if total is None else total + part
    return total


@keras.saving.register_keras_serializable(package="caffe2keras")
class LRN(keras.layers.Layer):
    """Caffe's LRN layer on NHWC input; ``norm_region`` is "across_channels" or "within_channel"."""

    def __init__(self, local_size=5, alpha=1.0, beta=0.75, k=1.0,
                 norm_region=ACROSS_CHANNELS, **kwargs):
        super().__init__(**kwargs)
        if isinstance(local_size, bool) or not isinstance(local_size, int) or local_size < 1 \
                or local_size % 2 == 0:
            raise ValueError(f"LRN local_size must be a positive odd integer, got {local_size!r}")
        if norm_region not in (ACROSS_CHANNELS, WITHIN_CHANNEL):
            raise ValueError(f"LRN norm_region must be {ACROSS_CHANNELS!r} or "
                             f"{WITHIN_CHANNEL!r}, got {norm_region!r}")
        self.local_size = local_size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.norm_region = norm_region

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"LRN expects a rank-4 NHWC input, got shape {tuple(input_shape)}")
        super().build(input_shape)

    def call(self, inputs):
        squares = ops.square(inputs)
        n = self.local_size
        if self.norm_region == ACROSS_CHANNELS:
            scale = self.k + (self.alpha / n) * _window_sum(squares, 3, n)
        else:
            summed = _window_sum(_window_sum(squares, 1, n), 2, n)
            scale = 1.0 + (self.alpha / (n * n)) * summed
        return inputs * ops.power(scale, -self.beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(local_size=self.local_size, alpha=self.alpha, beta=self.beta, k=self.k,
                      norm_region=self.norm_region)
        return config
