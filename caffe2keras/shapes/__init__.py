"""Caffe's shape inference, in Caffe's axis order (NCHW for images).

``infer_shapes(net)`` fills ``net.shapes`` and checks stored weights against the
shapes Caffe allocates. One module per layer family registers its rules with
``@shape_rule`` / ``@blob_rule``; they are imported here explicitly.
"""

from . import conv, detection, elementwise, norm, resize, structure  # noqa: F401  (registers)
from . import forks, yolo  # noqa: F401  (fork layers: depthwise, YOLO, ROI)
from . import resample  # noqa: F401  (Resize, BilinearInterpolate, Unsqueeze)
from . import segmentation  # noqa: F401  (BN, BatchNormKyle, MaxUnPool)
from . import sequence, windows  # noqa: F401  (LSTM, RNN; Im2col, SPP, Parameter)
from . import roi  # noqa: F401  (ROIPooling, PSROIPooling)
from .conv import (ConvGeometry, PoolGeometry, conv_geometry, conv_output_size,
                   deconv_output_size, inner_product_inputs, pool_clip, pool_geometry,
                   pool_output_size)
from .detection import num_priors, prior_aspect_ratios
from .infer import infer_shapes
from .registry import blob_rule, has_shape_rule, shape_rule, shape_rule_types

__all__ = [
    "infer_shapes", "shape_rule", "blob_rule", "has_shape_rule", "shape_rule_types",
    "ConvGeometry", "PoolGeometry", "conv_geometry", "pool_geometry", "conv_output_size",
    "deconv_output_size", "pool_output_size", "pool_clip", "inner_product_inputs",
    "num_priors", "prior_aspect_ratios",
]
