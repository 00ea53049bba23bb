"""Caffe's data-moving layers that Keras has no layer for: Crop, Slice, Tile, ArgMax, Reduction.

Every axis argument names an axis of the *Keras* tensor (the converter maps Caffe's NCHW axes to
NHWC); axis 0, the batch, is never sliced, cropped or reduced.

* ``Crop``: ``x[..., offset : offset + size, ...]`` on the listed axes; Caffe's second bottom
  (the reference) may be passed as a second input and only anchors the graph, its values are
  never read (the sizes come from Caffe's shape inference).
* ``Slice``: cuts one axis at ``points`` into ``len(points) + 1`` outputs.
* ``Tile``: repeats the tensor ``tiles`` times along one axis, the whole block each time
  (Caffe copies ``count(axis)`` elements per repeat): ``[a, b] -> [a, b, a, b]``.
* ``ArgMax``: Caffe's ranking: values in descending order, equal values by *descending* index
  (``std::partial_sort`` with ``std::greater`` on (value, index) pairs). With ``axis`` the output
  holds the top_k indices, or the top_k values with ``out_max_val``; without it each item's
  features are flattened (in the tensor's order: the converter puts them in Caffe's order
  first) and the output is (N, 1, top_k) indices, or (N, 2, top_k) indices then values.
  Indices are float32, as Caffe stores them.
* ``Reduction``: SUM ``Σx``, ASUM ``Σ|x|``, SUMSQ ``Σx²``, MEAN ``Σx / count``, times
  ``coeff``, over the listed axes (Caffe reduces every axis from ``axis`` on).
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_list(layer: str, name: str, values, minimum: int) -> list[int]:
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{layer} {name} must be a sequence of ints, got {values!r}") from None
    if not all(_is_int(v) and v >= minimum for v in values):
        raise ValueError(f"{layer} {name} must be ints >= {minimum}, got {values!r}")
    return [int(v) for v in values]


def _tensor_axis(layer: str, axis: int, rank: int) -> int:
    """A non-batch axis of a rank-``rank`` tensor (negative counts from the end)."""
    resolved = axis + rank if axis < 0 else axis
    if not 1 <= resolved < rank:
        raise ValueError(f"{layer} axis {axis} is not a non-batch axis of a rank-{rank} input")
    return resolved


def _first(input_shape):
    """The shape of the first input when a layer is given [x, reference]."""
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        return tuple(input_shape[0])
    return tuple(input_shape)


@keras.saving.register_keras_serializable(package="caffe2keras")
class Crop(keras.layers.Layer):
    """x (or [x, reference]) -> x cut to ``sizes[i]`` from ``offsets[i]`` on ``axes[i]``."""

    def __init__(self, axes, offsets, sizes, **kwargs):
        super().__init__(**kwargs)
        self.axes = _int_list("Crop", "axes", axes, 1)
        self.offsets = _int_list("Crop", "offsets", offsets, 0)
        self.sizes = _int_list("Crop", "sizes", sizes, 1)
        if not len(self.axes) == len(self.offsets) == len(self.sizes):
            raise ValueError(f"Crop needs one offset and one size per axis, got axes {self.axes}, "
                             f"offsets {self.offsets}, sizes {self.sizes}")
        if len(set(self.axes)) != len(self.axes):
            raise ValueError(f"Crop axes {self.axes} repeat an axis")

    def build(self, input_shape):
        shape = _first(input_shape)
        for axis, offset, size in zip(self.axes, self.offsets, self.sizes):
            if axis >= len(shape):
                raise ValueError(f"Crop axis {axis} is out of range for input shape {shape}")
            if shape[axis] is not None and offset + size > shape[axis]:
                raise ValueError(f"Crop of {size} at offset {offset} does not fit axis {axis} of "
                                 f"input shape {shape}")
        super().build(input_shape)

    def call(self, inputs):
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        index = [slice(None)] * len(x.shape)
        for axis, offset, size in zip(self.axes, self.offsets, self.sizes):
            index[axis] = slice(offset, offset + size)
        return x[tuple(index)]

    def compute_output_shape(self, input_shape):
        shape = list(_first(input_shape))
        for axis, size in zip(self.axes, self.sizes):
            shape[axis] = size
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(axes=list(self.axes), offsets=list(self.offsets), sizes=list(self.sizes))
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class Slice(keras.layers.Layer):
    """x -> [x[.., :p0], x[.., p0:p1], ..., x[.., p_last:]] along ``axis`` (not the batch)."""

    def __init__(self, axis, points, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(axis):
            raise ValueError(f"Slice axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.points = _int_list("Slice", "points", points, 1)
        if not self.points or any(b <= a for a, b in zip(self.points, self.points[1:])):
            raise ValueError(f"Slice points must be a non-empty strictly increasing sequence, "
                             f"got {self.points}")

    def _bounds(self, shape):
        axis = _tensor_axis("Slice", self.axis, len(shape))
        size = shape[axis]
        if size is None:
            raise ValueError(f"Slice needs a static size on axis {self.axis}, got {tuple(shape)}")
        if self.points[-1] >= size:
            raise ValueError(f"Slice points {self.points} must lie inside axis {self.axis} of "
                             f"size {size}")
        edges = [0] + self.points + [size]
        return axis, list(zip(edges, edges[1:]))

    def build(self, input_shape):
        self._bounds(tuple(input_shape))
        super().build(input_shape)

    def call(self, inputs):
        axis, bounds = self._bounds(tuple(inputs.shape))
        index = [slice(None)] * len(inputs.shape)
        parts = []
        for start, stop in bounds:
            index[axis] = slice(start, stop)
            parts.append(inputs[tuple(index)])
        return parts

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis, bounds = self._bounds(tuple(shape))
        return [tuple(shape[:axis] + [stop - start] + shape[axis + 1:]) for start, stop in bounds]

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, points=list(self.points))
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class Tile(keras.layers.Layer):
    """x repeated ``tiles`` times along ``axis`` (the whole block each time, like np.tile)."""

    def __init__(self, axis, tiles, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(axis):
            raise ValueError(f"Tile axis must be an int, got {axis!r}")
        if not _is_int(tiles) or tiles < 1:
            raise ValueError(f"Tile tiles must be a positive int, got {tiles!r}")
        self.axis, self.tiles = int(axis), int(tiles)

    def _axis(self, rank: int) -> int:
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 0 <= axis < rank:
            raise ValueError(f"Tile axis {self.axis} is out of range for a rank-{rank} input")
        return axis

    def call(self, inputs):
        repeats = [1] * len(inputs.shape)
        repeats[self._axis(len(inputs.shape))] = self.tiles
        return ops.tile(inputs, repeats)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = self._axis(len(shape))
        shape[axis] = None if shape[axis] is None else shape[axis] * self.tiles
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, tiles=self.tiles)
        return config


def _caffe_top_k(x, axis: int, k: int):
    """(indices, values) of the k largest entries along ``axis``, ordered as Caffe orders them:
    descending value, equal values by descending index. Exact for any ties (a backend's top_k
    makes no promise about ties), k passes over the tensor."""
    size = x.shape[axis]
    shape = [1] * len(x.shape)
    shape[axis] = size
    position = ops.reshape(ops.arange(size, dtype="float32"), shape)
    taken = ops.zeros_like(x, dtype="bool")
    indices, values = [], []
    for _ in range(k):
        best = ops.max(ops.where(taken, -np.inf, x), axis=axis, keepdims=True)
        candidate = ops.logical_and(ops.equal(x, best), ops.logical_not(taken))
        index = ops.max(ops.where(candidate, position, -1.0), axis=axis, keepdims=True)
        taken = ops.logical_or(taken, ops.equal(position, index))
        indices.append(index)
        values.append(best)
    return ops.concatenate(indices, axis=axis), ops.concatenate(values, axis=axis)


@keras.saving.register_keras_serializable(package="caffe2keras")
class ArgMax(keras.layers.Layer):
    """Caffe's ArgMax: top_k indices (or values) along ``axis``, or per flattened item."""

    def __init__(self, top_k=1, out_max_val=False, axis=None, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(top_k) or top_k < 1:
            raise ValueError(f"ArgMax top_k must be a positive int, got {top_k!r}")
        if axis is not None and not _is_int(axis):
            raise ValueError(f"ArgMax axis must be None or an int, got {axis!r}")
        self.top_k = int(top_k)
        self.out_max_val = bool(out_max_val)
        self.axis = None if axis is None else int(axis)

    def _check(self, shape):
        if self.axis is None:
            features = shape[1:]
            if any(d is None for d in features):
                raise ValueError(f"ArgMax needs static feature sizes, got input {tuple(shape)}")
            available = math.prod(features)
        else:
            axis = _tensor_axis("ArgMax", self.axis, len(shape))
            available = shape[axis]
        if available is not None and self.top_k > available:
            raise ValueError(f"ArgMax top_k {self.top_k} exceeds the {available} values it ranks "
                             f"in input {tuple(shape)}")

    def build(self, input_shape):
        self._check(tuple(input_shape))
        super().build(input_shape)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.axis is not None:
            indices, values = _caffe_top_k(x, _tensor_axis("ArgMax", self.axis, len(x.shape)),
                                           self.top_k)
            return values if self.out_max_val else indices
        flat = ops.reshape(x, (-1, math.prod(x.shape[1:])))
        indices, values = _caffe_top_k(flat, 1, self.top_k)
        parts = [indices, values] if self.out_max_val else [indices]
        return ops.stack(parts, axis=1)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.axis is None:
            return (shape[0], 2 if self.out_max_val else 1, self.top_k)
        shape[_tensor_axis("ArgMax", self.axis, len(shape))] = self.top_k
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(top_k=self.top_k, out_max_val=self.out_max_val, axis=self.axis)
        return config


REDUCTIONS = ("SUM", "ASUM", "SUMSQ", "MEAN")


@keras.saving.register_keras_serializable(package="caffe2keras")
class Reduction(keras.layers.Layer):
    """coeff * SUM / ASUM / SUMSQ / MEAN over ``axes`` (non-batch axes, dropped from the output)."""

    def __init__(self, operation="SUM", axes=(1,), coeff=1.0, **kwargs):
        super().__init__(**kwargs)
        if operation not in REDUCTIONS:
            raise ValueError(f"Reduction operation must be one of {', '.join(REDUCTIONS)}, "
                             f"got {operation!r}")
        self.operation = operation
        self.axes = _int_list("Reduction", "axes", axes, 1)
        if not self.axes or len(set(self.axes)) != len(self.axes):
            raise ValueError(f"Reduction axes must be distinct and non-empty, got {self.axes}")
        finite = isinstance(coeff, numbers.Real) and math.isfinite(coeff)
        if isinstance(coeff, bool) or not finite:
            raise ValueError(f"Reduction coeff must be a finite number, got {coeff!r}")
        self.coeff = float(coeff)

    def build(self, input_shape):
        rank = len(input_shape)
        if max(self.axes) >= rank:
            raise ValueError(f"Reduction axes {self.axes} are out of range for input shape "
                             f"{tuple(input_shape)}")
        if self.operation == "MEAN" and any(input_shape[a] is None for a in self.axes):
            raise ValueError(f"Reduction MEAN needs static sizes on axes {self.axes}, got "
                             f"{tuple(input_shape)}")
        super().build(input_shape)

    def call(self, inputs):
        axes = tuple(self.axes)
        if self.operation == "ASUM":
            inputs = ops.abs(inputs)
        elif self.operation == "SUMSQ":
            inputs = ops.square(inputs)
        y = ops.sum(inputs, axis=axes)
        # Caffe: coeff /= count for MEAN (in float32), then top *= coeff.
        factor = np.float32(self.coeff)
        if self.operation == "MEAN":
            factor = factor / np.float32(math.prod(inputs.shape[a] for a in axes))
        return y if factor == 1 else y * float(factor)

    def compute_output_shape(self, input_shape):
        return tuple(d for i, d in enumerate(input_shape) if i not in self.axes)

    def get_config(self):
        config = super().get_config()
        config.update(operation=self.operation, axes=list(self.axes), coeff=self.coeff)
        return config
