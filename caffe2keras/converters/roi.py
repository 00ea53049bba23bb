"""Region-of-interest layers of the detection forks, refused by design with the reason.

ROIPooling (Faster R-CNN), PSROIPooling (R-FCN; in our real Caffe build) and Proposal (the
py-faster-rcnn Python layer, a C++ layer in some builds) take or make a blob of R boxes
(R, 5) = (item index, x1, y1, x2, y2) and give one top item per box: R is a second batch axis
beside the images' N. A Keras model has one batch axis that all its inputs and outputs share
(``model.predict`` and every exported format feed each input the same batch size), so no
converted model can take N images and R boxes and give Caffe's (R, C, h, w) top. Proposal's
R also depends on the data (the boxes left after NMS). A net's feature part up to these layers
converts with ``--outputs``.
"""

from __future__ import annotations

from ..registry import refuse

refuse("ROIPooling", "PSROIPooling",
       reason="its top has one item per ROI (R from the (R, 5) rois bottom, not the images' "
              "batch N); a Keras model's inputs and outputs share one batch axis, so convert "
              "the feature part with --outputs and pool the ROIs outside the model")
refuse("Proposal",
       reason="it makes a data-dependent number R of (R, 5) ROIs (those left after NMS), a "
              "second batch axis no Keras model has; convert the network up to its inputs "
              "with --outputs")
refuse("Python",
       reason="it runs the Python class that python_param names (py-faster-rcnn's Proposal "
              "and the like); that code is not in the model files, so there is nothing to "
              "convert; convert the network up to its inputs with --outputs, or register a "
              "converter for the type")
