"""The Region layer of the YOLOv2 Caffe inference ports (region_layer.cpp).

Caffe's bottom is (N, num * (coords + classes + 1), H, W): for anchor n, channel
n * K + e holds entry e (K = coords + classes + 1): x, y, w, h (and further coordinates),
objectness, then the class scores. The port copies the bottom to the top, applies the logistic
1 / (1 + exp(-v)) to entries 0, 1 (x, y) and ``coords`` (objectness), and a softmax over the
``classes`` entries after it at each position; w and h stay as they are. Here the input is
NHWC, so the channel axis is last and splits into (num, K).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="caffe2keras")
class Region(keras.layers.Layer):
    def __init__(self, num, coords, classes, **kwargs):
        super().__init__(**kwargs)
        for field, value, low in (("num", num, 1), ("coords", coords, 2), ("classes", classes, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"Region {field} must be an int >= {low}, got {value!r}")
        self.num, self.coords, self.classes = num, coords, classes

    def build(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise ValueError(f"Region needs an NHWC input with static H, W, C, got {input_shape}")
        entries = self.num * (self.coords + self.classes + 1)
        if input_shape[-1] != entries:
            raise ValueError(f"Region input has {input_shape[-1]} channels, num * (coords + "
                             f"classes + 1) is {entries}")
        super().build(input_shape)

    def call(self, inputs):
        _, height, width, channels = inputs.shape
        k = self.coords + self.classes + 1
        x = ops.reshape(inputs, (-1, height, width, self.num, k))
        parts = [ops.sigmoid(x[..., :2])]
        if self.coords > 2:
            parts.append(x[..., 2:self.coords])
        parts.append(ops.sigmoid(x[..., self.coords:self.coords + 1]))
        if self.classes:
            parts.append(ops.softmax(x[..., self.coords + 1:], axis=-1))
        return ops.reshape(ops.concatenate(parts, axis=-1), (-1, height, width, channels))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(num=self.num, coords=self.coords, classes=self.classes)
        return config
