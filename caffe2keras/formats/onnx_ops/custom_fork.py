"""Clip, Swish, CaffePad and BilinearResize (caffe2keras.layers.fork_ops), step for step as the
layers compute. Clip and Swish are element-wise (any layout); the two spatial layers work on
the channels-first value."""

from __future__ import annotations

from .custom_common import f32, i64
from .custom_resize import bilinear_blend
from .registry import lowering


@lowering("Clip")
def clip(layer, g, inputs, outputs):
    """max(min(x, max), min), Caffe's order (min wins when min > max)."""
    x = g.value(inputs[0], "any")
    y = g.op("Max", g.op("Min", x, f32(g, layer.max)), f32(g, layer.min))
    g.set(outputs[0], y, g.layout(inputs[0]))


@lowering("Swish")
def swish(layer, g, inputs, outputs):
    x = g.value(inputs[0], "any")
    y = g.op("Mul", x, g.op("Sigmoid", g.op("Mul", x, f32(g, layer.beta))))
    g.set(outputs[0], y, g.layout(inputs[0]))


@lowering("CaffePad")
def caffe_pad(layer, g, inputs, outputs):
    """ONNX Pad in the layer's mode; edge padding of rows then columns equals the layer's."""
    x = g.value(inputs[0], "nchw")
    (top, bottom), (left, right) = layer.padding
    pads = i64(g, [0, 0, top, left, 0, 0, bottom, right])
    if layer.mode == "constant":
        y = g.op("Pad", x, pads, f32(g, layer.value), mode="constant")
    else:
        y = g.op("Pad", x, pads, mode=layer.mode)
    g.set(outputs[0], y, "nchw")


@lowering("BilinearResize")
def bilinear_resize(layer, g, inputs, outputs):
    """The layer's gathers and blend (Interp's), after one zero row and column for the
    "asymmetric" sampling."""
    x = g.value(inputs[0], "nchw")
    if layer._pad:
        x = g.op("Pad", x, i64(g, [0, 0, 0, 0, 0, 0, 1, 1]), mode="constant")
    g.set(outputs[0], bilinear_blend(g, x, layer._rows, layer._cols), "nchw")
