"""A TensorFlow SavedModel folder (Keras' ``model.export``), for TensorFlow Serving."""

from __future__ import annotations

import numpy as np

from .base import Format, Runner, input_names, output_names


class SavedModelRunner(Runner):
    def __init__(self, path):
        import tensorflow as tf
        self.loaded = tf.saved_model.load(path)
        self.serve = self.loaded.signatures["serving_default"]
        self.inputs = sorted(self.serve.structured_input_signature[1])
        self.outputs = list(self.serve.structured_outputs)

    def run(self, feeds):
        import tensorflow as tf
        results = self.serve(**{name: tf.constant(feeds[name]) for name in self.inputs})
        return {name: np.asarray(value) for name, value in results.items()}


class SavedModelFormat(Format):
    name = "savedmodel"
    extensions = ("/",)
    description = "TensorFlow SavedModel folder"
    runtime = "tensorflow"
    batch = "free (None)"
    checked = False

    def write(self, model, path):
        from ..export import export_saved_model
        export_saved_model(model, path)

    def load(self, path):
        return SavedModelRunner(path)


__all__ = ["SavedModelFormat", "input_names", "output_names"]
