"""Custom Keras layers the converters emit; importing this package registers them for loading.

Every class is registered under the package name "caffe2keras", so a saved model loads with
``keras.models.load_model(path, safe_mode=True)`` once this package has been imported.
"""

from caffe2keras.layers.affine import Bias, BiasByInput, Scale, ScaleByInput
from caffe2keras.layers.axpy import Axpy
from caffe2keras.layers.deconv import GroupedConv2DTranspose
from caffe2keras.layers.detection import DetectionOutput, PriorBox
from caffe2keras.layers.elementwise import AbsVal, Exp, Log, Power, Threshold, WeightedSum
from caffe2keras.layers.fork_ops import BilinearResize, CaffePad, Clip, Swish
from caffe2keras.layers.lrn import LRN
from caffe2keras.layers.normalize import MVN, Normalize
from caffe2keras.layers.pooling import CaffeMaxPoolingWithMask, CaffePooling2D
from caffe2keras.layers.preprocess import CaffePreprocess
from caffe2keras.layers.resize import Interp
from caffe2keras.layers.roi import PSROIPooling, ROIPooling
from caffe2keras.layers.sequence import CaffeLSTM, CaffeRNN, Embed
from caffe2keras.layers.windows import Im2col, Parameter, SpatialPyramidPooling
from caffe2keras.layers.shape import ArgMax, Crop, Reduction, Slice, Tile
from caffe2keras.layers.unpool import MaxUnpool2D
from caffe2keras.layers.yolo import Region

__all__ = [
    "AbsVal",
    "ArgMax",
    "Axpy",
    "Bias",
    "BilinearResize",
    "BiasByInput",
    "CaffeLSTM",
    "CaffeMaxPoolingWithMask",
    "CaffePad",
    "CaffePooling2D",
    "CaffePreprocess",
    "CaffeRNN",
    "Clip",
    "Crop",
    "DetectionOutput",
    "Embed",
    "Exp",
    "GroupedConv2DTranspose",
    "Im2col",
    "Interp",
    "LRN",
    "Log",
    "MaxUnpool2D",
    "MVN",
    "Normalize",
    "Parameter",
    "PSROIPooling",
    "Power",
    "PriorBox",
    "Reduction",
    "Region",
    "ROIPooling",
    "Scale",
    "ScaleByInput",
    "Slice",
    "SpatialPyramidPooling",
    "Swish",
    "Threshold",
    "Tile",
    "WeightedSum",
]
