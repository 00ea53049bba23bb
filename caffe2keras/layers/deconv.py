"""A grouped, dilated transposed convolution: Caffe's Deconvolution where Keras' layer cannot.

Keras' ``Conv2DTranspose`` has no ``groups`` and refuses a dilation together with a stride;
``keras.ops.conv_transpose`` takes both dilation and stride, so this layer runs it once per
group and concatenates the groups' outputs (the weights stay trainable, so fine-tuning works).

Caffe (deconv_layer.cpp, col2im): every input pixel (h, w) of group g adds
``x[h, w, i] * W[i, o, a, b]`` at output ``(h*s_h + a*d_h, w*s_w + b*d_w)``, giving the full
size ``s(H - 1) + d(k - 1) + 1`` per axis; Caffe's pad then crops the result, which is left to a
following Cropping2D. ``keras.ops.conv_transpose`` with ``padding="valid"`` and
``output_padding=0`` computes exactly that full output with the kernel ``(kh, kw, C_out, C_in)``,
i.e. Caffe's blob ``(C_in, C_out / g, kh, kw)`` transposed by (2, 3, 1, 0), no flip. Here the
kernel is ``(kh, kw, filters // groups, C_in)``: group g reads input channels
``g*C_in/groups ...`` and kernel columns ``[..., g*C_in/groups ...]`` and writes output channels
``g*filters/groups ...``. Channels-last only.
"""

from __future__ import annotations

import keras
from keras import ops


def _pair(layer: str, name: str, value) -> tuple[int, int]:
    values = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        values = (None,)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                   for v in values):
        raise ValueError(f"{layer} {name} must be a positive int or a pair of them, got {value!r}")
    return values


@keras.saving.register_keras_serializable(package="caffe2keras")
class GroupedConv2DTranspose(keras.layers.Layer):
    """Transposed convolution with groups and any stride/dilation; 'valid' (uncropped) output."""

    def __init__(self, filters, kernel_size, strides=1, dilation_rate=1, groups=1, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        name = "GroupedConv2DTranspose"
        for label, value in (("filters", filters), ("groups", groups)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} {label} must be a positive int, got {value!r}")
        if filters % groups:
            raise ValueError(f"{name} groups {groups} must divide filters {filters}")
        self.filters = filters
        self.groups = groups
        self.kernel_size = _pair(name, "kernel_size", kernel_size)
        self.strides = _pair(name, "strides", strides)
        self.dilation_rate = _pair(name, "dilation_rate", dilation_rate)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"GroupedConv2DTranspose needs a 4-D channels-last input with a known "
                             f"channel count, got {tuple(input_shape)}")
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(f"GroupedConv2DTranspose groups {self.groups} must divide the "
                             f"{channels} input channels")
        self.kernel = self.add_weight(
            shape=self.kernel_size + (self.filters // self.groups, channels),
            initializer=self.kernel_initializer, name="kernel")
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                        name="bias")
        super().build(input_shape)

    def call(self, inputs):
        step = inputs.shape[-1] // self.groups
        outputs = []
        for g in range(self.groups):
            outputs.append(ops.conv_transpose(
                inputs[..., g * step:(g + 1) * step], self.kernel[..., g * step:(g + 1) * step],
                strides=self.strides, padding="valid", output_padding=0,
                data_format="channels_last", dilation_rate=self.dilation_rate))
        y = outputs[0] if self.groups == 1 else ops.concatenate(outputs, axis=-1)
        return y + self.bias if self.use_bias else y

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        size = []
        for length, k, s, d in zip((h, w), self.kernel_size, self.strides, self.dilation_rate):
            size.append(None if length is None else s * (length - 1) + d * (k - 1) + 1)
        return (n, size[0], size[1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=list(self.kernel_size),
                      strides=list(self.strides), dilation_rate=list(self.dilation_rate),
                      groups=self.groups, use_bias=self.use_bias,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      bias_initializer=keras.initializers.serialize(self.bias_initializer))
        return config
