"""Custom ROIPooling (max) and PSROIPooling (position-sensitive average) layers, one pooled
map per row of the (R, 5) rois, an input or blob with its own axis 0 R (not the images' N).

Proposal and Python stay refused by name with the reason.

The contract: the rois bottom (a model input or a computed blob) has Caffe's shape (R, 5),
rows [batch index, x1, y1, x2, y2] in input-image pixels, and keeps that shape in Keras with R
as its own free axis 0, independent of the images' batch N. The ROI layer's top has axis 0 = R,
and the layers after it run per ROI (Caffe's R-batch). A Keras model whose inputs differ in
axis 0 runs when called directly, ``model([images, rois])``; ``model.predict`` refuses it
("Data cardinality is ambiguous"). Proposal's R depends on the data (the boxes left after
NMS), and a Python layer's code is not in the model files.
"""

from __future__ import annotations

from ..lazy import custom_layers
from ..registry import Step, converter, refuse
from .common import name_of

# The Keras layer classes this family's converters emit (for the formats table).
KERAS_LAYERS = ("PSROIPooling", "ROIPooling")


@converter("ROIPooling")
def roi_pooling(layer, ctx):
    p = layer.param.roi_pooling_param
    return [Step(custom_layers.ROIPooling(pooled_h=p.pooled_h, pooled_w=p.pooled_w,
                                          spatial_scale=p.spatial_scale, name=name_of(layer)))]


@converter("PSROIPooling")
def psroi_pooling(layer, ctx):
    p = layer.param.psroi_pooling_param
    return [Step(custom_layers.PSROIPooling(output_dim=p.output_dim, group_size=p.group_size,
                                            spatial_scale=p.spatial_scale, name=name_of(layer)))]


refuse("Proposal",
       reason="it makes a data-dependent number R of (R, 5) ROIs (those left after NMS); "
              "convert the network up to its inputs with --outputs, or make the ROIs outside "
              "and feed them to the converted ROIPooling as the rois input")
refuse("Python",
       reason="it runs the Python class that python_param names (py-faster-rcnn's Proposal "
              "and the like); that code is not in the model files, so there is nothing to "
              "convert; convert the network up to its inputs with --outputs, or register a "
              "converter for the type")
