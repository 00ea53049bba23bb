"""Caffe's input transform as a Keras layer: images in, the blob Caffe's net was fed out.

pycaffe's ``Transformer.preprocess`` (python/caffe/io.py) and the data layers'
``DataTransformer`` (src/caffe/data_transformer.cpp) apply, to an image already at the
net's size, in this order::

    x = image[..., channel_swap]   # e.g. (2, 1, 0): RGB -> BGR, the order of Caffe's zoo
    x = x * raw_scale              # pycaffe only: 255 for images in [0, 1]
    x = x - mean                   # per channel, or per pixel (a mean image)
    x = x * scale                  # DataTransformer's ``scale``, pycaffe's ``input_scale``

all in float32. The mean is a non-trainable weight in the net's channel order (after the
swap), of shape (C,) or (H, W, C); everything else is in the config, so a saved model keeps
a record of its transform (``get_config()``, ``describe()``).
"""

from __future__ import annotations

import math

import keras
from keras import ops


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"CaffePreprocess {name} must be a finite number, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="caffe2keras")
class CaffePreprocess(keras.layers.Layer):
    """Channel swap, raw scale, mean subtraction and scale, in Caffe's order, on NHWC input.

    ``channel_swap``: None or a permutation of the channels (output channel i is input
    channel ``channel_swap[i]``). ``mean_shape``: None (no mean), ``(C,)`` or ``(H, W, C)``;
    the values are the layer's one weight. ``mean_source`` is free text saying where the
    mean came from, kept for the record.
    """

    def __init__(self, channel_swap=None, raw_scale=1.0, mean_shape=None, scale=1.0,
                 mean_source="", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if channel_swap is not None:
            channel_swap = list(channel_swap)
            if any(isinstance(i, bool) or not isinstance(i, int) for i in channel_swap) \
                    or sorted(channel_swap) != list(range(len(channel_swap))):
                raise ValueError("CaffePreprocess channel_swap must be a permutation of 0..C-1, "
                                 f"got {channel_swap!r}")
        if mean_shape is not None:
            mean_shape = tuple(mean_shape)
            if len(mean_shape) not in (1, 3) or not all(isinstance(d, int) and d > 0
                                                        for d in mean_shape):
                raise ValueError("CaffePreprocess mean_shape must be (C,) or (H, W, C) with "
                                 f"positive sizes, got {mean_shape!r}")
        self.channel_swap = channel_swap
        self.raw_scale = _number("raw_scale", raw_scale)
        self.scale = _number("scale", scale)
        self.mean_shape = mean_shape
        self.mean_source = str(mean_source)
        self.mean = None

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"CaffePreprocess expects a rank-4 NHWC input, got shape "
                             f"{tuple(input_shape)}")
        channels = input_shape[-1]
        if self.channel_swap is not None and len(self.channel_swap) != channels:
            raise ValueError(f"CaffePreprocess channel_swap {self.channel_swap} does not fit an "
                             f"input with {channels} channels")
        if self.mean_shape is not None:
            if self.mean_shape[-1] != channels or (
                    len(self.mean_shape) == 3 and None not in input_shape[1:3]
                    and tuple(input_shape[1:3]) != self.mean_shape[:2]):
                raise ValueError(f"CaffePreprocess mean of shape {self.mean_shape} does not fit "
                                 f"an input of shape {tuple(input_shape)}")
            self.mean = self.add_weight(name="mean", shape=self.mean_shape, initializer="zeros",
                                        trainable=False)
        super().build(input_shape)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.channel_swap is not None:
            x = ops.take(x, self.channel_swap, axis=-1)
        if self.raw_scale != 1.0:
            x = x * self.raw_scale
        if self.mean is not None:
            x = x - self.mean
        if self.scale != 1.0:
            x = x * self.scale
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def describe(self) -> str:
        """The transform in one line, in the order it is applied."""
        steps = []
        if self.channel_swap is not None:
            steps.append(f"channels reordered {self.channel_swap}"
                         + (" (RGB -> BGR)" if self.channel_swap == [2, 1, 0] else ""))
        if self.raw_scale != 1.0:
            steps.append(f"times {self.raw_scale:g}")
        if self.mean_shape is not None:
            kind = "per channel" if len(self.mean_shape) == 1 else "per pixel"
            steps.append(f"minus the mean ({kind}" + (f", {self.mean_source}"
                                                      if self.mean_source else "") + ")")
        if self.scale != 1.0:
            steps.append(f"times {self.scale:g}")
        return ", then ".join(steps) if steps else "identity"

    def get_config(self):
        config = super().get_config()
        config.update(channel_swap=self.channel_swap, raw_scale=self.raw_scale,
                      mean_shape=None if self.mean_shape is None else list(self.mean_shape),
                      scale=self.scale, mean_source=self.mean_source)
        return config
