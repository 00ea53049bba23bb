"""IR -> IR passes run between shape inference and building."""

from __future__ import annotations

from .converters.norm import FUSED_BATCHNORM_SCALE
from .ir import Layer, Net
from .proto import caffe_pb2


def fuse_batchnorm_scale(net: Net) -> Net:
    """Merge each BatchNorm whose only reader is a per-channel Scale into one layer.

    The fused layer takes the Scale layer's name and tops (it produces what Scale
    produced) and carries the blobs [mean, var, factor, gamma(, beta)].
    """
    readers = net.consumers()
    fused_away = set()
    replacement = {}
    for bn in net.layers:
        if bn.type != "BatchNorm" or len(bn.blobs) < 3 or len(bn.tops) != 1:
            continue
        if bn.tops[0] in (net.output_values or ()):
            continue  # the BatchNorm's own output is wanted: keep it a layer of its own
        following = readers.get(bn.tops[0], [])
        if len(following) != 1 or not is_channel_scale(following[0], bn.tops[0],
                                                        len(net.shapes[bn.tops[0]])):
            continue
        scale = following[0]
        if len(scale.blobs) != (2 if scale.param.scale_param.bias_term else 1):
            continue
        param = caffe_pb2.LayerParameter()
        param.CopyFrom(bn.param)
        param.name, param.type = scale.name, FUSED_BATCHNORM_SCALE
        param.scale_param.CopyFrom(scale.param.scale_param)
        replacement[scale.name] = Layer(name=scale.name, type=FUSED_BATCHNORM_SCALE,
                                        bottoms=list(bn.bottoms), tops=list(scale.tops), param=param,
                                        blobs=bn.blobs[:3] + scale.blobs,
                                        top_blobs=list(scale.top_blobs))
        fused_away.add(bn.name)
    net.layers = [replacement.get(layer.name, layer) for layer in net.layers
                  if layer.name not in fused_away]
    return net


def is_channel_scale(layer: Layer, value: str, rank: int) -> bool:
    """A one-bottom Scale of ``value`` (a rank-``rank`` blob) with one factor per channel."""
    p = layer.param.scale_param
    channel_axis = p.axis + rank if p.axis < 0 else p.axis
    return (layer.type == "Scale" and layer.bottoms == [value] and channel_axis == 1
            and p.num_axes == 1)
