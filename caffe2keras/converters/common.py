"""Small helpers shared by the converter modules."""

from __future__ import annotations

import math

import numpy as np

from ..errors import StructureError
from ..lazy import keras
from ..registry import Step, keras_layer_name

# Layers that precompute a constant from the input's size (AVE pooling's divisor map,
# PriorBox's boxes) hold this many values at most: 2**25 is an 8K x 4K map, 256 MiB
# while it is computed in float64. A larger one comes from a hostile shape, not a net.
MAX_CONSTANT_VALUES = 2**25


def name_of(layer, suffix: str = "") -> str:
    """The Keras name for a Caffe layer, or for a helper layer emitted before it."""
    base = keras_layer_name(layer.name)
    return f"{base}_{suffix}" if suffix else base


def float32(array) -> np.ndarray:
    # Not np.ascontiguousarray alone: it turns a 0-d array (a num_axes: 0 scale) into shape (1,).
    array = np.asarray(array, dtype=np.float32)
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def caffe_order_reshape(layer, in_shape, out_shape, final_name: str):
    """Steps that reshape the way Caffe does (row-major over NCHW) while every 4-D blob stays
    NHWC in Keras; the last step is named ``final_name``."""
    if out_shape[0] != in_shape[0]:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): changing the batch axis "
                             f"({in_shape} -> {out_shape}) does not convert")
    plan = []  # (name suffix, layer class, argument)
    if len(in_shape) == 4:
        plan.append(("to_nchw", keras.layers.Permute, (3, 1, 2)))
    plan.append(("reshape", keras.layers.Reshape, tuple(out_shape[1:])))
    if len(out_shape) == 4:
        plan.append(("to_nhwc", keras.layers.Permute, (2, 3, 1)))
    names = [f"{final_name}_{suffix}" for suffix, _, _ in plan[:-1]] + [final_name]
    return [Step(cls(argument, name=name)) for (_, cls, argument), name in zip(plan, names)]


def finite(layer, param, *fields: str) -> None:
    """Refuse NaN or infinite hyper-parameters, which no converted layer can hold (Caffe
    would run them, mostly into NaN outputs)."""
    for field in fields:
        value = getattr(param, field)
        if not math.isfinite(value):
            raise StructureError(f"layer {layer.name!r} ({layer.type}): "
                                 f"{param.DESCRIPTOR.name}.{field} is {value}; only finite "
                                 "values convert")


def constant_fits(layer, count: int, what: str) -> None:
    """Refuse to precompute a constant of ``count`` values beyond ``MAX_CONSTANT_VALUES``."""
    if count > MAX_CONSTANT_VALUES:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): {what} would hold {count:,} "
                             f"values, more than the {MAX_CONSTANT_VALUES:,} a converted layer "
                             "may precompute")
