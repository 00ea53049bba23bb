"""The README's "Fine-tune on several GPUs" recipes, run on two devices of this CPU.

The recipes are what a user writes on a GPU machine. Here each runs in a subprocess (the
devices are fixed before the backend starts): TensorFlow with the CPU split into two logical
devices, which ``MirroredStrategy()`` takes as the machine's devices (it would take only the
CPU's first otherwise); JAX with two host devices (XLA_FLAGS). The subprocess reports how many
replicas trained and on how many devices the head's weights lived; the check then loads the
fine-tuned ``.keras`` file and compares it with Caffe's numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BACKENDS = {"several-gpus-tensorflow": "tensorflow", "several-gpus-jax": "jax"}
ENV = {"tensorflow": {}, "jax": {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}}
TESTS = Path(__file__).resolve().parent

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[3])
import keras
from multi_device_run import placement

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    class MirroredStrategy(tf.distribute.MirroredStrategy):  # no GPU here: the two CPU devices
        def __init__(self, devices=None, cross_device_ops=None):
            devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
            super().__init__(devices, cross_device_ops)

    tf.distribute.MirroredStrategy = MirroredStrategy

namespace = {"__name__": "__readme__"}
with open(sys.argv[1]) as recipe:
    exec(compile(recipe.read(), sys.argv[2], "exec"), namespace)
if keras.backend.backend() == "tensorflow":
    replicas = namespace["strategy"].num_replicas_in_sync
else:
    replicas = keras.distribution.distribution().device_mesh.devices.size
head = namespace["model"].get_layer("head")
print(json.dumps({"backend": keras.backend.backend(), "replicas": int(replicas),
                  "placement": placement(head.kernel)}))
"""


def run_on_devices(name: str, recipe: dict, folder: Path) -> dict:
    """Run the recipe in a subprocess on two devices; what it reports."""
    from test_backends import require_backend
    backend = BACKENDS[name]
    if backend != "tensorflow":
        require_backend(backend)
    (folder / "recipe.py").write_text(recipe["code"])
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **ENV[backend])
    done = subprocess.run([sys.executable, "-c", CHILD, "recipe.py", f"README.md:{recipe['line']}",
                           str(TESTS)], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_several_gpus(ns, folder, golden):
    """Two replicas, the weights on both devices; the saved model is Caffe's pool5 under the
    trained head."""
    import keras
    assert ns["replicas"] == 2 and ns["placement"] == 2, ns
    model = keras.models.load_model(folder / "finetuned.keras", safe_mode=True)
    x, pool5 = golden("resnet", "pool5")
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    features = base.predict(x, verbose=0)
    assert np.max(np.abs(features - pool5.transpose(0, 2, 3, 1))) <= 1e-4 * np.max(np.abs(pool5))
    kernel, bias = model.get_layer("head").get_weights()
    logits = features.reshape(len(x), -1).astype(np.float64) @ kernel + bias
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    assert np.max(np.abs(model.predict(x, verbose=0) - want)) <= 1e-5
