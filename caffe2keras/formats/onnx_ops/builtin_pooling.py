"""MaxPooling2D, AveragePooling2D and their global forms.

Keras' 'same' pooling pads the TensorFlow way (the odd row or column at the end) and
neither the max nor the average sees the padding: ONNX's MaxPool ignores pads, and
AveragePool with count_include_pad=0 divides by the cells inside the image only.
"""

from __future__ import annotations

from keras import layers

from .builtin_conv import spatial_input, spatial_size, window_pads
from .registry import lowering


def _pool(op_type, layer, g, inputs, outputs, **extra):
    x, layout = spatial_input(g, layer, inputs[0])
    pads = window_pads(layer.padding, spatial_size(layer, inputs[0]), layer.pool_size,
                       layer.strides)
    y = g.op(op_type, x, kernel_shape=list(layer.pool_size), strides=list(layer.strides),
             pads=pads, **extra)
    g.set(outputs[0], y, layout)


@lowering(layers.MaxPooling2D)
def max_pooling2d(layer, g, inputs, outputs):
    _pool("MaxPool", layer, g, inputs, outputs)


@lowering(layers.AveragePooling2D)
def average_pooling2d(layer, g, inputs, outputs):
    _pool("AveragePool", layer, g, inputs, outputs, count_include_pad=0)


def _global_pool(op_type, layer, g, inputs, outputs):
    x, layout = spatial_input(g, layer, inputs[0])
    y = g.op(op_type, x)  # (N, C, 1, 1)
    if layer.keepdims:
        g.set(outputs[0], y, layout)
    else:
        g.set(outputs[0], g.op("Flatten", y, axis=1), "keras")


@lowering(layers.GlobalAveragePooling2D)
def global_average_pooling2d(layer, g, inputs, outputs):
    _global_pool("GlobalAveragePool", layer, g, inputs, outputs)


@lowering(layers.GlobalMaxPooling2D)
def global_max_pooling2d(layer, g, inputs, outputs):
    _global_pool("GlobalMaxPool", layer, g, inputs, outputs)
