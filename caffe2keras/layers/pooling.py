"""Caffe's MAX and AVE pooling on channels-last tensors, window for window.

Caffe's windows along one axis (input length L, kernel k, stride s, pad p, output o):
``start = i*s - p``. MAX takes the maximum over ``[max(start, 0), min(start + k, L))`` so padding
never wins. AVE sums the real pixels of the same clipped window but divides by
``(min(start + k, L + p) - start)`` per axis, computed *before* clipping: symmetric padding counts
in the divisor, the ceil overhang beyond ``L + p`` does not.

Emulation: pad ``p`` before and ``(o-1)*s + k - L - p`` after (cropping instead when that is
negative), then 'valid' pooling. MAX pads with -FLT_MAX, Caffe's initial value for every window
(for float32 and float64 alike): padding never beats a real pixel, no -inf reaches any backend,
and a window holding no pixel gives -FLT_MAX as in Caffe. AVE pads with zeros, takes the 'valid'
mean over k_h*k_w pixels and multiplies by a constant map ``k_h*k_w / divisor`` computed in numpy
from the static input shape. The caller supplies Caffe's output size (ceil or floor, then the
rule that the last window must start before ``L + p`` when ``p > 0``).

Caffe quirk kept on purpose: with ceil rounding, no padding and stride > kernel, the last window
can start past the image. Caffe then outputs -FLT_MAX (MAX) and 0 / 0 = NaN (AVE); so does this
layer.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

MAX = "max"
AVE = "ave"
FLT_MAX = float(np.finfo(np.float32).max)  # Caffe's MAX starts every window at -FLT_MAX


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                 for v in pair):
        raise ValueError(f"CaffePooling2D {name} must be an int or a pair of ints >= {minimum}, "
                         f"got {value!r}")
    return pair


def _axis_plan(length: int, kernel: int, stride: int, pad: int, out: int):
    """Padding after the input (negative: crop) and the AVE divisor of each window, one axis."""
    needed = (out - 1) * stride + kernel  # padded length the output windows span
    after = needed - length - pad
    starts = np.arange(out) * stride - pad
    divisors = np.minimum(starts + kernel, length + pad) - starts
    return after, divisors


class _CaffeWindows(keras.layers.Layer):
    """Caffe's pooling windows over an NHWC tensor with a static height and width: the
    (h, w) ``kernel``, ``stride``, ``pad`` and ``output_size`` pairs (an int means both), and
    ``_padded`` (the input cropped or padded so that 'valid' windows are Caffe's)."""

    def __init__(self, kernel=(2, 2), stride=(1, 1), pad=(0, 0), output_size=(1, 1), **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        self.kernel = _pair("kernel", kernel, 1)
        self.stride = _pair("stride", stride, 1)
        self.pad = _pair("pad", pad, 0)
        self.output_size = _pair("output_size", output_size, 1)
        for axis, k, p in zip("hw", self.kernel, self.pad):
            if p >= k:
                raise ValueError(f"{what} pad_{axis} must be smaller than kernel_{axis} "
                                 f"(as Caffe requires), got pad={self.pad}, kernel={self.kernel}")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"{type(self).__name__} needs an NHWC input with a static height "
                             f"and width, got shape {tuple(input_shape)}")
        self._in_size = (int(input_shape[1]), int(input_shape[2]))
        self._divisors = []
        afters = []
        for length, k, s, p, o in zip(self._in_size, self.kernel, self.stride, self.pad,
                                      self.output_size):
            after, divisor = _axis_plan(length, k, s, p, o)
            afters.append(int(after))
            self._divisors.append(divisor)
        self._pad_after = tuple(afters)
        super().build(input_shape)

    def padding(self):
        """(before, after) padding per spatial axis; a negative after crops."""
        return [(self.pad[0], self._pad_after[0]), (self.pad[1], self._pad_after[1])]

    def _padded(self, x, fill):
        # Crop trailing pixels no window reaches (when the after-padding would be negative).
        crop_h = -min(self._pad_after[0], 0) or None
        crop_w = -min(self._pad_after[1], 0) or None
        if crop_h or crop_w:
            x = x[:, :-crop_h if crop_h else None, :-crop_w if crop_w else None, :]
        pad_width = [[0, 0],
                     [self.pad[0], max(self._pad_after[0], 0)],
                     [self.pad[1], max(self._pad_after[1], 0)],
                     [0, 0]]
        return ops.pad(x, pad_width, constant_values=fill)

    def get_config(self):
        config = super().get_config()
        config.update(kernel=self.kernel, stride=self.stride, pad=self.pad,
                      output_size=self.output_size)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class CaffePooling2D(_CaffeWindows):
    """Caffe pooling of an NHWC tensor with a static height and width.

    ``pool`` is "max" or "ave"; ``kernel``, ``stride``, ``pad`` and ``output_size`` are (h, w)
    pairs (an int means both), ``output_size`` being the size Caffe computes.
    """

    def __init__(self, pool=MAX, kernel=(2, 2), stride=(1, 1), pad=(0, 0), output_size=(1, 1),
                 **kwargs):
        if pool not in (MAX, AVE):
            raise ValueError(f"CaffePooling2D pool must be {MAX!r} or {AVE!r}, got {pool!r}")
        super().__init__(kernel=kernel, stride=stride, pad=pad, output_size=output_size,
                         **kwargs)
        self.pool = pool

    def build(self, input_shape):
        super().build(input_shape)
        if self.pool == AVE:
            window = self.kernel[0] * self.kernel[1]
            divisor = np.outer(self._divisors[0], self._divisors[1]).astype(np.float64)
            with np.errstate(divide="ignore"):  # empty windows: 0 * inf = NaN, as Caffe's 0 / 0
                self._ave_factor = (window / divisor).astype(np.float32)[None, :, :, None]

    def call(self, inputs):
        if self.pool == MAX:
            x = self._padded(inputs, -FLT_MAX)
            return ops.max_pool(x, self.kernel, self.stride, padding="valid",
                                data_format="channels_last")
        x = self._padded(inputs, 0.0)
        mean = ops.average_pool(x, self.kernel, self.stride, padding="valid",
                                data_format="channels_last")
        dtype = keras.backend.standardize_dtype(mean.dtype)
        return mean * ops.convert_to_tensor(self._ave_factor, dtype=dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(pool=self.pool)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class CaffeMaxPoolingWithMask(_CaffeWindows):
    """Caffe MAX pooling with its second top: outputs ``[max, mask]``, both NHWC.

    ``mask`` holds, as float32, Caffe's flat index ``h * W + w`` of each window's maximum within
    its channel's input plane (pooling_layer.cpp; exact up to 2**24 pixels a plane). Caffe
    scans the clipped window row by row and keeps a value only if it is strictly greater than
    the best so far (starting from -FLT_MAX with index -1): the first maximum wins, padding
    never does, a NaN is never taken, and a window with no value above -FLT_MAX keeps -FLT_MAX
    and index -1. This layer makes the same scan over the ``kernel_h * kernel_w`` window
    offsets, each a strided slice of the input padded with -FLT_MAX, with the same strict
    comparison.
    """

    def offset_plan(self):
        """[(dy, dx, index map (out_h, out_w) float32)] in Caffe's scan order; the map holds
        the flat input index each window's pixel at offset (dy, dx) has (unused where the
        pixel is padding: padding never wins)."""
        (oh, ow), (kh, kw), (sh, sw), (ph, pw) = (self.output_size, self.kernel, self.stride,
                                                  self.pad)
        width = self._in_size[1]
        rows = np.arange(oh) * sh - ph
        cols = np.arange(ow) * sw - pw
        return [(dy, dx, ((rows[:, None] + dy) * width + (cols[None, :] + dx)).astype(np.float32))
                for dy in range(kh) for dx in range(kw)]

    def call(self, inputs):
        x = self._padded(inputs, -FLT_MAX)
        dtype = keras.backend.standardize_dtype(x.dtype)
        (oh, ow), (sh, sw) = self.output_size, self.stride
        best = mask = None
        for dy, dx, index in self.offset_plan():
            value = x[:, dy:dy + (oh - 1) * sh + 1:sh, dx:dx + (ow - 1) * sw + 1:sw, :]
            where = ops.convert_to_tensor(index[None, :, :, None], dtype=dtype)
            if best is None:
                best, mask = ops.full_like(value, -FLT_MAX), ops.full_like(value, -1.0)
            take = ops.greater(value, best)
            best = ops.where(take, value, best)
            mask = ops.where(take, where, mask)
        return [best, mask]

    def compute_output_shape(self, input_shape):
        shape = (input_shape[0], *self.output_size, input_shape[3])
        return [shape, shape]
