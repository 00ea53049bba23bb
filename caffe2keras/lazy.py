"""Modules imported on first use, so that ``import caffe2keras`` does not pull in TensorFlow.

Reading and inspecting a Caffe model needs only numpy and protobuf; Keras (and with it
the TensorFlow backend, seconds to import) loads the first time a converter touches it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


keras = LazyModule("keras")
custom_layers = LazyModule("caffe2keras.layers")
