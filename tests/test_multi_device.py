"""Data-parallel fine-tuning of a converted net with the engines Keras has, on two devices of
this CPU: TensorFlow's MirroredStrategy over two logical CPU devices, and Keras' DataParallel
distribution over two JAX host devices. Each gives the one-device run's losses, weights and
predictions to float32 round-off (tests/multi_device_run.py runs both, in a subprocess per
backend: the devices are fixed before the backend starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_backends import require_backend

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "resnet"  # BatchNorm (frozen), Scale fused, CaffePooling2D
RUNNER = ROOT / "tests" / "multi_device_run.py"
ROUND_OFF = 1e-5  # relative to the largest value: summation order differs, nothing else
ENV = {"tensorflow": {}, "jax": {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Both backends' runs, at once (one subprocess each)."""
    require_backend("jax")
    folder = tmp_path_factory.mktemp("multi_device")
    rng = np.random.default_rng(14)
    features, classes = 24, 5  # the fixture's pool5 width; a new 5-way head
    np.savez(folder / "data.npz",
             images=rng.uniform(-1, 1, (32, 45, 39, 3)).astype(np.float32),
             labels=rng.integers(0, classes, 32),
             kernel=rng.normal(0, 0.1, (features, classes)).astype(np.float32),
             bias=np.zeros(classes, np.float32))
    running = {}
    for backend, extra in ENV.items():
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **extra)
        running[backend] = subprocess.Popen(
            [sys.executable, str(RUNNER), str(FIXTURE / "deploy.prototxt"),
             str(FIXTURE / "weights.caffemodel"), str(folder / "data.npz"),
             str(folder / f"{backend}.npz")],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for backend, process in running.items():
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, f"{backend}: exit {process.returncode}\n{stderr[-3000:]}"
        with np.load(folder / f"{backend}.npz") as archive:
            results[backend] = {key: archive[key] for key in archive.files}
    return results


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("backend", sorted(ENV))
def test_two_devices_train_like_one(runs, backend):
    run = runs[backend]
    # Really two replicas, the model's variables on both devices; one device before.
    assert int(run["replicas"]) == 2
    assert (int(run["one_placement"]), int(run["two_placement"])) == (1, 2)
    # The same start; then both phases moved more than the head (2 epochs each, 4 steps per epoch).
    assert np.array_equal(run["one_start"], run["two_start"])
    assert len(run["one_losses"]) == len(run["two_losses"]) == 16
    moved = np.count_nonzero(run["one_weights"] != run["one_start"])
    assert moved > 24 * 5 + 5
    differences = {key: relative_difference(run[f"two_{key}"], run[f"one_{key}"])
                   for key in ("losses", "weights", "predictions")}
    print(f"\n{backend}: two devices vs one, relative: " +
          ", ".join(f"{key} {value:.3g}" for key, value in differences.items()))
    assert all(value <= ROUND_OFF for value in differences.values()), differences
    # Training changed the model (the comparison is not of two untouched copies).
    assert relative_difference(run["one_weights"], run["one_start"]) > 1e-3
