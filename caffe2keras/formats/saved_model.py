"""A TensorFlow SavedModel folder (Keras' ``model.export``), for TensorFlow Serving."""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import OutputError
from .base import Format, Runner


class SavedModelRunner(Runner):
    """The ``serve`` function Keras exports: positional inputs and results in the model's
    order, named by the file ``export.py`` writes beside ``saved_model.pb``."""

    def __init__(self, path):
        import tensorflow as tf
        from ..export import NAMES_FILE
        names_file = os.path.join(path, NAMES_FILE)
        if not os.path.isfile(names_file):
            raise OutputError(f"{path}: no {NAMES_FILE}: not a SavedModel written by caffe2keras")
        with open(names_file) as names:
            names = json.load(names)
        self.inputs, self.outputs = names["inputs"], names["outputs"]
        # Keep the loaded object: its variables die with it, and ``serve`` alone does not hold it.
        self.loaded = tf.saved_model.load(path)
        self.serve = self.loaded.serve

    def run(self, feeds):
        values = [feeds[name] for name in self.inputs]  # one argument: the list, or the tensor
        results = self.serve(values if len(values) > 1 else values[0])
        if len(self.outputs) == 1:
            results = [results]
        return {name: np.asarray(value) for name, value in zip(self.outputs, results)}


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

