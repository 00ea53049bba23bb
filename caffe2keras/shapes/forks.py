"""Shape rules of fork layers that are BVLC layers under another name or with their own
reading of BVLC parameters: the MobileNet forks' depthwise convolutions.

``ConvolutionDepthwise`` (farmingyard/caffe-mobilenet, conv_dw_layer.cpp) reads kernel, stride,
pad and dilation from convolution_param and ignores num_output and group: its top has the
input's channels, one k_h x k_w filter per channel (weights C x 1 x k_h x k_w, bias C). It is
BVLC's Convolution with num_output = group = C. ``DepthwiseConvolution``
(yonghenglh6/DepthwiseConvolution) is a drop-in type name for a Convolution whose
convolution_param is read as BVLC reads it; its kernel handles one filter per input channel
only, so group = num_output = C is required.
"""

from __future__ import annotations

import dataclasses

from .registry import Shape, blob_rule, get_blob_rule, get_shape_rule, layer_error, shape_rule

FARMINGYARD_DEPTHWISE = "ConvolutionDepthwise"
YONGHENGLH6_DEPTHWISE = "DepthwiseConvolution"


def as_convolution(layer, bottom: Shape):
    """The BVLC Convolution layer that computes what the fork's depthwise layer computes."""
    if len(bottom) != 4:
        raise layer_error(layer, f"needs an N,C,H,W input, got {tuple(bottom)}")
    channels = bottom[1]
    param = type(layer.param)()
    param.CopyFrom(layer.param)
    param.type = "Convolution"
    cp = param.convolution_param
    if layer.type == FARMINGYARD_DEPTHWISE:
        cp.num_output = channels  # the fork ignores num_output and group
        cp.group = channels
    elif not (cp.group == cp.num_output == channels):
        raise layer_error(layer, f"this fork's kernel convolves each input channel with one "
                                 f"filter: group ({cp.group}) and num_output ({cp.num_output}) "
                                 f"must both equal the input channels ({channels})")
    if cp.axis != 1:
        raise layer_error(layer, f"the fork convolves over axis 1, got axis {cp.axis}")
    return dataclasses.replace(layer, type="Convolution", param=param)


@shape_rule(FARMINGYARD_DEPTHWISE, YONGHENGLH6_DEPTHWISE)
def _depthwise(layer, bottoms):
    if len(bottoms) != 1:
        raise layer_error(layer, f"takes 1 bottom, got {len(bottoms)}")
    return get_shape_rule("Convolution")(as_convolution(layer, bottoms[0]), bottoms)


@blob_rule(FARMINGYARD_DEPTHWISE, YONGHENGLH6_DEPTHWISE)
def _depthwise_blobs(layer, bottoms):
    return get_blob_rule("Convolution")(as_convolution(layer, bottoms[0]), bottoms)
