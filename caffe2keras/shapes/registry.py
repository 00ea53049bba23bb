"""The rule registries and the small helpers every rule module shares.

A *shape rule* maps ``(layer, bottom_shapes)`` to the list of top shapes, one
per top, in Caffe's axis order. A *blob rule* maps the same arguments to the
shapes Caffe gives the layer's learned blobs. Both are pure functions that read
``layer.param`` and never touch the net; a rule that meets an impossible
configuration raises ``layer_error(layer, ...)``.
"""

from __future__ import annotations

import operator
from math import prod
from typing import Callable, Sequence

import numpy as np

from caffe2keras.errors import StructureError

Shape = tuple[int, ...]
ShapeRule = Callable[..., list[Shape]]

# Caffe stores a blob's element count in an int and allows at most 32 axes.
MAX_COUNT = 2**31 - 1
MAX_AXES = 32

_SHAPE_RULES: dict[str, ShapeRule] = {}
_BLOB_RULES: dict[str, ShapeRule] = {}
# Types whose stored weights may carry blobs beyond the ones Caffe defines.
_EXTRA_BLOBS_TOLERATED: set[str] = set()


def _register(table: dict[str, ShapeRule], kind: str, types: tuple[str, ...]):
    if not types:
        raise TypeError(f"{kind} needs at least one layer type")

    def decorate(fn: ShapeRule) -> ShapeRule:
        for type_ in types:
            if type_ in table:
                raise ValueError(f"{kind} for {type_!r} registered twice "
                                 f"({table[type_].__qualname__} and {fn.__qualname__})")
            table[type_] = fn
        return fn

    return decorate


def shape_rule(*types: str):
    """Register ``fn(layer, bottom_shapes) -> [top_shape, ...]`` for the given Caffe types."""
    return _register(_SHAPE_RULES, "shape rule", types)


def blob_rule(*types: str, extra_blobs_tolerated: bool = False):
    """Register ``fn(layer, bottom_shapes) -> [blob_shape, ...]`` for the given Caffe types.

    With ``extra_blobs_tolerated`` stored weights may hold more blobs than the rule
    lists (some forks append their own); the extras are reported as a warning.
    """
    register = _register(_BLOB_RULES, "blob rule", types)
    if extra_blobs_tolerated:
        _EXTRA_BLOBS_TOLERATED.update(types)
    return register


def unregister(type_: str) -> None:
    """Remove a type's shape and blob rules (for tests and for users replacing a built-in one)."""
    _SHAPE_RULES.pop(type_, None)
    _BLOB_RULES.pop(type_, None)
    _EXTRA_BLOBS_TOLERATED.discard(type_)


def has_shape_rule(type_: str) -> bool:
    return type_ in _SHAPE_RULES


def shape_rule_types() -> list[str]:
    """Every layer type with a shape rule, sorted."""
    return sorted(_SHAPE_RULES)


def get_shape_rule(type_: str) -> ShapeRule | None:
    return _SHAPE_RULES.get(type_)


def get_blob_rule(type_: str) -> ShapeRule | None:
    return _BLOB_RULES.get(type_)


def tolerates_extra_blobs(type_: str) -> bool:
    return type_ in _EXTRA_BLOBS_TOLERATED


# --------------------------------------------------------------------------
# Helpers for rules
# --------------------------------------------------------------------------

def layer_error(layer, message: str) -> StructureError:
    """The error for a layer whose configuration Caffe would refuse."""
    return StructureError(f"layer {layer.name!r} ({layer.type}): {message}")


def count(shape: Sequence[int], start: int = 0, end: int | None = None) -> int:
    """Number of elements in ``shape[start:end]`` (Caffe's Blob::count)."""
    return prod(shape[start:end])


def canonical_axis(layer, axis: int, ndim: int, what: str = "axis") -> int:
    """Caffe's CanonicalAxisIndex: a negative axis counts from the end."""
    if not -ndim <= axis < ndim:
        raise layer_error(layer, f"{what} {axis} is out of range for a {ndim}-D input")
    return axis + ndim if axis < 0 else axis


def legacy_dim(layer, shape: Shape, index: int) -> int:
    """Caffe's num()/channels()/height()/width(): axis ``index`` of a blob of at
    most 4 axes, 1 past the last axis."""
    if len(shape) > 4:
        raise layer_error(layer, f"needs an input of at most 4 axes, got {len(shape)}-D "
                                 f"{tuple(shape)}")
    return shape[index] if index < len(shape) else 1


def legacy_shape(layer, shape: Shape) -> Shape:
    """``shape`` padded with trailing 1s to (num, channels, height, width)."""
    return tuple(legacy_dim(layer, shape, i) for i in range(4))


def expect_bottoms(layer, bottoms: Sequence[Shape], low: int, high: int | None = None) -> None:
    """Require between ``low`` and ``high`` bottoms (exactly ``low`` when ``high`` is None;
    ``high=-1`` means no upper bound)."""
    high = low if high is None else high
    n = len(bottoms)
    if n < low or (high >= 0 and n > high):
        if high == low:
            wanted = str(low)
        elif high < 0:
            wanted = f"at least {low}"
        else:
            wanted = f"{low} to {high}"
        raise layer_error(layer, f"takes {wanted} bottom(s), got {n}")


def expect_ndim(layer, shape: Shape, low: int, high: int | None = None, which: str = "input"):
    high = low if high is None else high
    if not low <= len(shape) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise layer_error(layer, f"{which} must have {wanted} axes, got {len(shape)}-D "
                                 f"{tuple(shape)}")


def has(msg, name: str) -> bool:
    """Whether ``msg`` sets field ``name``; False when our schema has no such field."""
    if msg is None:
        return False
    field = msg.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return False
    # protobuf >= 6 has is_repeated; older releases only have label.
    repeated = (field.is_repeated if hasattr(field, "is_repeated")
                else field.label == field.LABEL_REPEATED)
    if repeated:
        return len(getattr(msg, name)) > 0
    return msg.HasField(name)


def sub_param(layer, name: str):
    """``layer.param.<name>`` (the type's parameter message, defaults if unset)."""
    param = layer.param
    if name not in param.DESCRIPTOR.fields_by_name:
        raise layer_error(layer, f"the schema has no {name}")
    return getattr(param, name)


def same_shape(layer, bottoms: Sequence[Shape]) -> list[Shape]:
    """The common rule of layers whose single top has the shape of their single bottom."""
    expect_bottoms(layer, bottoms, 1)
    return [tuple(bottoms[0])]


def checked_shape(shape, where: str) -> Shape:
    """``shape`` as a tuple of ints, or a StructureError (prefixed with ``where``) when
    Caffe could not hold such a blob: non-integer or non-positive dimensions, more
    than 32 axes, or more than 2**31 - 1 elements."""
    try:
        if any(isinstance(d, (bool, float)) for d in shape):
            raise TypeError
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise StructureError(f"{where}: shape {shape!r} is not a sequence of integers") from None
    if len(dims) > MAX_AXES:
        raise StructureError(f"{where}: shape {dims} has more than {MAX_AXES} axes")
    if any(d <= 0 for d in dims):
        raise StructureError(f"{where}: shape {dims} has a dimension that is not positive")
    elements = prod(dims)
    if elements > MAX_COUNT:
        raise StructureError(f"{where}: shape {dims} holds {elements} elements, more than "
                             f"Caffe's limit of 2**31 - 1")
    return dims


def nonfinite_warning(blob: np.ndarray, where: str) -> str | None:
    """A warning when ``blob`` holds NaN or infinite values (None when all are finite).

    Caffe computes with such weights without complaint and so does the converted model;
    the warning is there because a damaged or badly trained file is the usual reason.
    min and max see every NaN and infinity without a blob-sized temporary."""
    if blob.size == 0 or (np.isfinite(blob.min()) and np.isfinite(blob.max())):
        return None
    flat = blob.reshape(-1)
    nans = infinite = 0
    for start in range(0, flat.size, 2**20):
        chunk = flat[start:start + 2**20]
        nans += int(np.isnan(chunk).sum())
        infinite += int(np.isinf(chunk).sum())
    return (f"{where} holds {nans} NaN and {infinite} infinite value(s) out of {blob.size}; "
            "converted as they are")
