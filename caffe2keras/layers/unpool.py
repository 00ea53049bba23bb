"""Max unpooling with Caffe's pooling mask: SegNet/ENet ``Upsample`` (two bottoms) and
``MaxUnPool``.

Caffe (upsample_layer.cpp of caffe-segnet/caffe-enet, maxunpool_layer.cpp): the top starts at
zero and each input value is written to ``top[mask]`` of its channel's output plane, the mask
being the flat index ``h * W + w`` a MAX Pooling stored in its second top.

A scatter has no exact, portable form (duplicate indices, backends and formats differ), so
this layer gathers instead, which is the same thing whenever the mask comes from a MAX
pooling whose windows do not overlap (kernel <= stride on both axes) over an input of the
output's size: then an output pixel ``o`` lies in exactly one window, ``(o + pad) // stride``,
and receives that window's value if the window's mask points at ``o``, else zero. The layer
repeats the input and the mask ``stride`` times along each axis, shifts by the pooling's pad,
and keeps the value where the repeated mask equals the pixel's own flat index. The converter
checks that the mask comes from such a pooling.

Near ties: a mask is a discrete choice. Where two pixels of a window hold values equal to
within the round-off of the layers before (which no two implementations of a convolution
compute bit for bit), Caffe and the converted model (or a runtime running its export) may name
different pixels, and the unpooled map then holds that value one pixel away from Caffe's. Fed
the same input, masks and unpooled maps are Caffe's exactly.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .pooling import _pair


def axis_plan(in_size: int, stride: int, pad: int, out_size: int) -> tuple[int, int]:
    """(start, zeros after) along one axis of the repeated input: rows ``start .. start +
    out_size`` of ``repeat(x, stride)``, padded with that many rows past its end."""
    return pad, max(pad + out_size - in_size * stride, 0)


@keras.saving.register_keras_serializable(package="caffe2keras")
class MaxUnpool2D(keras.layers.Layer):
    """Inputs ``[x, mask]`` (NHWC, same shape); output ``(N, *output_size, C)``.

    ``stride`` and ``pad`` are the MAX pooling's that made the mask (its kernel no larger than
    its stride); ``output_size`` is the unpooled (height, width), the pooling input's size.
    """

    def __init__(self, stride=(2, 2), pad=(0, 0), output_size=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.stride = _pair("stride", stride, 1)
        self.pad = _pair("pad", pad, 0)
        self.output_size = _pair("output_size", output_size, 1)

    def build(self, input_shape):
        x_shape, mask_shape = input_shape
        if len(x_shape) != 4 or x_shape[1] is None or x_shape[2] is None:
            raise ValueError("MaxUnpool2D needs NHWC inputs with a static height and width, got "
                             f"{tuple(x_shape)}")
        if tuple(x_shape[1:]) != tuple(mask_shape[1:]):
            raise ValueError(f"MaxUnpool2D: input {tuple(x_shape)} and mask "
                             f"{tuple(mask_shape)} differ")
        self.input_size = (int(x_shape[1]), int(x_shape[2]))
        self._plans = tuple(axis_plan(int(n), s, p, o) for n, s, p, o in
                            zip(x_shape[1:3], self.stride, self.pad, self.output_size))
        super().build(input_shape)

    def positions(self) -> np.ndarray:
        """(1, H, W, 1) float32: each output pixel's flat index ``h * W + w``."""
        height, width = self.output_size
        return np.arange(height * width, dtype=np.float32).reshape(1, height, width, 1)

    def _spread(self, t, fill):
        for axis, (stride, (start, after), size) in enumerate(
                zip(self.stride, self._plans, self.output_size), start=1):
            if stride > 1:
                t = ops.repeat(t, stride, axis=axis)
            if after:
                widths = [[0, 0]] * 4
                widths[axis] = [0, after]
                t = ops.pad(t, widths, constant_values=fill)
            index = [slice(None)] * 4
            index[axis] = slice(start, start + size)
            t = t[tuple(index)]
        return t

    def call(self, inputs):
        x, mask = inputs
        dtype = keras.backend.standardize_dtype(x.dtype)
        x = self._spread(x, 0.0)
        mask = self._spread(ops.cast(mask, dtype), -1.0)
        hit = ops.equal(mask, ops.convert_to_tensor(self.positions(), dtype=dtype))
        return ops.where(hit, x, ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        return (x_shape[0], *self.output_size, x_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(stride=self.stride, pad=self.pad, output_size=self.output_size)
        return config
