"""Lowerings of Keras layers to ONNX nodes, one module per family, registered in
``registry``: ``builtin_*`` for Keras' own layers, ``custom_*`` for caffe2keras' layers.
Importing this package registers them all (it imports Keras)."""

from __future__ import annotations

from . import (builtin_activation, builtin_conv, builtin_merge, builtin_norm,  # noqa: F401
               builtin_pooling, builtin_shape, builtin_spatial)
from . import (custom_affine, custom_common, custom_deconv, custom_detection,  # noqa: F401
               custom_elementwise, custom_nms, custom_norm, custom_pooling, custom_preprocess,
               custom_resize, custom_shape)
from . import custom_yolo  # noqa: F401  (Region of the YOLOv2 ports)
from . import custom_fork  # noqa: F401  (Clip, Swish, CaffePad, BilinearResize)
from . import custom_segmentation  # noqa: F401  (pooling with its mask, MaxUnpool2D)
from . import custom_sequence, custom_windows  # noqa: F401  (Embed, LSTM, RNN; Im2col, SPP, ...)
from . import custom_roi  # noqa: F401  (ROIPooling, PSROIPooling)
from .graph import OnnxGraph
from .registry import find_lowering, lowering, refusal, refusal_reason


def is_input_layer(layer) -> bool:
    """Keras' InputLayer: a graph input, nothing to lower."""
    return type(layer).__name__ == "InputLayer"


__all__ = ["OnnxGraph", "find_lowering", "lowering", "refusal", "refusal_reason",
           "is_input_layer"]
