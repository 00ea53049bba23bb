"""The two sequential pieces of DetectionOutput: a stable sort and greedy NMS.

Stable sort: ONNX's TopK promises the lower index first among equal keys, but OpenVINO's
ONNX frontend does not keep that promise. ``stable_smallest`` therefore sorts once by key,
numbers the runs of equal keys, and sorts again by (run, index), which has no ties: the
result is the stable order on any runtime. The (run, position) keys are below n^2, and
OpenVINO's CPU plugin computes int64 in int32: exact there for n <= 46340 entries per sort
(SSD300 sorts 8732 priors, SSD512 24564).

Greedy NMS: an ONNX Loop over the M sorted candidates of every (image, class) at once, the
layer's ``fori_loop`` step for step: candidate j is kept when it is valid and its Jaccard
overlap with every box kept so far is <= the threshold; with eta < 1 the threshold of that
(image, class) is multiplied by eta after each kept box while it is > 0.5.
"""

from __future__ import annotations

import numpy as np

from .custom_common import BOOL, FLOAT, INT64, f32, i64, reduce, scalar_i64, unsqueeze

LAST = -1


def stable_smallest(g, key: str, n: int, k: int) -> str:
    """Int64 positions of the ``k`` smallest of the ``n`` entries on ``key``'s last axis,
    in ascending order, equal keys by ascending position."""
    values, order = g.op("TopK", key, i64(g, [n]), axis=LAST, largest=0, sorted=1, outputs=2)
    if n == 1:
        return order
    # run number of each sorted entry: how many changes of value come before it
    previous = g.op("Concat", _last_axis(g, values, 0, 1), _last_axis(g, values, 0, n - 1),
                    axis=LAST)
    changed = g.op("Cast", g.op("Not", g.op("Equal", values, previous)), to=INT64)
    run = g.op("CumSum", changed, scalar_i64(g, LAST))
    # (run, position) pairs as run * n + position: distinct, so ties cannot reorder them
    pairs = g.op("Add", g.op("Mul", run, i64(g, n)), order)
    _, rank = g.op("TopK", pairs, i64(g, [k]), axis=LAST, largest=0, sorted=1, outputs=2)
    return g.op("GatherElements", order, rank, axis=LAST)


def _last_axis(g, x: str, start: int, stop: int) -> str:
    return g.op("Slice", x, i64(g, [start]), i64(g, [stop]), i64(g, [LAST]))


class _Body:
    """Builds a Loop body: nodes named from the outer graph's pool (no name clashes), its
    constants stored in the outer graph (a body may read outer values)."""

    def __init__(self, g):
        self.g = g
        self.opset = g.opset
        self.nodes = []

    def const(self, array, dtype=None) -> str:
        return self.g.const(array, dtype)

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        from onnx import helper
        name = self.g.fresh(f"{self.g.scope}/nms/{op_type}")
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name,
                                           **attributes))
        return name

    def input(self, base: str) -> str:
        return self.g.fresh(f"{self.g.scope}/nms/{base}")


def _overlap(b, j1: str, coords: list[str], sizes: str) -> str:
    """Caffe's JaccardOverlap of candidate j with every candidate: (N, C', M)."""
    x0, y0, x1, y1 = coords
    box = [b.op("Gather", c, j1, axis=2) for c in coords]  # (N, C', 1) each
    size = b.op("Gather", sizes, j1, axis=2)
    zero = f32(b, 0.0)
    iw = b.op("Sub", b.op("Min", box[2], x1), b.op("Max", box[0], x0))
    ih = b.op("Sub", b.op("Min", box[3], y1), b.op("Max", box[1], y0))
    overlapping = b.op("And", b.op("Greater", iw, zero), b.op("Greater", ih, zero))
    inter = b.op("Mul", iw, ih)
    union = b.op("Where", overlapping, b.op("Sub", b.op("Add", size, sizes), inter),
                 f32(b, 1.0))
    return b.op("Where", overlapping, b.op("Div", inter, union), zero)


def greedy_nms(g, coords: list[str], sizes: str, valid: str, m: int, nms_threshold: float,
               eta: float) -> str:
    """Which of the M sorted candidates (N, C', M) NMS keeps, as a bool (N, C', M).
    ``coords``: xmin, ymin, xmax, ymax (N, C', M) each; ``sizes`` their BBoxSize;
    ``valid``: above the confidence threshold."""
    from onnx import TensorProto, helper
    adaptive = eta < 1
    per_group = g.op("Slice", g.op("Shape", valid), i64(g, [0]), i64(g, [2]))  # (N, C')
    threshold = g.op("Expand", f32(g, nms_threshold), per_group)
    kept = g.op("Expand", g.const(np.array(False)), g.op("Shape", valid))

    b = _Body(g)
    j, cond = b.input("j"), b.input("cond")
    kept_in = b.input("kept")
    threshold_in = b.input("threshold") if adaptive else threshold
    j1 = unsqueeze(b, j, [0])
    overlap = _overlap(b, j1, coords, sizes)
    # Caffe keeps the box when every overlap with a kept box is <= the threshold
    clear = b.op("LessOrEqual", overlap, unsqueeze(b, threshold_in, [LAST]))
    blocking = b.op("Cast", b.op("And", kept_in, b.op("Not", clear)), to=FLOAT)
    blocked = b.op("Cast", reduce(b, "ReduceMax", blocking, [LAST], keepdims=False), to=BOOL)
    keep = b.op("And", b.op("Gather", valid, j, axis=2), b.op("Not", blocked))  # (N, C')
    is_j = b.op("Equal", g.const(np.arange(m, dtype=np.int64)), j)
    kept_out = b.op("Or", kept_in, b.op("And", unsqueeze(b, keep, [LAST]), is_j))
    outputs = [b.op("Identity", cond), kept_out]
    inputs = [helper.make_tensor_value_info(j, TensorProto.INT64, []),
              helper.make_tensor_value_info(cond, TensorProto.BOOL, []),
              helper.make_tensor_value_info(kept_in, TensorProto.BOOL, None)]
    if adaptive:
        shrink = b.op("And", keep, b.op("Greater", threshold_in, f32(b, 0.5)))
        outputs.append(b.op("Where", shrink, b.op("Mul", threshold_in, f32(b, eta)),
                            threshold_in))
        inputs.append(helper.make_tensor_value_info(threshold_in, TensorProto.FLOAT, None))
    types = [TensorProto.BOOL, TensorProto.BOOL, TensorProto.FLOAT]
    body = helper.make_graph(b.nodes, f"{g.scope}/nms", inputs,
                             [helper.make_tensor_value_info(name, kind, None)
                              for name, kind in zip(outputs, types)])
    carried = [kept, threshold] if adaptive else [kept]
    results = g.op("Loop", scalar_i64(g, m), "", *carried, body=body, outputs=len(carried))
    return results[0] if adaptive else results
