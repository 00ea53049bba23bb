"""Caffe's element-wise neuron layers that Keras has no exact equivalent for.

Formulas (Caffe's, with ``base == -1`` meaning e):

* Power: ``y = (shift + scale * x) ^ power``; when ``power * scale == 0`` the input is ignored and
  ``y = 1`` (power 0) or ``shift ^ power``.
* Exp: ``y = base ^ (shift + scale * x)``, computed as ``base^shift * exp(ln(base) * scale * x)``.
* Log: ``y = log_base(shift + scale * x)``.
* AbsVal: ``y = |x|``. Threshold: ``y = 1 if x > threshold else 0``.
* WeightedSum: Eltwise SUM with coefficients, ``y = sum_i coeff_i * x_i``.

Not here because Keras is exact: BNLL (``Activation("softplus")``), ReLU with negative_slope
(``LeakyReLU``), ELU, plain Eltwise SUM/PROD/MAX (``Add``/``Multiply``/``Maximum``).
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops


def _number(layer: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{layer} {name} must be a finite number, got {value!r}")
    return float(value)


def _log_of_base(layer: str, base: float) -> float:
    """ln(base), with Caffe's convention that base -1 is e."""
    if base == -1:
        return 1.0
    if base <= 0:
        raise ValueError(f"{layer} base must be -1 (meaning e) or > 0, got {base!r}")
    return math.log(base)


class _Elementwise(keras.layers.Layer):
    """One input, same output shape; subclasses list their config keys in ``_keys``."""

    _keys: tuple[str, ...] = ()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({key: getattr(self, key) for key in self._keys})
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class Power(_Elementwise):
    """y = (shift + scale * x) ^ power."""

    _keys = ("power", "scale", "shift")

    def __init__(self, power=1.0, scale=1.0, shift=0.0, **kwargs):
        super().__init__(**kwargs)
        self.power = _number("Power", "power", power)
        self.scale = _number("Power", "scale", scale)
        self.shift = _number("Power", "shift", shift)

    def call(self, inputs):
        if self.power * self.scale == 0:  # Caffe ignores the input here
            value = 1.0 if self.power == 0 else float(np.power(np.float32(self.shift),
                                                               np.float32(self.power)))
            return ops.full_like(inputs, value)
        y = inputs
        if self.scale != 1:
            y = y * self.scale
        if self.shift != 0:
            y = y + self.shift
        if self.power != 1:
            y = ops.power(y, self.power)
        return y


@keras.saving.register_keras_serializable(package="caffe2keras")
class Exp(_Elementwise):
    """y = base ^ (shift + scale * x); base -1 means e."""

    _keys = ("base", "scale", "shift")

    def __init__(self, base=-1.0, scale=1.0, shift=0.0, **kwargs):
        super().__init__(**kwargs)
        self.base = _number("Exp", "base", base)
        self.scale = _number("Exp", "scale", scale)
        self.shift = _number("Exp", "shift", shift)
        log_base = _log_of_base("Exp", self.base)
        self._inner = log_base * self.scale
        self._outer = math.exp(log_base * self.shift)

    def call(self, inputs):
        y = inputs if self._inner == 1 else inputs * self._inner
        y = ops.exp(y)
        return y if self._outer == 1 else y * self._outer


@keras.saving.register_keras_serializable(package="caffe2keras")
class Log(_Elementwise):
    """y = log_base(shift + scale * x); base -1 means e."""

    _keys = ("base", "scale", "shift")

    def __init__(self, base=-1.0, scale=1.0, shift=0.0, **kwargs):
        super().__init__(**kwargs)
        self.base = _number("Log", "base", base)
        self.scale = _number("Log", "scale", scale)
        self.shift = _number("Log", "shift", shift)
        log_base = _log_of_base("Log", self.base)
        if log_base == 0:
            raise ValueError(f"Log base must not be 1, got {base!r}")
        self._base_scale = 1.0 / log_base

    def call(self, inputs):
        y = inputs
        if self.scale != 1:
            y = y * self.scale
        if self.shift != 0:
            y = y + self.shift
        y = ops.log(y)
        return y if self._base_scale == 1 else y * self._base_scale


@keras.saving.register_keras_serializable(package="caffe2keras")
class AbsVal(_Elementwise):
    """y = |x|."""

    def call(self, inputs):
        return ops.abs(inputs)


@keras.saving.register_keras_serializable(package="caffe2keras")
class Threshold(_Elementwise):
    """y = 1 where x > threshold, else 0 (in the input's dtype)."""

    _keys = ("threshold",)

    def __init__(self, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.threshold = _number("Threshold", "threshold", threshold)

    def call(self, inputs):
        return ops.cast(ops.greater(inputs, self.threshold),
                        keras.backend.standardize_dtype(inputs.dtype))


@keras.saving.register_keras_serializable(package="caffe2keras")
class WeightedSum(keras.layers.Layer):
    """Inputs [x_0, ..., x_{n-1}] of one shape: y = sum_i coefficients[i] * x_i."""

    def __init__(self, coefficients, **kwargs):
        super().__init__(**kwargs)
        try:
            values = [_number("WeightedSum", "coefficient", c) for c in coefficients]
        except TypeError:
            raise ValueError("WeightedSum coefficients must be a sequence of numbers, "
                             f"got {coefficients!r}") from None
        if len(values) < 2:
            raise ValueError(f"WeightedSum needs at least two coefficients, got {coefficients!r}")
        self.coefficients = values

    def build(self, input_shape):
        shapes_ok = isinstance(input_shape, (list, tuple)) and all(
            isinstance(s, (list, tuple)) for s in input_shape)
        if not shapes_ok or len(input_shape) != len(self.coefficients):
            raise ValueError(f"WeightedSum with {len(self.coefficients)} coefficients got input "
                             f"shapes {input_shape!r}")
        super().build(input_shape)

    def call(self, inputs):
        total = None
        for coefficient, x in zip(self.coefficients, inputs):
            term = x if coefficient == 1 else x * coefficient
            total = term if total is None else total + term
        return total

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(coefficients=list(self.coefficients))
        return config
