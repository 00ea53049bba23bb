"""Layers that keep their input's shape: activations, Dropout, Softmax, and the
multi-input Eltwise and Axpy."""

from __future__ import annotations

from .registry import (canonical_axis, expect_bottoms, layer_error, same_shape,
                       shape_rule, sub_param)


@shape_rule("ReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "Power", "BNLL", "Threshold",
            "Dropout", "ReLU6", "HardSwish", "HardSigmoid", "Swish", "Clip", "Mish")
def _unary(layer, bottoms):
    return same_shape(layer, bottoms)


@shape_rule("Exp", "Log")
def _exp_log(layer, bottoms):
    p = sub_param(layer, "exp_param" if layer.type == "Exp" else "log_param")
    # base -1 stands for e; any other base must be positive.
    if p.base != -1 and p.base <= 0:
        raise layer_error(layer, f"base must be positive (or -1 for e), got {p.base}")
    if layer.type == "Log" and p.base == 1:  # Caffe checks 1 / log(base) is finite
        raise layer_error(layer, "base 1 has no logarithm")
    return same_shape(layer, bottoms)


@shape_rule("Softmax")
def _softmax(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    canonical_axis(layer, sub_param(layer, "softmax_param").axis, len(bottoms[0]))
    return [tuple(bottoms[0])]


@shape_rule("Eltwise")
def _eltwise(layer, bottoms):
    expect_bottoms(layer, bottoms, 2, -1)
    p = sub_param(layer, "eltwise_param")
    if len(p.coeff) not in (0, len(bottoms)):
        raise layer_error(layer, f"needs one coeff per bottom ({len(bottoms)}), "
                                 f"got {len(p.coeff)}")
    if p.coeff and p.operation != p.SUM:
        raise layer_error(layer, "coeff is only allowed for SUM")
    first = tuple(bottoms[0])
    for other in bottoms[1:]:
        if tuple(other) != first:
            raise layer_error(layer, f"all bottoms must have the same shape, got {first} "
                                     f"and {tuple(other)}")
    return [first]


@shape_rule("Axpy")
def _axpy(layer, bottoms):
    """top = a * x + y with a per-channel factor a of shape (N, C[, 1, 1])."""
    expect_bottoms(layer, bottoms, 3)
    a, x, y = (tuple(b) for b in bottoms)
    if len(a) < 2 or len(x) < 2 or a[:2] != x[:2] or any(d != 1 for d in a[2:]):
        raise layer_error(layer, f"first bottom {a} must be (N, C, 1, 1) for the input {x}")
    if x != y:
        raise layer_error(layer, f"second and third bottoms must have the same shape, "
                                 f"got {x} and {y}")
    return [x]
