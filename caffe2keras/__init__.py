"""caffe2keras: convert Caffe models into Keras 3 models that compute Caffe's numbers.

    import caffe2keras
    model = caffe2keras.convert("deploy.prototxt", "model.caffemodel")

Importing this package is light: numpy and protobuf only. Keras (and TensorFlow) load when
a model is first built. Our custom layers register themselves with Keras as soon as Keras
is imported, so ``keras.models.load_model(path, safe_mode=True)`` finds them.
"""

from __future__ import annotations

import sys

from .errors import (CaffeToKerasError, OutputError, ParseError, StructureError,
                     UnsupportedLayerError, VerificationError, WeightsMismatchError)
from .ir import Layer, Net
from .reader.binary import read_mean_file
from .reader.loader import load_net
from .registry import Step, converter, keras_layer_name
from .shapes import shape_rule
from . import keras_hook as _keras_hook

__version__ = "0.1.0"

__all__ = [
    "convert", "convert_file", "load_net", "read_mean_file", "converter", "shape_rule", "Step",
    "keras_layer_name", "Layer", "Net", "CaffeToKerasError", "ParseError", "StructureError",
    "UnsupportedLayerError", "WeightsMismatchError", "OutputError", "VerificationError",
]


def convert(*args, **kwargs):
    from .api import convert as _convert
    return _convert(*args, **kwargs)


convert.__doc__ = "Convert a Caffe net into a keras.Model (see caffe2keras.api.convert)."


def convert_file(*args, **kwargs):
    from .api import convert_file as _convert_file
    return _convert_file(*args, **kwargs)


convert_file.__doc__ = "Convert and save atomically (see caffe2keras.api.convert_file)."

_keras_hook.register_layers_when_keras_loads()
del sys
