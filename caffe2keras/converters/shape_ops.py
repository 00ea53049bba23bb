"""Layers that reshape, cut or rearrange blobs: Crop, Slice, Reshape, Permute, Tile,
ShuffleChannel, ArgMax, Reduction.

All of them act in Caffe's axis order; a 4-D blob is NHWC in Keras, so each converter maps its
axes with ``keras_axis`` or moves the blob to NCHW and back. The batch axis stays put: a layer
that would slice, crop, move or reduce it raises StructureError (the Keras model has a free
batch size).
"""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..proto import caffe_pb2
from ..registry import Step, converter, keras_axis, keras_shape
from ..shapes.registry import canonical_axis, has
from ..shapes.structure import _legacy_or_axis
from .common import caffe_order_reshape, finite, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("ArgMax", "Crop", "Identity", "Permute", "Reduction", "Reshape", "Slice", "Tile")

_REDUCTION = caffe_pb2.ReductionParameter


def _no_batch_axis(layer, axis: int, what: str) -> None:
    if axis == 0:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): {what} the batch axis does "
                             "not convert (the Keras model has a free batch size)")


def _identity(layer):
    return [Step(keras.layers.Identity(name=name_of(layer)))]


@converter("Reshape")
def reshape(layer, ctx):
    in_shape, out_shape = ctx.bottom_shapes[0], ctx.top_shapes[0]
    if tuple(in_shape) == tuple(out_shape):
        return _identity(layer)
    return caffe_order_reshape(layer, in_shape, out_shape, name_of(layer))


@converter("Permute")
def permute(layer, ctx):
    bottom = ctx.bottom_shapes[0]
    rank = len(bottom)
    order = list(layer.param.permute_param.order)
    order += [axis for axis in range(rank) if axis not in order]  # Caffe appends the rest
    if order[0] != 0:
        _no_batch_axis(layer, 0, "moving")
    # Caffe: top = bottom.transpose(order) in NCHW terms. In Keras terms the input is
    # caffe.transpose(to_keras_in), the output caffe_top.transpose(to_keras_out), so
    # keras_top = keras_bottom.transpose(from_keras_in[order[to_keras_out[i]]]).
    from_keras_in = (0, 3, 1, 2) if rank == 4 else tuple(range(rank))
    to_keras_out = (0, 2, 3, 1) if rank == 4 else tuple(range(rank))
    dims = tuple(from_keras_in[order[to_keras_out[i]]] for i in range(1, rank))
    if dims == tuple(range(1, rank)):
        return _identity(layer)
    return [Step(keras.layers.Permute(dims, name=name_of(layer)))]


@converter("Slice")
def slice_(layer, ctx):
    bottom = ctx.bottom_shapes[0]
    axis = _legacy_or_axis(layer, layer.param.slice_param, "slice_dim", len(bottom))
    if len(layer.tops) == 1:
        return _identity(layer)
    _no_batch_axis(layer, axis, "slicing")
    points, edge = [], 0
    for top in ctx.top_shapes[:-1]:
        edge += top[axis]
        points.append(edge)
    return [Step(custom_layers.Slice(axis=ctx.keras_axis(axis), points=points,
                                     name=name_of(layer)))]


@converter("Crop")
def crop(layer, ctx):
    p = layer.param.crop_param
    bottom, top = ctx.bottom_shapes[0], ctx.top_shapes[0]
    rank = len(bottom)
    start = canonical_axis(layer, p.axis, rank)
    offsets = list(p.offset)
    axes, starts, sizes = [], [], []
    for axis in range(start, rank):
        offset = offsets[0] if len(offsets) == 1 else (offsets[axis - start] if offsets else 0)
        if offset == 0 and top[axis] == bottom[axis]:
            continue  # nothing cut on this axis
        _no_batch_axis(layer, axis, "cropping")
        axes.append(keras_axis(axis, rank))
        starts.append(offset)
        sizes.append(top[axis])
    # The second bottom only gives the shape: it goes in as an input, its values are not read.
    return [Step(custom_layers.Crop(axes=axes, offsets=starts, sizes=sizes, name=name_of(layer)))]


@converter("Tile")
def tile(layer, ctx):
    p = layer.param.tile_param
    axis = canonical_axis(layer, p.axis, len(ctx.bottom_shapes[0]))
    # Caffe copies count(axis) elements `tiles` times per outer index: np.tile along axis.
    return [Step(custom_layers.Tile(axis=ctx.keras_axis(axis), tiles=p.tiles,
                                    name=name_of(layer)))]


@converter("ShuffleChannel")
def shuffle_channel(layer, ctx):
    """ShuffleNet's channel shuffle: output channel j*g + i is input channel i*(C/g) + j, i.e.
    channels viewed as (g, C/g), transposed, flattened."""
    bottom = ctx.bottom_shapes[0]
    group = layer.param.shuffle_channel_param.group
    channels = bottom[1]
    if group in (1, channels):
        return _identity(layer)
    shape = keras_shape(bottom)[1:]
    where = ctx.keras_axis(1) - 1  # the channel axis among the non-batch axes
    split = shape[:where] + (group, channels // group) + shape[where + 1:]
    dims = list(range(1, len(split) + 1))
    dims[where], dims[where + 1] = dims[where + 1], dims[where]
    return [Step(keras.layers.Reshape(split, name=name_of(layer, "split"))),
            Step(keras.layers.Permute(tuple(dims), name=name_of(layer, "swap"))),
            Step(keras.layers.Reshape(shape, name=name_of(layer)))]


@converter("ArgMax")
def argmax(layer, ctx):
    p = layer.param.argmax_param
    bottom, top = ctx.bottom_shapes[0], ctx.top_shapes[0]
    if has(p, "axis"):
        axis = canonical_axis(layer, p.axis, len(bottom))
        _no_batch_axis(layer, axis, "ranking along")
        return [Step(custom_layers.ArgMax(top_k=p.top_k, out_max_val=p.out_max_val,
                                          axis=ctx.keras_axis(axis), name=name_of(layer)))]
    # No axis: Caffe ranks each item's features in C, H, W order and writes
    # (N, 1 or 2, top_k) padded with 1s to the bottom's rank (at least 3).
    steps = []
    if len(bottom) == 4:
        steps.append(Step(keras.layers.Permute((3, 1, 2), name=name_of(layer, "to_nchw"))))
    ranked = (top[0], top[1], top[2])
    final = len(top) == 3
    steps.append(Step(custom_layers.ArgMax(top_k=p.top_k, out_max_val=p.out_max_val, axis=None,
                                           name=name_of(layer) if final else
                                           name_of(layer, "argmax"))))
    if not final:
        steps += caffe_order_reshape(layer, ranked, top, name_of(layer))
    return steps


@converter("Reduction")
def reduction(layer, ctx):
    p = layer.param.reduction_param
    finite(layer, p, "coeff")
    bottom = ctx.bottom_shapes[0]
    rank = len(bottom)
    axis = canonical_axis(layer, p.axis, rank)
    _no_batch_axis(layer, axis, "reducing over")
    operation = _REDUCTION.ReductionOp.Name(p.operation)
    steps = []
    if rank == 4 and axis == 3:
        # The result (N, C, H) keeps Caffe's order: reduce W after moving to NCHW.
        steps.append(Step(keras.layers.Permute((3, 1, 2), name=name_of(layer, "to_nchw"))))
        axes = [3]
    else:
        axes = sorted(keras_axis(a, rank) for a in range(axis, rank))
    # A 4-D result (from a 5-D blob) must come out NHWC like every 4-D blob.
    nhwc_result = axis == 4
    steps.append(Step(custom_layers.Reduction(
        operation=operation, axes=axes, coeff=p.coeff,
        name=name_of(layer, "reduce") if nhwc_result else name_of(layer))))
    if nhwc_result:
        steps.append(Step(keras.layers.Permute((2, 3, 1), name=name_of(layer))))
    return steps
