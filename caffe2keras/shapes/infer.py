"""The walk over a net: input shapes, every top's shape, and the stored weights'
shapes checked against what Caffe would allocate."""

from __future__ import annotations

from math import prod

from caffe2keras.errors import StructureError, WeightsMismatchError
from caffe2keras.ir import Layer, Net

from .registry import (Shape, checked_shape, get_blob_rule, get_shape_rule, nonfinite_warning,
                       tolerates_extra_blobs)


def infer_shapes(net: Net, strict: bool = True) -> None:
    """Walk ``net.layers`` in order; fill ``net.shapes[value]`` for the inputs and every top.

    Stored weights are checked against each layer's blob rule (count and shapes). A
    legacy 4-D blob such as (1, 1, N, K) that equals the expected shape left-padded
    with 1s is reshaped in place (Caffe accepts it); any other mismatch raises
    WeightsMismatchError. Layers without blobs are fine (fillers provide them later).

    With ``strict=False`` a layer whose type has no rule, or whose inputs are unknown,
    leaves its tops without shapes (and so do the layers downstream) instead of
    raising StructureError.
    """
    shapes: dict[str, Shape] = {}
    for value, shape in net.inputs.items():
        shapes[value] = checked_shape(shape, f"input {value!r}")
    net.shapes = shapes
    for layer in net.layers:
        bottoms = _bottom_shapes(layer, shapes, strict)
        rule = get_shape_rule(layer.type)
        if rule is None:
            if strict:
                raise StructureError(f"layer {layer.name!r} ({layer.type}): no shape rule for "
                                     "this layer type")
            continue
        if bottoms is None:
            continue
        tops = rule(layer, bottoms)
        if len(tops) != len(layer.tops):
            raise StructureError(f"layer {layer.name!r} ({layer.type}): produces {len(tops)} "
                                 f"top(s), the layer lists {len(layer.tops)}")
        for value, shape in zip(layer.tops, tops):
            if value in shapes:
                raise StructureError(f"layer {layer.name!r} ({layer.type}): top {value!r} is "
                                     "already written by an earlier layer or input")
            shapes[value] = checked_shape(
                shape, f"layer {layer.name!r} ({layer.type}): top {value!r}")
        _check_blobs(net, layer, bottoms)


def _bottom_shapes(layer: Layer, shapes: dict[str, Shape], strict: bool):
    """The shapes of ``layer``'s bottoms, or None when one is unknown (non-strict)."""
    missing = [b for b in layer.bottoms if b not in shapes]
    if not missing:
        return [shapes[b] for b in layer.bottoms]
    if strict:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): bottom {missing[0]!r} is "
                             "not an input and no earlier layer produces it")
    return None


def _accepted_as(actual: Shape, expected: Shape) -> bool:
    """Stored shapes Caffe loads into a blob of shape ``expected`` besides the exact one."""
    # Legacy (num, channels, height, width) blobs compare right-aligned, padded with 1s.
    if len(actual) == 4 and len(expected) <= 4:
        if actual == (1,) * (4 - len(expected)) + expected:
            return True
    # A single shared value (PReLU / Normalize channel_shared): (), (1,), (1, 1, 1, 1)...
    return prod(actual) == 1 and prod(expected) == 1 and set(actual + expected) <= {1}


def _check_blobs(net: Net, layer: Layer, bottoms: list[Shape]) -> None:
    rule = get_blob_rule(layer.type)
    expected = [tuple(s) for s in rule(layer, bottoms)] if rule else []
    where = f"layer {layer.name!r} ({layer.type})"
    # Fillers allocate these shapes later: refuse absurd ones now, before any allocation.
    for index, shape in enumerate(expected):
        checked_shape(shape, f"{where}: blob {index}")
    if not layer.blobs:
        return
    have, want = len(layer.blobs), len(expected)
    if have < want or (have > want and not tolerates_extra_blobs(layer.type)):
        raise WeightsMismatchError(f"{where}: has {have} weight blob(s), Caffe expects "
                                   f"{want} {expected}")
    if have > want:
        net.warn(f"{where}: ignoring {have - want} weight blob(s) beyond the {want} Caffe "
                 "defines")
    for index, shape in enumerate(expected):
        blob = layer.blobs[index]
        warning = nonfinite_warning(blob, f"{where}: blob {index}")
        if warning:
            net.warn(warning)
        actual = tuple(blob.shape)
        if actual == shape:
            continue
        if _accepted_as(actual, shape):
            layer.blobs[index] = blob.reshape(shape)
            continue
        raise WeightsMismatchError(f"{where}: blob {index} has shape {actual}, expected "
                                   f"{shape}")
