"""One converted ``.keras`` file, three Keras backends, the same numbers.

The nets are converted once, here, each with every blob Caffe stored as an output, and saved
as ``.keras``. A subprocess per backend (KERAS_BACKEND=tensorflow, torch, jax: Keras fixes its
backend at import) loads each file with ``safe_mode=True`` and runs it on Caffe's stored inputs.
Every output must match Caffe's blob (the golden tolerance) and the other backends' outputs to
float32 round-off. Between them the nets hold every custom layer class a golden fixture used
when this was written (CUSTOM_CLASSES, checked).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from caffe2keras.api import prepare
from caffe2keras.build import build_graph
from caffe2keras.formats.base import input_names, output_names
from caffe2keras.lazy import keras
from caffe2keras.save import save_model
from caffe2keras.time_major import time_major_values
from caffe2keras.verify import _check_entry, _distinct, _value_of, load_activations, to_keras_layout
from test_backends import require_backend

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BACKENDS = ("tensorflow", "torch", "jax")
# Between them: every custom layer class of the golden fixtures (checked below).
# Few weight shapes: on JAX, loading draws each weight's random initial values first (one XLA
# compilation per shape) before the file's values replace them.
NETS = ("activations", "bvlc_misc", "deconv_variants", "detection_layers", "extra_layers",
        "fork_activations", "fork_layers", "lrn", "pool_ave", "positive_ops", "recurrent",
        "reshape_slice_crop", "scale_bias", "shape_ops", "ssd", "unpooling")
CUSTOM_CLASSES = {"AbsVal", "ArgMax", "Axpy", "Bias", "BiasByInput", "BilinearResize", "CaffeLSTM",
                  "CaffeMaxPoolingWithMask", "CaffePad", "CaffePooling2D", "CaffeRNN", "Clip",
                  "Crop", "DetectionOutput", "Embed", "Exp", "GroupedConv2DTranspose", "Im2col",
                  "LRN", "Log", "MVN", "MaxUnpool2D", "Normalize", "Parameter", "Power",
                  "PriorBox", "Reduction", "Scale", "ScaleByInput", "Slice",
                  "SpatialPyramidPooling", "Swish", "Threshold", "Tile", "WeightedSum"}
# Backends differ in summation order only: relative to the blob's largest value.
ROUND_OFF = 1e-5

# Loads each .keras with the library's loader (safe_mode=True) and runs it on the stored inputs.
CHILD = """
import sys
import numpy as np
import keras
from caffe2keras.formats import get_format

backend, jobs = sys.argv[1], sys.argv[2:]
assert keras.backend.backend() == backend, keras.backend.backend()
for model, feeds, results in zip(jobs[0::3], jobs[1::3], jobs[2::3]):
    with np.load(feeds) as archive:
        inputs = {name: archive[name] for name in archive.files}
    np.savez(results, **get_format("keras").load(model).run(inputs))
"""


def save_probe(name: str, folder: Path) -> dict:
    """The net with every stored blob as an output, saved as .keras, and its feeds."""
    manifest, arrays = load_activations(str(FIXTURES / name / "golden.npz"))
    net = prepare(str(FIXTURES / name / "deploy.prototxt"),
                  str(FIXTURES / name / "weights.caffemodel"), fuse_batchnorm=False)
    model_inputs, tensors = build_graph(net)
    time_major = time_major_values(net)  # (T, N, ...) in Caffe, (N, T, ...) in Keras
    values = [(entry, _value_of(net, entry["layer"], entry["top"])) for entry in manifest["blobs"]]
    probe = keras.Model(model_inputs, _distinct([tensors[value] for _, value in values]))
    by_tensor = {id(t): output for t, output in zip(probe.outputs, output_names(probe))}
    fed = {entry["name"]: to_keras_layout(arrays[entry["key"]], entry["name"] in time_major)
           for entry in manifest["inputs"]}
    save_model(probe, str(folder / f"{name}.keras"))
    np.savez(folder / f"{name}.feeds.npz",
             **dict(zip(input_names(probe), (fed[n] for n in net.inputs))))
    return {"manifest": manifest, "arrays": arrays,
            "outputs": [(entry, by_tensor[id(tensors[value])], value in time_major)
                        for entry, value in values],
            "classes": {type(layer).__name__ for layer in probe.layers
                        if type(layer).__module__.startswith("caffe2keras.")}}


def run_backends(folder: Path) -> dict[str, subprocess.CompletedProcess]:
    """The child on every backend at once (each job: model, feeds, results)."""
    jobs = [str(folder / f"{name}{suffix}") for name in NETS
            for suffix in (".keras", ".feeds.npz", f".results.{{}}.npz")]
    running = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        running[backend] = subprocess.Popen(
            [sys.executable, "-c", CHILD, backend, *(job.format(backend) for job in jobs)],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return {backend: (process.wait(timeout=600), process.stderr.read())
            for backend, process in running.items()}


def test_a_keras_file_gives_the_same_numbers_on_every_backend(tmp_path):
    for backend in ("torch", "jax"):
        require_backend(backend)
    probes = {name: save_probe(name, tmp_path) for name in NETS}
    assert set().union(*(p["classes"] for p in probes.values())) >= CUSTOM_CLASSES
    for backend, (code, stderr) in run_backends(tmp_path).items():
        assert code == 0, f"{backend}: exit {code}\n{stderr[-3000:]}"

    worst_golden, worst_between = 0.0, 0.0
    for name, probe in probes.items():
        results = {}
        for backend in BACKENDS:
            with np.load(tmp_path / f"{name}.results.{backend}.npz") as archive:
                results[backend] = {key: archive[key] for key in archive.files}
        for entry, output, swapped in probe["outputs"]:
            expected = probe["arrays"][entry["key"]]
            where = f"{name}: {entry['layer']} ({entry['top']})"
            for backend in BACKENDS:
                check = _check_entry(entry, expected, results[backend][output],
                                     probe["manifest"]["tolerance"], swapped)
                assert check.passed, f"{where} on {backend}: {check}"
                worst_golden = max(worst_golden, check.relative_error)
            scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
            reference = results["tensorflow"][output].astype(np.float64)
            for backend in ("torch", "jax"):
                got = results[backend][output]
                assert got.shape == reference.shape, f"{where}: {backend} {got.shape}"
                between = float(np.max(np.abs(got - reference), initial=0.0)) / scale
                assert between <= ROUND_OFF, f"{where}: {backend} vs tensorflow {between:.3g}"
                worst_between = max(worst_between, between)
    print(f"\n{len(NETS)} nets, {sum(len(p['outputs']) for p in probes.values())} blobs: "
          f"largest relative error vs Caffe {worst_golden:.3g}, between backends "
          f"{worst_between:.3g}")

