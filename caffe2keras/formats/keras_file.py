"""``.keras`` and ``.h5`` files: Keras' own formats, written by ``save.py``."""

from __future__ import annotations

import numpy as np

from .base import Format, Runner, input_names, keras_results, output_names


class KerasRunner(Runner):
    """A Keras model run by Keras (also what SavedModel-free formats compare against)."""

    def __init__(self, model):
        self.model = model
        self.inputs, self.outputs = input_names(model), output_names(model)

    def run(self, feeds):
        results = keras_results(self.model, [feeds[name] for name in self.inputs])
        return {name: np.asarray(result) for name, result in zip(self.outputs, results)}


class KerasFormat(Format):
    name = "keras"
    extensions = (".keras",)
    description = "Keras v3"
    runtime = "keras"
    batch = "free (None)"
    checked = False  # it is the model itself

    def write(self, model, path):
        from ..save import save_model
        save_model(model, path)

    def load(self, path):
        from ..lazy import keras
        import caffe2keras.layers  # noqa: F401  (registers the custom layers)
        return KerasRunner(keras.models.load_model(path, safe_mode=True, compile=False))


class H5Format(KerasFormat):
    name = "h5"
    extensions = (".h5",)
    description = "Keras HDF5 (legacy)"
