"""Shape rules of the YOLOv2 Caffe ports' Reorg and Region layers.

Reorg (reorg_layer.cpp, darknet's reorg_cpu): stride s; the top is (N, C*s*s, H/s, W/s), or
with ``reverse`` (N, C/(s*s), H*s, W*s). The port writes every element of the bottom into the
top, so both must hold the same count: s*s must divide C (darknet's index math splits C into
s*s blocks) and, for the default direction, s must divide H and W.

Region (region_layer.cpp of the inference ports): the top has the bottom's shape; C must be
num * (coords + classes + 1), the port's per-anchor entries.
"""

from __future__ import annotations

from .registry import expect_bottoms, expect_ndim, layer_error, shape_rule, sub_param


def reorg_stride(layer) -> int:
    p = sub_param(layer, "reorg_param")
    if not p.HasField("stride"):
        raise layer_error(layer, "reorg_param needs a stride (the port's LayerSetUp checks it)")
    if p.stride <= 0:
        raise layer_error(layer, f"stride must be positive, got {p.stride}")
    return p.stride


@shape_rule("Reorg")
def _reorg(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    expect_ndim(layer, bottoms[0], 4)
    n, c, h, w = bottoms[0]
    s = reorg_stride(layer)
    block = s * s
    reverse = sub_param(layer, "reorg_param").reverse
    if c % block or (not reverse and (h % s or w % s)):
        wanted = f"C divisible by {block}" + ("" if reverse else f" and H, W by {s}")
        raise layer_error(layer, f"stride {s} needs {wanted}, got {tuple(bottoms[0])} (the "
                                 "port would read or write past its blobs)")
    if reverse:
        return [(n, c // block, h * s, w * s)]
    return [(n, c * block, h // s, w // s)]


def region_entries(layer) -> tuple[int, int, int]:
    """(num, coords, classes), each required: the ports' defaults differ."""
    p = sub_param(layer, "region_param")
    missing = [f for f in ("classes", "coords", "num") if not p.HasField(f)]
    if missing:
        raise layer_error(layer, f"region_param must set {', '.join(missing)} (the YOLOv2 ports "
                                 "disagree on the defaults)")
    if p.num <= 0 or p.coords < 2:
        raise layer_error(layer, f"num must be positive and coords at least 2 (x, y), got "
                                 f"num {p.num}, coords {p.coords}")
    return p.num, p.coords, p.classes


@shape_rule("Region")
def _region(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    expect_ndim(layer, bottoms[0], 4)
    num, coords, classes = region_entries(layer)
    channels = bottoms[0][1]
    if channels != num * (coords + classes + 1):
        raise layer_error(layer, f"the input has {channels} channels, num * (coords + classes "
                                 f"+ 1) = {num} * ({coords} + {classes} + 1) = "
                                 f"{num * (coords + classes + 1)}")
    return [tuple(bottoms[0])]
