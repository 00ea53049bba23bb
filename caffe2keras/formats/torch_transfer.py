"""How a Keras model crosses from the converting process to the torch export process.

Keras' config (``model.to_json()``) plus every variable's raw bytes, one after the other in
one file, with a manifest of (path, dtype, shape, offset). That is what a ``.keras`` file
holds, minus its zip and HDF5 layers: on VGG16 (553 MB of weights) writing and reading a
``.keras`` file cost 2.4 s and 2.8 s of CPU, this costs a fraction. The export process
rebuilds the model from the config (deserialised in safe mode, so no Lambda or arbitrary
code) and assigns the weights from a memory map, checking that every variable's path and
shape agree with the converting process's (paths up to Keras' per-process counters).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

CONFIG = "config.json"
WEIGHTS = "weights.bin"
MANIFEST = "weights.json"
ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {},
         "registered_name": None}


def write_model(model, folder: str) -> None:
    """The model's config, weights and manifest into ``folder``."""
    with open(os.path.join(folder, CONFIG), "w", encoding="utf-8") as handle:
        handle.write(model.to_json())
    manifest, offset = [], 0
    with open(os.path.join(folder, WEIGHTS), "wb") as handle:
        for variable in model.variables:
            array = np.asarray(variable.numpy(), order="C")  # one at a time; keeps 0-d as 0-d
            handle.write(memoryview(array).cast("B"))
            manifest.append({"path": variable.path, "dtype": array.dtype.str,
                             "shape": list(array.shape), "offset": offset})
            offset += array.nbytes
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)


def zero_initializers(config):
    """``config`` with every initializer replaced by zeros: the weights are assigned right
    after, and drawing VGG16's 138M random initial values alone costs 1.5 s."""
    if isinstance(config, dict):
        return {key: ZEROS if key.endswith("_initializer") and isinstance(value, dict)
                and "class_name" in value else zero_initializers(value)
                for key, value in config.items()}
    if isinstance(config, list):
        return [zero_initializers(value) for value in config]
    return config


def unnumbered(path: str) -> str:
    """A variable path without the counters Keras appends to unnamed objects per process
    ('seed_generator_10/seed_generator_state' of a Dropout -> 'seed_generator/...')."""
    return re.sub(r"_\d+(?=/|$)", "", path)


class ModelMismatch(Exception):
    """The rebuilt model's variables are not the ones written."""


def read_model(folder: str):
    """The model written by ``write_model``, rebuilt on this process's Keras backend."""
    import keras

    with open(os.path.join(folder, CONFIG), encoding="utf-8") as handle:
        config = zero_initializers(json.load(handle))
    config["compile_config"] = None
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    with open(os.path.join(folder, MANIFEST), encoding="utf-8") as handle:
        manifest = json.load(handle)
    variables = model.variables
    rebuilt = [(unnumbered(variable.path), list(variable.shape)) for variable in variables]
    written = [(unnumbered(entry["path"]), entry["shape"]) for entry in manifest]
    if rebuilt != written:
        first = next((i for i, pair in enumerate(zip(rebuilt, written)) if pair[0] != pair[1]),
                     min(len(rebuilt), len(written)))
        raise ModelMismatch(
            f"the model rebuilt from its config has other variables than the converted one: "
            f"{len(rebuilt)} against {len(written)}, the first to differ is number {first}: "
            f"{rebuilt[first] if first < len(rebuilt) else None} against "
            f"{written[first] if first < len(written) else None}")
    path = os.path.join(folder, WEIGHTS)
    if os.path.getsize(path):  # copy-on-write: writable views (torch wants them), file untouched
        weights = np.memmap(path, dtype=np.uint8, mode="c")
        for variable, entry in zip(variables, manifest):
            dtype = np.dtype(entry["dtype"])
            count = int(np.prod(entry["shape"], dtype=np.int64))
            values = np.frombuffer(weights, dtype, count, entry["offset"])
            variable.assign(values.reshape(entry["shape"]))
    return model
