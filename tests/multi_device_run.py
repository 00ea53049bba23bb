"""Fine-tune a new head on a converted net on one device, then data-parallel on two, and save
what each run gives: run by tests/test_multi_device.py in a subprocess, because the devices
must be set before the backend starts (KERAS_BACKEND, and XLA_FLAGS for JAX, come from there).

    python tests/multi_device_run.py DEPLOY.prototxt WEIGHTS.caffemodel DATA.npz RESULTS.npz

DATA holds the images, labels and the head's initial kernel and bias. Both runs use the same
data order (no shuffling), the same initial head and plain SGD, so the two-device run, whose
global batch is split over the replicas and whose gradients are summed, must give the
one-device run's losses and weights up to float32 round-off.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
DEVICES = 2
BATCH = 8  # global batch: 4 images per replica on two devices
EPOCHS = 2


def two_devices():
    """The scope of a data-parallel run over two devices, and its number of replicas."""
    if BACKEND == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope(), strategy.num_replicas_in_sync
    if BACKEND == "jax":
        import jax
        import keras
        devices = jax.devices()
        return keras.distribution.DataParallel(devices=devices).scope(), len(devices)
    raise SystemExit(f"no data-parallel run for the {BACKEND} backend here")


class Losses:
    """The loss Keras reports after each step."""

    def __init__(self):
        import keras

        class Recorder(keras.callbacks.Callback):
            def on_train_batch_end(inner, batch, logs=None):  # noqa: N805
                self.values.append(float(logs["loss"]))

        self.values, self.callback = [], Recorder()


def fine_tune(prototxt: str, caffemodel: str, data: dict, scope) -> dict:
    import keras

    import caffe2keras

    with scope:
        base = caffe2keras.convert(prototxt, caffemodel, outputs=["pool5"])
        base.trainable = False
        inputs = keras.Input(base.input.shape[1:])
        head = keras.layers.Dense(data["kernel"].shape[1], activation="softmax", name="head")
        model = keras.Model(inputs, head(keras.layers.Flatten()(base(inputs))))
        head.set_weights([data["kernel"], data["bias"]])
        start = np.concatenate([np.ravel(w) for w in model.get_weights()])
        losses = Losses()
        for learning_rate in (0.1, 0.01):  # the head, then everything but BatchNorm
            model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy")
            model.fit(data["images"], data["labels"], batch_size=BATCH, epochs=EPOCHS,
                      shuffle=False, verbose=0, callbacks=[losses.callback])
            base.trainable = True
            for layer in base.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
        predictions = model.predict(data["images"], batch_size=BATCH, verbose=0)
    weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
    return {"losses": np.float64(losses.values), "start": start, "weights": weights,
            "predictions": predictions,
            "placement": np.int64(placement(head.kernel))}


def placement(variable) -> int:
    """On how many devices the variable lives."""
    if BACKEND == "jax":
        return len(variable.value.sharding.device_set)
    values = getattr(variable.value, "values", None)  # a MirroredVariable: one per replica
    return len(values) if values is not None else 1


def main(prototxt: str, caffemodel: str, data_path: str, results_path: str) -> None:
    with np.load(data_path) as archive:
        data = {key: archive[key] for key in archive.files}
    scope, replicas = two_devices()  # before the backend's first computation
    results = {f"one_{key}": value for key, value in
               fine_tune(prototxt, caffemodel, data, contextlib.nullcontext()).items()}
    results.update({f"two_{key}": value for key, value in
                    fine_tune(prototxt, caffemodel, data, scope).items()})
    np.savez(results_path, replicas=np.int64(replicas), **results)


if __name__ == "__main__":
    main(*sys.argv[1:])
