"""caffe2keras: convert Caffe models into Keras 3 models that compute Caffe's numbers.

    import caffe2keras
    model = caffe2keras.convert("deploy.prototxt", "model.caffemodel")
    checks = caffe2keras.verify("deploy.prototxt", "model.caffemodel", "ref.npz")

The API: :func:`convert` (a ``keras.Model``), :func:`convert_file` (written to disk),
:func:`load_net` (the IR, numpy weights, no Keras), :func:`verify` (layer-by-layer comparison
with Caffe's activations), :class:`Preprocess` (Caffe's input transform inside the model),
:func:`converter` and :func:`shape_rule` (custom layer types), and the errors, all subclasses
of :class:`CaffeToKerasError` with an ``exit_code``.

Importing this package is light: numpy and protobuf only. Keras (and TensorFlow) load when
a model is first built. Our custom layers register themselves with Keras as soon as Keras
is imported, so ``keras.models.load_model(path, safe_mode=True)`` finds them.
"""

from __future__ import annotations

from . import keras_hook as _keras_hook
from . import verify as _verify_module  # before the function below takes the name
from .api import convert, convert_file
from .errors import (CaffeToKerasError, OutputError, ParseError, StructureError,
                     UnsupportedLayerError, VerificationError, WeightsMismatchError)
from .ir import Layer, Net
from .preprocess import Preprocess
from .reader.binary import read_mean_file
from .reader.loader import load_net
from .registry import Step, converter, keras_layer_name
from .shapes import shape_rule
from .verify import BlobCheck

__version__ = "0.1.0"

__all__ = [
    "convert", "convert_file", "load_net", "verify", "Preprocess", "read_mean_file",
    "converter", "shape_rule", "Step", "keras_layer_name", "Layer", "Net", "BlobCheck",
    "CaffeToKerasError", "ParseError", "StructureError", "UnsupportedLayerError",
    "WeightsMismatchError", "OutputError", "VerificationError",
]


# `caffe2keras.verify` is this function; the module stays importable as caffe2keras.verify
# in `from caffe2keras.verify import ...` (it is already in sys.modules, so importing it
# again does not rebind the name).
verify = _verify_module.verify

_keras_hook.register_layers_when_keras_loads()
