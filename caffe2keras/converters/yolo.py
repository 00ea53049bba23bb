"""The YOLOv2 Caffe ports' Reorg (darknet's reorg, as Permute/Reshape steps) and Region
(logistic on x, y and objectness, softmax over the classes).

Reorg's index math (reorg_cpu of the ports, darknet's): with b = (C, H, W) the bottom and
t_c = C / s^2, the port reads the bottom's buffer as X of shape (t_c, H*s, W*s) and, by
default (reverse false), writes top'[c, h, w] = X[c % t_c, h*s + (c / t_c) / s,
w*s + (c / t_c) % s] for c < C, h < H, w < W; top' is then read as (C*s^2, H/s, W/s). That
is not a space-to-depth of the bottom, which is why it is spelt out here. With ``reverse`` the
port writes the other way: top[c % t_c, h*s + (c / t_c) / s, w*s + (c / t_c) % s] =
bottom[c, h, w], a depth-to-space with the s*s offsets as the slowest part of C.
"""

from __future__ import annotations

from ..lazy import custom_layers, keras
from ..registry import Step, converter
from ..shapes.yolo import region_entries, reorg_stride
from .common import name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("Permute", "Region", "Reshape")


@converter("Reorg")
def reorg(layer, ctx):
    _, c, h, w = ctx.bottom_shapes[0]
    _, top_c, top_h, top_w = ctx.top_shapes[0]
    s = reorg_stride(layer)
    t_c = c // (s * s)
    if layer.param.reorg_param.reverse:
        # bottom (C, H, W) as (a, b, c2, h, w) with C = (a*s + b)*t_c + c2; merge (c2, h):
        # (s, s, t_c*H, W) -> top (c2 h, a, w, b) = axes (2, 0, 3, 1), read as (t_c, H*s, W*s)
        split, order = (s, s, t_c * h, w), (3, 1, 4, 2)
    else:
        # X = buffer as (t_c, H, s, W, s) with axes (c2, h, a, w, b); merge (c2, h):
        # (t_c*H, s, W, s) -> top' (a, b, c2 h, w) = axes (1, 3, 0, 2), read as (C*s^2, H/s, W/s)
        split, order = (t_c * h, s, w, s), (2, 4, 1, 3)
    return [
        Step(keras.layers.Permute((3, 1, 2), name=name_of(layer, "to_nchw"))),
        Step(keras.layers.Reshape(split, name=name_of(layer, "split"))),
        Step(keras.layers.Permute(order, name=name_of(layer, "move"))),
        Step(keras.layers.Reshape((top_c, top_h, top_w), name=name_of(layer, "merge"))),
        Step(keras.layers.Permute((2, 3, 1), name=name_of(layer))),
    ]


@converter("Region")
def region(layer, ctx):
    num, coords, classes = region_entries(layer)
    return [Step(custom_layers.Region(num=num, coords=coords, classes=classes,
                                      name=name_of(layer)))]
