"""CaffePreprocess: channel swap, raw scale, mean subtraction and scale, in the layer's order,
on the input as stored."""

from __future__ import annotations

from .custom_common import FLOAT, f32, i64, stored_axis
from .registry import lowering


@lowering("CaffePreprocess")
def caffe_preprocess(layer, g, inputs, outputs):
    x_tensor = inputs[0]
    layout = g.layout(x_tensor)
    x = g.value(x_tensor, "any")
    if str(x_tensor.dtype) != "float32":  # the layer computes in float32
        x = g.op("Cast", x, to=FLOAT)
    if layer.channel_swap is not None:  # output channel i is input channel channel_swap[i]
        x = g.op("Gather", x, i64(g, layer.channel_swap), axis=stored_axis(g, x_tensor, -1))
    if layer.raw_scale != 1.0:
        x = g.op("Mul", x, f32(g, layer.raw_scale))
    if layer.mean is not None:  # (C,) or (H, W, C), in the Keras layout
        mean = g.const_in_layout(layer.get_weights()[0], 4, layout)
        x = g.op("Sub", x, mean)
    if layer.scale != 1.0:
        x = g.op("Mul", x, f32(g, layer.scale))
    g.set(outputs[0], x, layout)
