"""Interp (bilinear, corners aligned, Caffe's float32 weights), channels-first.

The layer computed its source rows and columns and their weights in numpy when it was built
(``_rows``, ``_cols``: first index, second index, first weight, second weight); the lowering
gathers with the same indices and weighs in the same order:
``y = lh0 * (lw0 * x[r0, c0] + lw1 * x[r0, c1]) + lh1 * (lw0 * x[r1, c0] + lw1 * x[r1, c1])``.
ONNX's Resize is not used: its align_corners rounding is not Caffe's."""

from __future__ import annotations

from .custom_common import i64
from .registry import lowering

ROWS, COLS = 2, 3  # spatial axes of a channels-first value


@lowering("Interp")
def interp(layer, g, inputs, outputs):
    x = g.value(inputs[0], "nchw")  # a second input only fixes the size; never read
    if layer._copy:  # sizes already match: Caffe copies the cropped input
        crop, in_h, in_w = layer._crop
        y = g.op("Slice", x, i64(g, [crop, crop]), i64(g, [crop + in_h, crop + in_w]),
                 i64(g, [ROWS, COLS]))
        g.set(outputs[0], y, "nchw")
        return
    g.set(outputs[0], bilinear_blend(g, x, layer._rows, layer._cols), "nchw")


def bilinear_blend(g, x: str, rows, cols) -> str:
    """The layers' ``bilinear_blend`` on a channels-first value: gathers with the layer's
    indices, weighed in the same order."""
    r0, r1, lh0, lh1 = rows
    c0, c1, lw0, lw1 = cols
    lh0, lh1 = (g.const(w.reshape(-1, 1)) for w in (lh0, lh1))  # (H_out, 1)
    lw0, lw1 = (g.const(w) for w in (lw0, lw1))  # (W_out,)

    def blend_columns(rows: str) -> str:
        left = g.op("Mul", lw0, g.op("Gather", rows, i64(g, c0), axis=COLS))
        right = g.op("Mul", lw1, g.op("Gather", rows, i64(g, c1), axis=COLS))
        return g.op("Add", left, right)

    top = blend_columns(g.op("Gather", x, i64(g, r0), axis=ROWS))
    bottom = blend_columns(g.op("Gather", x, i64(g, r1), axis=ROWS))
    return g.op("Add", g.op("Mul", lh0, top), g.op("Mul", lh1, bottom))
