"""GroupedConv2DTranspose: ONNX's ConvTranspose has groups, strides and dilations together.

With no pads and no output_padding ConvTranspose gives the full ``s(H - 1) + d(k - 1) + 1``
per axis, the layer's 'valid' output. Its weight is (C_in, C_out / groups, kh, kw): the
layer's kernel (kh, kw, C_out / groups, C_in) transposed by (3, 2, 0, 1); group g reads input
channels g*C_in/groups... and writes output channels g*C_out/groups..., as the layer's
per-group loop does."""

from __future__ import annotations

import numpy as np

from .registry import lowering


@lowering("GroupedConv2DTranspose")
def grouped_conv_transpose(layer, g, inputs, outputs):
    weights = layer.get_weights()
    kernel = np.ascontiguousarray(weights[0].transpose(3, 2, 0, 1))
    operands = [g.value(inputs[0], "nchw"), g.const(kernel)]
    if layer.use_bias:
        operands.append(g.const(weights[1]))
    y = g.op("ConvTranspose", *operands, group=layer.groups, strides=list(layer.strides),
             dilations=list(layer.dilation_rate), kernel_shape=list(layer.kernel_size))
    g.set(outputs[0], y, "nchw")
