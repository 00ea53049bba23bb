"""Caffe's Scale and Bias layers: a per-position factor or offset broadcast over a tensor.

Caffe's scale (or bias) has the shape of the axes it covers,
``bottom.shape[axis : axis + num_axes]`` (num_axes -1: to the end, 0: a scalar), and is broadcast
over the others. Here the covered axes are given in the *Keras* tensor's terms, in one of two ways:

* ``axis`` (an int) with ``num_axes`` (None means 1, -1 to the end, 0 a scalar): the axes
  ``axis, axis + 1, ...``, as in Caffe. Caffe's channel axis 1 is -1 in NHWC; Caffe's (C, H, W)
  on NCHW is ``axis=1, num_axes=3`` with the parameter transposed to (H, W, C).
* ``axes`` (a sequence of tensor axes, in the order of the parameter's own dimensions) for
  coverings that are not contiguous once NCHW becomes NHWC: Caffe's (C, H) is ``axes=(3, 1)`` and
  the parameter keeps Caffe's (C, H) layout, the layer transposes it. ``axis`` and ``num_axes``
  must then stay at their defaults. A sequence passed as ``axis`` is taken as ``axes``. (The
  config always stores it as ``axes``: Keras's legacy .h5 loader drops a list-valued ``axis``.)

Four classes, one per Caffe configuration, share that axis handling:

* ``Scale``: learned ``gamma`` (and ``beta`` with ``bias_term``), y = x * gamma (+ beta).
* ``ScaleByInput``: inputs [x, s], y = x * s (+ learned ``beta`` with ``bias_term``), Caffe's Scale
  with two bottoms. ``s`` may cover the batch axis (SE blocks: Caffe axis 0 of (N, C) is
  ``axes=(0, 3)``).
* ``Bias``: learned ``bias``, y = x + bias.
* ``BiasByInput``: inputs [x, b], y = x + b.
"""

from __future__ import annotations

import keras
from keras import ops


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _covered_axes(name: str, axis: int, num_axes, axes, rank: int) -> tuple[int, ...]:
    """The tensor axes the parameter covers, in the parameter's own dimension order."""
    if axes is not None:
        covered = tuple(a + rank if a < 0 else a for a in axes)
        if not all(0 <= a < rank for a in covered) or len(set(covered)) != len(covered):
            raise ValueError(f"{name} axes {tuple(axes)} must name distinct axes of a rank-{rank} "
                             f"input")
        return covered
    first = axis + rank if axis < 0 else axis
    if not 0 <= first < rank:
        raise ValueError(f"{name} axis {axis} is out of range for a rank-{rank} input")
    count = 1 if num_axes is None else (rank - first if num_axes == -1 else num_axes)
    if first + count > rank:
        raise ValueError(f"{name} axis {axis} with num_axes {num_axes} runs past the end of "
                         f"a rank-{rank} input")
    return tuple(range(first, first + count))


def _broadcastable(param, axes: tuple[int, ...], rank: int):
    """``param`` (dims ordered as ``axes``) made to broadcast against a rank-``rank`` tensor."""
    order = sorted(range(len(axes)), key=lambda i: axes[i])
    if order != list(range(len(axes))):
        param = ops.transpose(param, order)
    for position in range(rank):  # ascending, so covered dims land in their tensor positions
        if position not in axes:
            param = ops.expand_dims(param, position)
    return param


class _Affine(keras.layers.Layer):
    """Shared axis handling; not registered, never built directly."""

    def __init__(self, axis=-1, num_axes=None, axes=None, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        if not _is_int(axis) and axes is None and isinstance(axis, (list, tuple)):
            # A sequence given as ``axis`` means ``axes`` (stored as such in the config).
            if num_axes is not None and num_axes != len(axis):
                raise ValueError(f"{name} axis {tuple(axis)!r} lists {len(axis)} axes but num_axes "
                                 f"is {num_axes!r}")
            axis, num_axes, axes = -1, None, axis
        if not _is_int(axis):
            raise ValueError(f"{name} axis must be an int or a sequence of ints, got {axis!r}")
        if num_axes is not None and (not _is_int(num_axes) or num_axes < -1):
            raise ValueError(f"{name} num_axes must be None or an int >= -1, got {num_axes!r}")
        if axes is not None:
            given = axes
            try:
                axes = tuple(axes)
            except TypeError:
                axes = (None,)
            if not all(_is_int(a) for a in axes):
                raise ValueError(f"{name} axes must be a sequence of ints, got {given!r}")
            if axis != -1 or num_axes is not None:
                raise ValueError(f"{name} takes either axis/num_axes or axes, got axis={axis!r}, "
                                 f"num_axes={num_axes!r}, axes={axes!r}")
        self.axis = axis
        self.num_axes = num_axes
        self.axes = axes

    def _axes_for(self, shape) -> tuple[int, ...]:
        return _covered_axes(type(self).__name__, self.axis, self.num_axes, self.axes, len(shape))

    def _learned_shape(self, shape, axes) -> tuple[int, ...]:
        name = type(self).__name__
        if 0 in axes:
            raise ValueError(f"{name} covering axes {axes} would learn a parameter over the "
                             f"batch axis of input {tuple(shape)}")
        dims = tuple(shape[a] for a in axes)
        if any(d is None for d in dims):
            raise ValueError(f"{name} needs static sizes on the covered axes {axes}, got input "
                             f"shape {tuple(shape)}")
        return dims

    def _check_second(self, shapes, axes):
        x_shape, p_shape = shapes
        expected = tuple(x_shape[a] for a in axes)
        compatible = len(p_shape) == len(expected) and all(
            a is None or b is None or a == b for a, b in zip(p_shape, expected))
        if not compatible:
            raise ValueError(f"{type(self).__name__} second input has shape {tuple(p_shape)}, but "
                             f"the covered axes {axes} of {tuple(x_shape)} need {expected}")

    def compute_output_shape(self, input_shape):
        if input_shape and isinstance(input_shape[0], (list, tuple)):  # [x, s] layers
            return tuple(input_shape[0])
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, num_axes=self.num_axes,
                      axes=None if self.axes is None else list(self.axes))
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class Scale(_Affine):
    """y = x * gamma (+ beta); weights [gamma] or [gamma, beta], shaped like the covered axes."""

    def __init__(self, axis=-1, num_axes=None, bias_term=False, axes=None, **kwargs):
        super().__init__(axis=axis, num_axes=num_axes, axes=axes, **kwargs)
        self.bias_term = bool(bias_term)

    def build(self, input_shape):
        self._axes = self._axes_for(input_shape)
        self._rank = len(input_shape)
        shape = self._learned_shape(input_shape, self._axes)
        self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        if self.bias_term:
            self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")
        super().build(input_shape)

    def call(self, inputs):
        y = inputs * _broadcastable(self.gamma, self._axes, self._rank)
        if self.bias_term:
            y = y + _broadcastable(self.beta, self._axes, self._rank)
        return y

    def get_config(self):
        config = super().get_config()
        config.update(bias_term=self.bias_term)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class ScaleByInput(_Affine):
    """Inputs [x, s]: y = x * s (+ beta); weights [] or [beta], beta shaped like s."""

    def __init__(self, axis=-1, num_axes=None, bias_term=False, axes=None, **kwargs):
        super().__init__(axis=axis, num_axes=num_axes, axes=axes, **kwargs)
        self.bias_term = bool(bias_term)

    def build(self, input_shape):
        self._axes = self._axes_for(input_shape[0])
        self._rank = len(input_shape[0])
        self._check_second(input_shape, self._axes)
        if self.bias_term:
            shape = self._learned_shape(input_shape[0], self._axes)
            self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")
        super().build(input_shape)

    def call(self, inputs):
        x, s = inputs
        y = x * _broadcastable(s, self._axes, self._rank)
        if self.bias_term:
            y = y + _broadcastable(self.beta, self._axes, self._rank)
        return y

    def get_config(self):
        config = super().get_config()
        config.update(bias_term=self.bias_term)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class Bias(_Affine):
    """y = x + bias; weights [bias], shaped like the covered axes."""

    def build(self, input_shape):
        self._axes = self._axes_for(input_shape)
        self._rank = len(input_shape)
        shape = self._learned_shape(input_shape, self._axes)
        self.bias = self.add_weight(shape=shape, initializer="zeros", name="bias")
        super().build(input_shape)

    def call(self, inputs):
        return inputs + _broadcastable(self.bias, self._axes, self._rank)


@keras.saving.register_keras_serializable(package="caffe2keras")
class BiasByInput(_Affine):
    """Inputs [x, b]: y = x + b; no weights."""

    def build(self, input_shape):
        self._axes = self._axes_for(input_shape[0])
        self._rank = len(input_shape[0])
        self._check_second(input_shape, self._axes)
        super().build(input_shape)

    def call(self, inputs):
        x, b = inputs
        return x + _broadcastable(b, self._axes, self._rank)
