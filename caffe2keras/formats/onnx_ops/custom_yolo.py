"""Region (YOLOv2 Caffe ports), channels-first: the channels split into (num, K) anchors of K
entries, the logistic on entries 0, 1 and ``coords``, a softmax over the class entries."""

from __future__ import annotations

from .custom_common import i64
from .registry import lowering


@lowering("Region")
def region(layer, g, inputs, outputs):
    _, height, width, channels = g.shape(inputs[0])
    coords, classes = layer.coords, layer.classes
    k = coords + classes + 1
    x = g.op("Reshape", g.value(inputs[0], "nchw"), i64(g, [0, layer.num, k, height, width]))

    def entries(start, stop):
        return g.op("Slice", x, i64(g, [start]), i64(g, [stop]), i64(g, [2]))

    parts = [g.op("Sigmoid", entries(0, 2))]
    if coords > 2:
        parts.append(entries(2, coords))
    parts.append(g.op("Sigmoid", entries(coords, coords + 1)))
    if classes:
        parts.append(g.op("Softmax", entries(coords + 1, k), axis=2))
    y = g.op("Concat", *parts, axis=2)
    g.set(outputs[0], g.op("Reshape", y, i64(g, [0, channels, height, width])), "nchw")
