"""The Interp layer of PSPNet / DeepLab Caffe: bilinear resizing with corners aligned.

Caffe (``caffe_cpu_interp2``): the input is first cropped by ``-pad_beg`` rows/columns at the
start and ``-pad_end`` at the end (pads are <= 0), giving ``h1 x w1``; then for an output
``h2 x w2``, in float32::

    r   = (h1 - 1) / (h2 - 1)          (0 when h2 == 1)
    src = r * i;  i0 = int(src);  i1 = i0 + (1 if i0 < h1 - 1 else 0)
    l1  = src - i0;  l0 = 1 - l1

and ``y = lh0 * (lw0 * x[i0, j0] + lw1 * x[i0, j1]) + lh1 * (lw0 * x[i1, j0] + lw1 * x[i1, j1])``.
When the sizes already match Caffe copies the (cropped) input. The indices and weights depend only
on the shapes: they are computed in numpy when the layer is built, exactly as Caffe rounds them.
Keras' own resize has no ``align_corners``, hence this layer.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def interp_axis(size_in: int, size_out: int, offset: int = 0):
    """(first index, second index, weight of the first, weight of the second) per output
    position along one axis, Caffe's float32 arithmetic; indices include the crop offset."""
    f32 = np.float32
    ratio = f32(f32(size_in - 1) / f32(size_out - 1)) if size_out > 1 else f32(0.0)
    source = ratio * np.arange(size_out, dtype=f32)  # float32 products, as Caffe's
    first = source.astype(np.int64)  # truncation toward zero; source >= 0
    step = (first < size_in - 1).astype(np.int64)
    weight1 = (source - first.astype(f32)).astype(f32)
    weight0 = (f32(1.0) - weight1).astype(f32)
    return first + offset, first + step + offset, weight0, weight1


def bilinear_blend(x, rows, cols):
    """``lh0 * (lw0 * x[r0, c0] + lw1 * x[r0, c1]) + lh1 * (lw0 * x[r1, c0] + lw1 * x[r1, c1])``
    on an NHWC tensor; ``rows``/``cols`` are (first index, second index, first weight, second
    weight) per output row/column, as ``interp_axis`` gives them."""
    r0, r1, lh0, lh1 = rows
    c0, c1, lw0, lw1 = cols
    lh0 = ops.reshape(ops.convert_to_tensor(lh0, x.dtype), (1, -1, 1, 1))
    lh1 = ops.reshape(ops.convert_to_tensor(lh1, x.dtype), (1, -1, 1, 1))
    lw0 = ops.reshape(ops.convert_to_tensor(lw0, x.dtype), (1, 1, -1, 1))
    lw1 = ops.reshape(ops.convert_to_tensor(lw1, x.dtype), (1, 1, -1, 1))
    top = ops.take(x, r0, axis=1)
    bottom = ops.take(x, r1, axis=1)
    top = lw0 * ops.take(top, c0, axis=2) + lw1 * ops.take(top, c1, axis=2)
    bottom = lw0 * ops.take(bottom, c0, axis=2) + lw1 * ops.take(bottom, c1, axis=2)
    return lh0 * top + lh1 * bottom


@keras.saving.register_keras_serializable(package="caffe2keras")
class Interp(keras.layers.Layer):
    """Bilinear resize of an NHWC tensor to ``height x width`` after cropping ``-pad_beg`` /
    ``-pad_end`` from both spatial axes. A second input (a reference blob, as some forks take)
    is accepted and ignored: the size is fixed when the layer is made."""

    def __init__(self, height, width, pad_beg=0, pad_end=0, **kwargs):
        super().__init__(**kwargs)
        for field, value in (("height", height), ("width", width)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"Interp {field} must be a positive int, got {value!r}")
        for field, value in (("pad_beg", pad_beg), ("pad_end", pad_end)):
            if not _is_int(value) or value > 0:
                raise ValueError(f"Interp {field} must be an int <= 0 (Caffe only crops), "
                                 f"got {value!r}")
        self.height, self.width = height, width
        self.pad_beg, self.pad_end = pad_beg, pad_end

    @staticmethod
    def _image_shape(input_shape):
        if input_shape and isinstance(input_shape[0], (list, tuple)):
            return tuple(input_shape[0])
        return tuple(input_shape)

    def build(self, input_shape):
        shape = self._image_shape(input_shape)
        if len(shape) != 4 or shape[1] is None or shape[2] is None:
            raise ValueError(f"Interp needs an NHWC input with static height and width, got "
                             f"{shape}")
        crop = -self.pad_beg
        in_h = shape[1] + self.pad_beg + self.pad_end
        in_w = shape[2] + self.pad_beg + self.pad_end
        if in_h < 1 or in_w < 1:
            raise ValueError(f"Interp pads {self.pad_beg}, {self.pad_end} crop all of input "
                             f"{shape}")
        self._copy = (in_h, in_w) == (self.height, self.width)
        self._crop = (crop, in_h, in_w)
        self._rows = interp_axis(in_h, self.height, crop)
        self._cols = interp_axis(in_w, self.width, crop)
        super().build(input_shape)

    def call(self, inputs):
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        if self._copy:
            crop, in_h, in_w = self._crop
            return x[:, crop:crop + in_h, crop:crop + in_w, :]
        return bilinear_blend(x, self._rows, self._cols)

    def compute_output_shape(self, input_shape):
        shape = self._image_shape(input_shape)
        return (shape[0], self.height, self.width, shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, pad_beg=self.pad_beg,
                      pad_end=self.pad_end)
        return config
