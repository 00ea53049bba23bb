"""The built-in converters, one module per layer family; importing them registers them."""

from . import (activation, conv, deconv, dense, detection, merge, norm, pooling,  # noqa: F401
               resize, shape_ops, structure)
from . import forks, yolo  # noqa: F401  (fork layers: depthwise, YOLO, ROI)
from . import roi  # noqa: F401  (ROIPooling, PSROIPooling; refused: Proposal, Python)
from . import fork_activation, resample  # noqa: F401  (converter-fork and later-Caffe layers)
from . import sequence, windows  # noqa: F401  (Embed, LSTM, RNN; Im2col, SPP, Parameter)
from . import segmentation  # noqa: F401  (BN, BatchNormKyle, MaxUnPool)
