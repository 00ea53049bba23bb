"""Rewrites that pre-empt the OpenVINO CPU plugin's own graph transformations.

The plugin rewrites some patterns into new nodes while compiling, and a new node does not
inherit the "precise" mark (``openvino_f32``), so it would run in bf16. Each function here
rewrites one such pattern into what the plugin would make of it (or into an equivalent the
plugin leaves alone), computing the same float32 values; the nodes are marked afterwards.
Found on the golden nets by reading the compiled runtime graph; each names the plugin
transformation it pre-empts.

``PASSES``: rewrites by op type name, applied pass by pass in that order (the later passes
see what the earlier ones made).
"""

from __future__ import annotations

import numpy as np

from .openvino_graph import constant, is_float, only_reader, opset, opset1, readers, replace
from .openvino_strides import pull_strides


# --- op versions the plugin downgrades (ConvertMaxPool8ToMaxPool1, ConvertSoftMax8ToSoftMax1...)

def pool_v1(node) -> None:
    """MaxPool-8/14 (indices unused, no dilation) and AvgPool-14 as version 1."""
    if node.get_type_info().version_id == "opset1":
        return
    attributes = node.get_attributes()
    if attributes.get("rounding_type", "floor") not in ("floor", "ceil") \
            or any(d != 1 for d in attributes.get("dilations", [1])) \
            or node.get_output_size() > 1 and readers(node.output(1)):
        return
    op = opset1()
    common = (node.input_value(0), attributes["strides"], attributes["pads_begin"],
              attributes["pads_end"], attributes["kernel"])
    if node.get_type_name() == "MaxPool":
        new = op.max_pool(*common, rounding_type=attributes["rounding_type"],
                          auto_pad=attributes["auto_pad"])
    else:
        new = op.avg_pool(*common, exclude_pad=attributes["exclude-pad"],
                          rounding_type=attributes["rounding_type"],
                          auto_pad=attributes["auto_pad"])
    replace(node, new)


def softmax_v1(node) -> None:
    """Softmax-8 as Softmax-1 (which takes no negative axis)."""
    if node.get_type_info().version_id == "opset1":
        return
    axis = node.get_attributes()["axis"]
    rank = node.get_output_partial_shape(0).rank.get_length()
    replace(node, opset1().softmax(node.input_value(0), axis + rank if axis < 0 else axis))


# --- data movement the plugin turns into Reshape (TransposeToReshape, Squeeze/Unsqueeze
# --- to Reshape) and chains of Reshape it merges (ReshapeSequenceFusion)

def _target_shape(node):
    """A constant Reshape target giving ``node``'s output shape from its input, or None:
    static dims as they are, one dynamic dim as 0 (same position, special_zero) or -1."""
    source, result = node.get_input_partial_shape(0), node.get_output_partial_shape(0)
    if source.rank.is_dynamic or result.rank.is_dynamic:
        return None
    dynamic = [i for i in range(result.rank.get_length()) if result[i].is_dynamic]
    if len(dynamic) > 1:
        return None
    target = [result[i].get_length() if result[i].is_static else -1
              for i in range(result.rank.get_length())]
    for i in dynamic:
        if i < source.rank.get_length() and source[i].is_dynamic \
                and all(source[j].is_static for j in range(source.rank.get_length()) if j != i):
            target[i] = 0
    return np.array(target, dtype=np.int64)


def _keeps_memory_order(node) -> bool:
    """A Transpose that only moves axes of size 1: the data stay in the same order."""
    permutation = constant(node.input_value(1))
    shape = node.get_input_partial_shape(0)
    if permutation is None or shape.rank.is_dynamic:
        return False
    moved = [int(axis) for axis in permutation.reshape(-1)
             if not (shape[int(axis)].is_static and shape[int(axis)].get_length() == 1)]
    return moved == sorted(moved)


def as_reshape(node) -> None:
    """Squeeze, Unsqueeze and an order-keeping Transpose as the Reshape the plugin makes."""
    if not is_float(node) or node.get_type_name() == "Transpose" \
            and not _keeps_memory_order(node):
        return
    target = _target_shape(node)
    if target is None:
        return
    op = opset()
    replace(node, op.reshape(node.input_value(0), op.constant(target), bool((target == 0).any())))


def merge_reshapes(node) -> None:
    """Reshape(Reshape(x)) as one Reshape of x, the inner one read by nothing else."""
    inner = node.input_value(0).get_node()
    if not is_float(node) or inner.get_type_name() != "Reshape" \
            or only_reader(inner.output(0))[0] is None:
        return
    target = _target_shape(node)
    if target is None:
        return
    if (target == 0).any():
        # a 0 copies a dimension of the Reshape's input: of x too only where the inner
        # Reshape copied that dimension from x (the batch, in first place)
        inner_target = _target_shape(inner)
        if list(np.flatnonzero(target == 0)) != [0] or inner_target is None \
                or inner_target[0] != 0:
            return
    op = opset()
    replace(node, op.reshape(inner.input_value(0), op.constant(target),
                              bool((target == 0).any())))


# --- InnerProduct: MatMul with constant weights (ConvertMatMulToFC keeps the mark, but
# --- FullyConnectedBiasFusion and MatMulMultiplyFusion make new nodes)

def _fold_scale(node):
    """MatMul(x, constant W) * constant s, one factor per output column or one for all
    (Caffe's Scale after an InnerProduct), as MatMul(x, W * s): the float32 products the
    plugin would fold itself. Returns the MatMul computing the product now."""
    consumer, index = only_reader(node.output(0))
    weights = constant(node.input_value(1))
    if consumer is None or weights is None or consumer.get_type_name() != "Multiply":
        return node
    scale = constant(consumer.input_value(1 - index))
    width = node.get_output_partial_shape(0)[-1]
    if scale is None or not width.is_static or not (
            scale.size == 1 or scale.shape[-1] == scale.size == width.get_length()):
        return node
    transpose_a, transpose_b = (node.get_attributes()[key] for key in ("transpose_a",
                                                                       "transpose_b"))
    scale = scale.reshape(-1).astype(np.float32)
    scaled = (weights * (scale[:, None] if transpose_b else scale)).astype(np.float32)
    op = opset()
    product = op.matmul(node.input_value(0), op.constant(scaled), transpose_a, transpose_b)
    replace(consumer, product)
    return product


def _bias_add(matmul):
    """The Add of a constant row (one value per output column) to ``matmul``'s output, when
    it is its only consumer; with the bias's input index."""
    consumer, index = only_reader(matmul.output(0))
    if consumer is None or consumer.get_type_name() != "Add" \
            or matmul.get_attributes()["transpose_a"]:
        return None, None
    bias = constant(consumer.input_value(1 - index))
    width = matmul.get_output_partial_shape(0)[-1]
    if bias is None or bias.ndim == 0 or not width.is_static \
            or bias.shape[-1] != bias.size or bias.size != width.get_length():
        return None, None
    return consumer, 1 - index


def _separate_bias(node) -> None:
    """MatMul(x, W) + b as Caffe's InnerProduct computes it: x W + ones b, ones a column of
    1 per row of x (each element of ones b is exactly b's), so no Add of a constant follows
    the product for the plugin to fold into a new FullyConnected node."""
    add, bias_index = _bias_add(node)
    if add is None:
        return
    op = opset()
    bias = add.input_value(bias_index)
    rank = node.get_output_partial_shape(0).rank.get_length()
    rows = op.gather(op.shape_of(node.input_value(0)),
                     op.constant(np.arange(rank - 1, dtype=np.int64)), op.constant(np.int64(0)))
    ones = op.broadcast(op.constant(np.float32(1)),
                        op.concat([rows, op.constant(np.array([1], np.int64))], 0))
    row = op.reshape(bias, op.constant(np.array([1, -1], np.int64)), False)
    replace(add, op.add(node.output(0), op.matmul(ones, row, False, False)))


def inner_product(node) -> None:
    if constant(node.input_value(1)) is not None:
        _separate_bias(_fold_scale(node))


PASSES = [
    {"MaxPool": pool_v1, "AvgPool": pool_v1, "Softmax": softmax_v1,
     "Transpose": as_reshape, "Squeeze": as_reshape, "Unsqueeze": as_reshape},
    {"Reshape": merge_reshapes},
    {"MatMul": inner_product, "Convolution": pull_strides},
]
