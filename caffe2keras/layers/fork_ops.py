"""Layers of the Caffe forks (and of later BVLC Caffe) that Keras has no exact equivalent for.

Formulas, from each layer's C++ ``Forward_cpu``:

* Clip (BVLC ``clip_layer.cpp``): ``y = max(min, min(x, max))`` (so ``min`` wins when
  ``min > max``).
* Swish (BVLC ``swish_layer.cpp``): ``y = x * sigmoid(beta * x)``.
* CaffePad (converter fork ``pad_layer.cpp``): the height and width axes padded by
  ``((top, bottom), (left, right))`` with a constant, with the edge values repeated
  (``REPLICATE``), or mirrored without repeating the edge (``REFLECT``).
* BilinearResize: the two bilinear resizes of the converter fork, which differ in where an
  output pixel samples the input (see ``resize_axis``).

Not here because Keras is exact: HardSwish (``Activation("hard_silu")``), Mish
(``Activation("mish")``), Swish with beta 1 (``Activation("silu")``), zero padding and
cropping (``ZeroPadding2D``, ``Cropping2D``).
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops

from caffe2keras.layers.resize import bilinear_blend


def _number(layer: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{layer} {name} must be a finite number, got {value!r}")
    return float(value)


def _positive_int(layer: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{layer} {name} must be a positive int, got {value!r}")
    return value


@keras.saving.register_keras_serializable(package="caffe2keras")
class Clip(keras.layers.Layer):
    """y = max(min, min(x, max)), Caffe's order."""

    def __init__(self, min=0.0, max=0.0, **kwargs):  # noqa: A002  (Caffe's field names)
        super().__init__(**kwargs)
        self.min = _number("Clip", "min", min)
        self.max = _number("Clip", "max", max)

    def call(self, inputs):
        return ops.maximum(ops.minimum(inputs, self.max), self.min)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(min=self.min, max=self.max)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class Swish(keras.layers.Layer):
    """y = x * sigmoid(beta * x)."""

    def __init__(self, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = _number("Swish", "beta", beta)

    def call(self, inputs):
        return inputs * ops.sigmoid(inputs * self.beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(beta=self.beta)
        return config


PAD_MODES = ("constant", "edge", "reflect")


@keras.saving.register_keras_serializable(package="caffe2keras")
class CaffePad(keras.layers.Layer):
    """Pad the height and width of an NHWC tensor: ``padding`` is ((top, bottom), (left,
    right)), all >= 0; ``mode`` "constant" (with ``value``), "edge" or "reflect"."""

    def __init__(self, padding=((0, 0), (0, 0)), mode="constant", value=0.0, **kwargs):
        super().__init__(**kwargs)
        try:
            (top, bottom), (left, right) = padding
        except (TypeError, ValueError):
            raise ValueError(f"CaffePad padding must be ((top, bottom), (left, right)), got "
                             f"{padding!r}") from None
        for amount in (top, bottom, left, right):
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise ValueError(f"CaffePad pads must be ints >= 0, got {padding!r}")
        if mode not in PAD_MODES:
            raise ValueError(f"CaffePad mode must be one of {PAD_MODES}, got {mode!r}")
        self.padding = ((top, bottom), (left, right))
        self.mode = mode
        self.value = _number("CaffePad", "value", value)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"CaffePad needs an NHWC input, got {input_shape}")
        if self.mode == "reflect":
            for (before, after), size in zip(self.padding, input_shape[1:3]):
                if size is not None and max(before, after) >= size:
                    raise ValueError(f"CaffePad reflect pads {self.padding} must be smaller "
                                     f"than the input's height and width {input_shape[1:3]}")
        super().build(input_shape)

    def call(self, inputs):
        widths = ((0, 0), *self.padding, (0, 0))
        if self.mode == "constant":
            return ops.pad(inputs, widths, mode="constant", constant_values=self.value)
        if self.mode == "reflect":
            return ops.pad(inputs, widths, mode="reflect")
        # "edge": TensorFlow's pad has no such mode; repeat the first and last rows, then
        # the first and last columns of the result (Caffe's order)
        x = inputs
        for axis, (before, after) in zip((1, 2), self.padding):
            size = x.shape[axis]
            parts = [x]
            if before:
                first = ops.take(x, [0], axis=axis)
                parts.insert(0, ops.repeat(first, before, axis=axis))
            if after:
                last = ops.take(x, [size - 1], axis=axis)
                parts.append(ops.repeat(last, after, axis=axis))
            x = ops.concatenate(parts, axis=axis) if len(parts) > 1 else x
        return x

    def compute_output_shape(self, input_shape):
        (top, bottom), (left, right) = self.padding
        n, h, w, c = input_shape
        return (n, None if h is None else h + top + bottom,
                None if w is None else w + left + right, c)

    def get_config(self):
        config = super().get_config()
        config.update(padding=[list(pair) for pair in self.padding], mode=self.mode,
                      value=self.value)
        return config


# How an output pixel samples the input, per resize of the converter fork:
#   "asymmetric": resize_layer.cpp (BiLinearResizeMat_cpu): src = i * (in / out); the
#       neighbour past the last row/column counts as 0 (its term is skipped);
#   "align_corners", "half_pixel": bilinear_interpolate_layer.cpp: src = i * (in-1)/(out-1),
#       or (i + 0.5) * in / out - 0.5; clamped to [0, in - 1], neighbours clamped inside.
COORDINATES = ("asymmetric", "align_corners", "half_pixel")


def resize_axis(size_in: int, size_out: int, coordinates: str):
    """(first index, second index, weight of the first, weight of the second) per output
    position along one axis, in Caffe's float32 arithmetic. For "asymmetric" the second
    index may be ``size_in``: a zero row/column the layer appends."""
    f32 = np.float32
    i = np.arange(size_out)
    if coordinates == "asymmetric":
        scale = f32(f32(size_in) / f32(size_out))
        source = (i.astype(f32) * scale).astype(f32)
        first = np.floor(source).astype(np.int64)
        fraction = (source - first.astype(f32)).astype(f32)
        return first, first + 1, np.abs(f32(1) - fraction).astype(f32), np.abs(fraction)
    if coordinates == "align_corners":
        ratio = f32(f32(size_in - 1) / f32(size_out - 1))
        source = (ratio * i.astype(f32)).astype(f32)
    else:  # half_pixel: float ratio times a double (i + 0.5), minus 0.5, stored as float
        ratio = f32(f32(size_in) / f32(size_out))
        source = (np.float64(ratio) * (i + 0.5) - 0.5).astype(f32)
    source = np.clip(source, f32(0), f32(size_in - 1)).astype(f32)
    first = np.clip(np.floor(source).astype(np.int64), 0, size_in - 2)
    second = first + 1
    return (first, second, (second.astype(f32) - source).astype(f32),
            (source - first.astype(f32)).astype(f32))


@keras.saving.register_keras_serializable(package="caffe2keras")
class BilinearResize(keras.layers.Layer):
    """Bilinear resize of an NHWC tensor to ``height x width``, sampling as ``coordinates``
    says (see ``COORDINATES``). Indices and weights depend only on the shapes: numpy
    computes them when the layer is built, rounding as Caffe does; the blend is
    ``w_h0 * (w_w0 * x00 + w_w1 * x01) + w_h1 * (w_w0 * x10 + w_w1 * x11)``."""

    def __init__(self, height, width, coordinates="asymmetric", **kwargs):
        super().__init__(**kwargs)
        self.height = _positive_int("BilinearResize", "height", height)
        self.width = _positive_int("BilinearResize", "width", width)
        if coordinates not in COORDINATES:
            raise ValueError(f"BilinearResize coordinates must be one of {COORDINATES}, got "
                             f"{coordinates!r}")
        self.coordinates = coordinates

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"BilinearResize needs an NHWC input with static height and "
                             f"width, got {input_shape}")
        in_h, in_w = input_shape[1], input_shape[2]
        if self.coordinates != "asymmetric" and min(in_h, in_w) < 2:
            raise ValueError(f"BilinearResize ({self.coordinates}) needs an input of at least "
                             f"2x2, got {in_h}x{in_w}")
        if self.coordinates == "align_corners" and min(self.height, self.width) < 2:
            raise ValueError("BilinearResize (align_corners) needs an output of at least 2x2")
        # "asymmetric" reads one zero row and column past the input's end
        self._pad = self.coordinates == "asymmetric"
        self._rows = resize_axis(in_h, self.height, self.coordinates)
        self._cols = resize_axis(in_w, self.width, self.coordinates)
        super().build(input_shape)

    def call(self, inputs):
        x = inputs
        if self._pad:
            x = ops.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
        return bilinear_blend(x, self._rows, self._cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, coordinates=self.coordinates)
        return config
