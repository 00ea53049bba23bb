"""Layers that route or rearrange data: Input, Concat, Split, Silence, Flatten,
Reshape, Slice, Crop, Permute, Tile, Reduction, ArgMax."""

from __future__ import annotations

from .registry import (canonical_axis, checked_shape, count, expect_bottoms, has,
                       layer_error, shape_rule, sub_param)


@shape_rule("Input")
def _input(layer, bottoms):
    expect_bottoms(layer, bottoms, 0)
    shapes = sub_param(layer, "input_param").shape
    if len(shapes) not in (1, len(layer.tops)):
        raise layer_error(layer, f"needs one input shape or one per top ({len(layer.tops)}), "
                                 f"got {len(shapes)}")
    where = f"layer {layer.name!r} (Input)"
    tops = [checked_shape(tuple(s.dim), where) for s in shapes]
    return tops * len(layer.tops) if len(tops) == 1 else tops


def _legacy_or_axis(layer, p, legacy: str, ndim: int) -> int:
    """The axis from ``axis`` (may be negative) or the deprecated ``<legacy>`` (may not)."""
    if has(p, "axis") and has(p, legacy):
        raise layer_error(layer, f"give either axis or {legacy}, not both")
    if has(p, legacy):
        value = getattr(p, legacy)
        if value >= ndim:
            raise layer_error(layer, f"{legacy} {value} is out of range for a {ndim}-D input")
        return value
    return canonical_axis(layer, p.axis, ndim)


@shape_rule("Concat")
def _concat(layer, bottoms):
    expect_bottoms(layer, bottoms, 1, -1)
    first = tuple(bottoms[0])
    axis = _legacy_or_axis(layer, sub_param(layer, "concat_param"), "concat_dim", len(first))
    total = first[axis]
    for other in bottoms[1:]:
        other = tuple(other)
        same_elsewhere = (len(other) == len(first) and
                          all(a == b for i, (a, b) in enumerate(zip(first, other)) if i != axis))
        if not same_elsewhere:
            raise layer_error(layer, f"bottoms {first} and {other} differ outside the concat "
                                     f"axis {axis}")
        total += other[axis]
    return [first[:axis] + (total,) + first[axis + 1:]]


@shape_rule("Split")
def _split(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    if not layer.tops:
        raise layer_error(layer, "needs at least one top")
    return [tuple(bottoms[0])] * len(layer.tops)


@shape_rule("Silence")
def _silence(layer, bottoms):
    expect_bottoms(layer, bottoms, 1, -1)
    return []


@shape_rule("Flatten")
def _flatten(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    p = sub_param(layer, "flatten_param")
    start = canonical_axis(layer, p.axis, len(bottom))
    end = canonical_axis(layer, p.end_axis, len(bottom), "end_axis")
    if end + 1 < start:
        raise layer_error(layer, f"end_axis {p.end_axis} comes before axis {p.axis}")
    return [bottom[:start] + (count(bottom, start, end + 1),) + bottom[end + 1:]]


@shape_rule("Reshape")
def _reshape(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    ndim = len(bottom)
    p = sub_param(layer, "reshape_param")
    dims = list(p.shape.dim)
    if any(d < -1 for d in dims):
        raise layer_error(layer, f"shape {dims} has a dimension below -1")
    inferred = [i for i, d in enumerate(dims) if d == -1]
    if len(inferred) > 1:
        raise layer_error(layer, f"shape {dims} has more than one -1")
    start = p.axis if p.axis >= 0 else ndim + p.axis + 1
    if not 0 <= start <= ndim:
        raise layer_error(layer, f"axis {p.axis} is out of range for a {ndim}-D input")
    if p.num_axes < -1:
        raise layer_error(layer, f"num_axes must be -1 or more, got {p.num_axes}")
    end = ndim if p.num_axes == -1 else start + p.num_axes
    if end > ndim:
        raise layer_error(layer, f"axis {p.axis} + num_axes {p.num_axes} extends past the "
                                 f"{ndim}-D input")
    top = list(bottom[:start]) + dims + list(bottom[end:])
    # A 0 copies the input dimension at the same position (counted from `start`).
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= ndim:
                raise layer_error(layer, f"shape {dims} has a 0 at position {i} with no input "
                                         "axis to copy")
            top[start + i] = bottom[start + i]
    total = count(bottom)
    if inferred:
        known = count([d for i, d in enumerate(top) if i != start + inferred[0]])
        if total % known:
            raise layer_error(layer, f"cannot infer the -1 in {dims}: {total} elements are not "
                                     f"divisible by {known}")
        top[start + inferred[0]] = total // known
    if count(top) != total:
        raise layer_error(layer, f"shape {tuple(top)} holds {count(top)} elements, the input "
                                 f"{bottom} holds {total}")
    return [tuple(top)]


@shape_rule("Slice")
def _slice(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    p = sub_param(layer, "slice_param")
    axis = _legacy_or_axis(layer, p, "slice_dim", len(bottom))
    size, n_tops = bottom[axis], len(layer.tops)
    if n_tops == 0:
        raise layer_error(layer, "needs at least one top")
    points = list(p.slice_point)
    if points:
        if len(points) != n_tops - 1:
            raise layer_error(layer, f"{len(points)} slice points for {n_tops} tops "
                                     f"(needs {n_tops - 1})")
        bounds = [0] + points + [size]
        if any(b <= a for a, b in zip(bounds, bounds[1:])):
            raise layer_error(layer, f"slice points {points} must increase strictly within "
                                     f"(0, {size}) on axis {axis}")
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    else:
        if size % n_tops:
            raise layer_error(layer, f"axis {axis} of size {size} cannot be split evenly "
                                     f"into {n_tops} tops")
        sizes = [size // n_tops] * n_tops
    return [bottom[:axis] + (s,) + bottom[axis + 1:] for s in sizes]


@shape_rule("Crop")
def _crop(layer, bottoms):
    expect_bottoms(layer, bottoms, 2)
    bottom, reference = tuple(bottoms[0]), tuple(bottoms[1])
    p = sub_param(layer, "crop_param")
    start = canonical_axis(layer, p.axis, len(bottom))
    if len(reference) < len(bottom):
        raise layer_error(layer, f"reference bottom {reference} has fewer axes than the "
                                 f"input {bottom}")
    offsets = list(p.offset)
    if len(offsets) > 1 and len(offsets) != len(bottom) - start:
        raise layer_error(layer, f"{len(offsets)} offsets given for {len(bottom) - start} "
                                 "cropped axes")
    top = list(bottom)
    for i in range(start, len(bottom)):
        offset = offsets[0] if len(offsets) == 1 else (offsets[i - start] if offsets else 0)
        if bottom[i] - offset < reference[i]:
            raise layer_error(layer, f"crop to {reference[i]} at offset {offset} does not fit "
                                     f"axis {i} of size {bottom[i]}")
        top[i] = reference[i]
    return [tuple(top)]


@shape_rule("Permute")
def _permute(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    order = list(sub_param(layer, "permute_param").order)
    if any(o >= len(bottom) for o in order) or len(set(order)) != len(order):
        raise layer_error(layer, f"order {order} is not a permutation of the {len(bottom)} "
                                 "input axes")
    # Axes the order leaves out follow in their original order.
    order += [i for i in range(len(bottom)) if i not in order]
    return [tuple(bottom[i] for i in order)]


@shape_rule("Tile")
def _tile(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    p = sub_param(layer, "tile_param")
    axis = canonical_axis(layer, p.axis, len(bottom))
    if not has(p, "tiles") or p.tiles <= 0:
        raise layer_error(layer, "tiles must be given and positive")
    return [bottom[:axis] + (bottom[axis] * p.tiles,) + bottom[axis + 1:]]


@shape_rule("Reduction")
def _reduction(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    axis = canonical_axis(layer, sub_param(layer, "reduction_param").axis, len(bottom))
    return [bottom[:axis]]


@shape_rule("ArgMax")
def _argmax(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    p = sub_param(layer, "argmax_param")
    if p.top_k < 1:
        raise layer_error(layer, "top_k must be at least 1")
    if has(p, "axis"):
        axis = canonical_axis(layer, p.axis, len(bottom))
        if p.top_k > bottom[axis]:
            raise layer_error(layer, f"top_k {p.top_k} exceeds axis {axis} of size "
                                     f"{bottom[axis]}")
        return [bottom[:axis] + (p.top_k,) + bottom[axis + 1:]]
    # Without an axis Caffe ranks each item's flattened features and writes
    # (N, 1 or 2 [index, value], top_k, 1...) with at least 3 axes.
    if not bottom:
        raise layer_error(layer, "needs an input with at least one axis")
    if p.top_k > count(bottom, 1):
        raise layer_error(layer, f"top_k {p.top_k} exceeds the {count(bottom, 1)} features "
                                 "per item")
    top = [1] * max(3, len(bottom))
    top[0] = bottom[0]
    top[1] = 2 if p.out_max_val else 1
    top[2] = p.top_k
    return [tuple(top)]

