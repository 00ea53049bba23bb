"""One zoo net against its Caffe reference: its prototxt where ``ZooNet.locate`` finds it (the
zoo folder, else a PyPI sdist), seeded weights written to a folder, converted with
the public API as a user would (the whole net, no ``outputs``), run at batch 1, and every
stored blob compared (tests/zoo_nets.py).

Inner blobs and logits are read from the converted model's layers (Keras names follow Caffe
layer names); the net's outputs must be the model's outputs.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time

import numpy as np

import zoo_nets as zn

TOLERANCE = 1e-4
# Probabilities (Softmax tops) are also compared value by value, relative to each value, so a
# small class probability cannot drift under its blob's largest one. A logit error d moves a
# probability by a factor exp(+-2d); the logits match to 1e-4 of their largest value.
PROBABILITY_TOLERANCE = 1e-3


@dataclasses.dataclass
class BlobResult:
    layer: str
    top: str
    why: str
    error: float
    relative: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.relative <= TOLERANCE and not self.note


@dataclasses.dataclass
class Outcome:
    blobs: list
    convert_seconds: float
    predict_seconds: float
    output_names: list

    @property
    def largest_relative(self) -> float:
        return max(b.relative for b in self.blobs)

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.blobs)

    def failures(self) -> list[str]:
        return [f"{b.layer}/{b.top} ({b.why}): {b.note or f'relative error {b.relative:.2e}'}"
                for b in self.blobs if not b.passed]


def write_weights(net: zn.ZooNet, prototxt, manifest: dict, folder: str) -> str:
    from caffe2keras.proto import caffe_pb2
    from caffe2keras.reader.prototxt import read_text_file
    from caffe2keras.reader.wire import write_caffemodel

    proto = caffe_pb2.NetParameter()
    read_text_file(str(prototxt), proto)
    weights = zn.generate_weights(manifest["layers"], manifest["seed"], manifest["bn_factor"])
    path = os.path.join(folder, f"{net.key}.caffemodel")
    write_caffemodel(path, proto, weights, legacy=len(proto.layers) > 0)
    del weights
    return path


def elementwise_relative(expected: np.ndarray, actual: np.ndarray) -> float:
    """Largest |actual - expected| / expected over the values float32 holds to full precision
    (normal numbers)."""
    expected = expected.astype(np.float64)
    normal = expected >= np.finfo(np.float32).tiny
    if not normal.any():
        return 0.0
    return float(np.max(np.abs(actual.astype(np.float64)[normal] - expected[normal])
                        / expected[normal]))


def check_net(net: zn.ZooNet, folder: str) -> Outcome:
    """The net with its seeded weights against its reference."""
    manifest, arrays = zn.load_reference(net)
    prototxt = net.locate()[0]
    weights = write_weights(net, prototxt, manifest, folder)
    return compare(prototxt, weights, manifest, arrays, remove_weights=True)


def compare(prototxt, weights, manifest: dict, arrays: dict, remove_weights: bool = False
            ) -> Outcome:
    """Convert ``prototxt`` with ``weights`` (removed once converted if ``remove_weights``),
    run it on the reference's input (seeded, times the manifest's ``input_scale``) and
    compare every stored blob."""
    import caffe2keras
    from caffe2keras.lazy import keras
    from caffe2keras.registry import keras_layer_name
    from caffe2keras.verify import compare_reshaped, to_caffe_layout, to_keras_layout

    shapes = {e["name"]: tuple(e["shape"]) for e in manifest["inputs"]}
    scale = np.float32(manifest.get("input_scale", 1.0))
    keras.Model  # Keras itself is imported before the clock starts
    start = time.perf_counter()
    model = caffe2keras.convert(str(prototxt), str(weights), input_shapes=shapes)
    convert_seconds = time.perf_counter() - start
    if remove_weights:
        os.remove(weights)

    outputs = {layer.name for layer in (t._keras_history[0] for t in model.outputs)}
    output_names = sorted(outputs)
    probes, results = [], []
    for i, entry in enumerate(manifest["blobs"]):
        name = keras_layer_name(entry["layer"])
        stored = zn.stored_blob(arrays, i)
        if entry["why"] == "output" and name not in outputs:
            results.append(BlobResult(entry["layer"], entry["top"], entry["why"], 0.0, 0.0,
                                      f"not an output of the model (outputs: {output_names})"))
            continue
        try:
            probes.append((entry, stored, model.get_layer(name).output))
        except ValueError:
            results.append(BlobResult(entry["layer"], entry["top"], entry["why"], 0.0, 0.0,
                                      f"no Keras layer {name!r}"))
    feeds = {}
    for tensor in model.inputs:
        caffe_name = next(n for n in shapes if keras_layer_name(n) == tensor.name)
        index = [e["name"] for e in manifest["inputs"]].index(caffe_name)
        feeds[tensor.name] = to_keras_layout(
            zn.generate_input(shapes[caffe_name], manifest["seed"] + index) * scale)
    probe = keras.Model(model.inputs, [tensor for _, _, tensor in probes])
    start = time.perf_counter()
    values = probe([feeds[t.name] for t in model.inputs], training=False)
    values = [np.asarray(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    predict_seconds = time.perf_counter() - start
    for (entry, stored, _), value in zip(probes, values):
        actual = to_caffe_layout(value)
        if "full" in stored and stored["full"].shape != actual.shape:
            reshaped = compare_reshaped(entry["type"], stored["full"], actual, TOLERANCE)
            if reshaped is None:
                results.append(BlobResult(entry["layer"], entry["top"], entry["why"], 0.0, 0.0,
                                          f"shape {actual.shape}, Caffe's "
                                          f"{stored['full'].shape}"))
                continue
            error, relative = reshaped[0], reshaped[1]
        else:
            error, relative = zn.compare_reduced(stored, actual)
        note = ""
        if entry["type"] == "Softmax" and "full" in stored:
            worst = elementwise_relative(stored["full"], actual)
            if worst > PROBABILITY_TOLERANCE:
                note = f"a probability is off by {worst:.2e} of its value"
        results.append(BlobResult(entry["layer"], entry["top"], entry["why"], error, relative,
                                  note))
    order = {(e["layer"], e["top"]): i for i, e in enumerate(manifest["blobs"])}
    results.sort(key=lambda r: order[(r.layer, r.top)])
    del probe, model, values
    keras.backend.clear_session()
    gc.collect()
    return Outcome(results, convert_seconds, predict_seconds, output_names)
