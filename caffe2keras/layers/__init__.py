"""Custom Keras layers the converters emit; importing this package registers them for loading.

Every class is registered under the package name "caffe2keras", so a saved model loads with
``keras.models.load_model(path, safe_mode=True)`` once this package has been imported.
"""

from caffe2keras.layers.affine import Bias, BiasByInput, Scale, ScaleByInput
from caffe2keras.layers.elementwise import AbsVal, Exp, Log, Power, Threshold, WeightedSum
from caffe2keras.layers.lrn import LRN
from caffe2keras.layers.pooling import CaffePooling2D

__all__ = [
    "AbsVal",
    "Bias",
    "BiasByInput",
    "CaffePooling2D",
    "Exp",
    "LRN",
    "Log",
    "Power",
    "Scale",
    "ScaleByInput",
    "Threshold",
    "WeightedSum",
]
