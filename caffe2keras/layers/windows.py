"""Caffe's Im2col and SPP on NHWC tensors, and Parameter's blob.

Im2col: output channel ``c * k_h * k_w + i * k_w + j`` at (y, x) is input channel c at
(y * s_h - p_h + i * d_h, x * s_w - p_w + j * d_w), zero outside the input (im2col_cpu).
Taken as k_h * k_w strided slices of the zero-padded input: copies, no arithmetic.

SPP: level i pools (MAX or AVE, Caffe's rules: ``CaffePooling2D``) with the kernel, stride
and pad spp_layer.cpp derives from the input size; one level gives that pooling's map, more
give each level flattened in Caffe's (C, H, W) order, concatenated.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from caffe2keras.layers.pooling import CaffePooling2D


def _pairs(owner: str, name: str, value, minimum: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                 for v in pair):
        raise ValueError(f"{owner} {name} must be a pair of ints >= {minimum}, got {value!r}")
    return pair


@keras.saving.register_keras_serializable(package="caffe2keras")
class Im2col(keras.layers.Layer):
    """Caffe's Im2col of an NHWC tensor: (N, H_out, W_out, C * k_h * k_w)."""

    def __init__(self, kernel=(1, 1), stride=(1, 1), pad=(0, 0), dilation=(1, 1),
                 output_size=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.kernel = _pairs("Im2col", "kernel", kernel, 1)
        self.stride = _pairs("Im2col", "stride", stride, 1)
        self.pad = _pairs("Im2col", "pad", pad, 0)
        self.dilation = _pairs("Im2col", "dilation", dilation, 1)
        self.output_size = _pairs("Im2col", "output_size", output_size, 1)

    def window_starts(self):
        """[(row, column)] in the padded input of each kernel tap, in Caffe's order."""
        (kh, kw), (dh, dw) = self.kernel, self.dilation
        return [(i * dh, j * dw) for i in range(kh) for j in range(kw)]

    def call(self, inputs):
        (ph, pw), (sh, sw), (oh, ow) = self.pad, self.stride, self.output_size
        x = ops.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        taps = [x[:, r:r + (oh - 1) * sh + 1:sh, c:c + (ow - 1) * sw + 1:sw, :]
                for r, c in self.window_starts()]
        stacked = ops.stack(taps, axis=-1)  # (N, H_out, W_out, C, k_h * k_w)
        return ops.reshape(stacked, (-1, oh, ow, inputs.shape[-1] * len(taps)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3] * self.kernel[0] * self.kernel[1])

    def get_config(self):
        config = super().get_config()
        config.update(kernel=self.kernel, stride=self.stride, pad=self.pad,
                      dilation=self.dilation, output_size=self.output_size)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class SpatialPyramidPooling(keras.layers.Layer):
    """Caffe's SPP of an NHWC tensor. ``levels``: one (kernel, stride, pad, output_size)
    per pyramid level, each a (h, w) pair. One level: (N, h, w, C); more: (N, sum C*h*w)."""

    def __init__(self, pool="max", levels=(((1, 1), (1, 1), (0, 0), (1, 1)),), **kwargs):
        super().__init__(**kwargs)
        if not levels:
            raise ValueError("SpatialPyramidPooling needs at least one level")
        self.pool = pool
        self.levels = tuple(tuple(_pairs("SpatialPyramidPooling", "level", part, 0)
                                  for part in level) for level in levels)
        self.poolings = [CaffePooling2D(pool=pool, kernel=k, stride=s, pad=p, output_size=o,
                                        name=f"level{i}")
                         for i, (k, s, p, o) in enumerate(self.levels)]

    def build(self, input_shape):
        for pooling in self.poolings:
            pooling.build(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        if len(self.poolings) == 1:
            return self.poolings[0](inputs)
        flat = []
        for pooling in self.poolings:
            y = ops.transpose(pooling(inputs), (0, 3, 1, 2))  # Caffe flattens C, H, W
            flat.append(ops.reshape(y, (-1, int(np.prod(y.shape[1:])))))
        return ops.concatenate(flat, axis=1)

    def compute_output_shape(self, input_shape):
        channels = input_shape[3]
        if len(self.levels) == 1:
            return (input_shape[0], *self.levels[0][3], channels)
        return (input_shape[0], sum(channels * h * w for *_, (h, w) in self.levels))

    def get_config(self):
        config = super().get_config()
        config.update(pool=self.pool, levels=self.levels)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class Parameter(keras.layers.Layer):
    """Caffe's Parameter: its blob, whose axis 0 has size 1, repeated for every item of the
    batch of the tensor it is called on (whose values it never reads). The weight has the
    blob's Keras layout, (1, ...)."""

    def __init__(self, shape=(1, 1), **kwargs):
        super().__init__(**kwargs)
        shape = tuple(shape) if isinstance(shape, (list, tuple)) else ()
        if not shape or shape[0] != 1 or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(f"Parameter shape must be (1, ...) of positive ints, got {shape!r}")
        self.shape = shape

    def build(self, input_shape):
        self.blob = self.add_weight(name="blob", shape=self.shape)
        super().build(input_shape)

    def call(self, inputs):
        # zeros + blob rather than broadcast_to: a new tensor, not a view of the weight
        # (PyTorch would hand out the parameter itself, gradient and all)
        zeros = ops.zeros((ops.shape(inputs)[0], *self.shape[1:]), dtype=self.blob.dtype)
        return zeros + self.blob

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update(shape=self.shape)
        return config
