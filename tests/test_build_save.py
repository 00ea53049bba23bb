"""Building and saving without spare copies (build.py, save.py): variables start from the
converted arrays, never from Keras' initializers; the IR lets go of its arrays as it goes;
.keras files are zipped from Keras' unzipped save instead of an in-memory weights file."""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from caffe2keras import build
from caffe2keras.api import prepare
from caffe2keras.build import build_model
from caffe2keras.registry import Step
from caffe2keras.save import save_model

CAFFENET = Path(__file__).resolve().parent.parent / "fixtures" / "caffenet"


def caffenet():
    return prepare(str(CAFFENET / "deploy.prototxt"), str(CAFFENET / "weights.caffemodel"))


def expected_weights():
    """The weights the converted CaffeNet must hold, built the ordinary way (set_weights)."""
    with no_stateless_scope():
        model = build_model(caffenet())
    return {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}


@contextlib.contextmanager
def no_stateless_scope():
    """Run build_model as with a Keras that has no deferred initialisation."""
    original = keras.StatelessScope
    keras.StatelessScope = contextlib.nullcontext
    try:
        yield
    finally:
        keras.StatelessScope = original


def test_variables_never_come_from_the_layers_initializers(monkeypatch):
    want = expected_weights()

    def refuse(self, shape, dtype=None):
        raise AssertionError(f"{type(self).__name__} drew {shape}")
    for initializer in (keras.initializers.GlorotUniform, keras.initializers.Zeros,
                        keras.initializers.Ones):
        monkeypatch.setattr(initializer, "__call__", refuse)
    model = build_model(caffenet())
    got = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    assert list(got) == list(want)
    for path in want:
        np.testing.assert_array_equal(got[path], want[path], err_msg=path)


def test_a_keras_without_deferred_initialisation_still_gets_the_weights():
    with no_stateless_scope():
        net = caffenet()
        conv1 = net.layer("conv1").blobs[0].copy()
        model = build_model(net)
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(),
                                  conv1.transpose(2, 3, 1, 0))


def test_the_ir_lets_go_of_every_array():
    net = caffenet()
    assert any(layer.blobs for layer in net.layers)
    build_model(net)
    assert all(layer.blobs == [] for layer in net.layers)


def test_a_preset_weight_takes_the_variables_dtype():
    kernel, bias = np.ones((3, 2), np.float32) / 3, np.arange(2, dtype=np.float32)
    dense = keras.layers.Dense(2, dtype="float16", name="half")
    build._apply(Step(dense, [kernel, bias]), keras.Input((3,)))
    assert dense.kernel.dtype == "float16"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dense.kernel),
                                  kernel.astype(np.float16))


def test_a_weight_of_the_wrong_shape_is_refused():
    dense = keras.layers.Dense(2, name="wrong")
    with pytest.raises(ValueError, match="shape"):
        build._apply(Step(dense, [np.ones((2, 3), np.float32), np.zeros(2, np.float32)]),
                     keras.Input((3,)))


def test_keras_file_is_zipped_from_the_unzipped_save(tmp_path):
    model = build_model(caffenet())
    target = tmp_path / "caffenet.keras"
    save_model(model, str(target))
    assert os.listdir(tmp_path) == ["caffenet.keras"]  # no temporary file or folder left
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    loaded = keras.models.load_model(target)
    x = np.random.default_rng(0).standard_normal((1,) + model.input_shape[1:]).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_on_batch(x), model.predict_on_batch(x))


def test_a_large_weight_is_handed_over_as_a_private_copy():
    array = np.arange(1 << 19, dtype=np.float32).reshape(512, 1024)  # 2 MiB
    value = build._Preset(array)(array.shape, "float32")
    array[...] = -1  # the converter's array may change or go: the variable's value does not
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(value).ravel(),
                                  np.arange(1 << 19, dtype=np.float32))
