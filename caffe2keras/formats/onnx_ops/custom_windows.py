"""Im2col, SpatialPyramidPooling and Parameter, channels-first where they read images.

Im2col: the zero-padded input's k_h * k_w strided Slices, stacked after the channel axis and
merged with it (channel-major, as Caffe). SpatialPyramidPooling: each level is its
CaffePooling2D's own lowering, then Caffe's (C, H, W) flatten and one Concat. Parameter: the
blob expanded to the batch of the tensor it is called on."""

from __future__ import annotations

from .custom_common import i64
from .custom_pooling import caffe_pooling
from .graph import to_numpy
from .registry import lowering


@lowering("Im2col")
def im2col(layer, g, inputs, outputs):
    x = g.value(inputs[0], "nchw")
    (ph, pw), (sh, sw), (oh, ow) = layer.pad, layer.stride, layer.output_size
    if ph or pw:
        x = g.op("Pad", x, i64(g, [0, 0, ph, pw, 0, 0, ph, pw]), mode="constant")
    taps = []
    for r, c in layer.window_starts():
        tap = g.op("Slice", x, i64(g, [r, c]), i64(g, [r + (oh - 1) * sh + 1, c + (ow - 1) * sw + 1]),
                   i64(g, [2, 3]), i64(g, [sh, sw]))
        taps.append(g.op("Unsqueeze", tap, i64(g, [2])))
    stacked = taps[0] if len(taps) == 1 else g.op("Concat", *taps, axis=2)  # (N, C, K, H, W)
    channels = inputs[0].shape[-1] * len(taps)
    g.set(outputs[0], g.op("Reshape", stacked, i64(g, [-1, channels, oh, ow])), "nchw")


class _Level:
    """A stand-in Keras tensor for one pyramid level's pooled map (only its shape is read)."""

    def __init__(self, shape):
        self.shape = shape


@lowering("SpatialPyramidPooling")
def spatial_pyramid_pooling(layer, g, inputs, outputs):
    if len(layer.poolings) == 1:
        caffe_pooling(layer.poolings[0], g, inputs, outputs)
        return
    channels = inputs[0].shape[-1]
    flat = []
    for pooling, (*_, (h, w)) in zip(layer.poolings, layer.levels):
        level = _Level((None, h, w, channels))
        caffe_pooling(pooling, g, inputs, [level])
        flat.append(g.op("Reshape", g.value(level, "nchw"), i64(g, [-1, channels * h * w])))
    g.set(outputs[0], g.op("Concat", *flat, axis=1), "keras")


@lowering("Parameter")
def parameter(layer, g, inputs, outputs):
    batch = g.op("Slice", g.op("Shape", g.value(inputs[0], "any")), i64(g, [0]), i64(g, [1]))
    shape = g.op("Concat", batch, i64(g, list(layer.shape[1:])), axis=0)
    g.set(outputs[0], g.op("Expand", g.const(to_numpy(layer.blob)), shape), "keras")
