"""A converted model is a plain Keras model: inner-layer features, frozen training of a new head,
fine-tuning with BatchNorm in inference mode, use inside a bigger model, export for serving.

On the small fixtures (CaffeNet, ResNet, VGG-16), whose golden activations come from real Caffe.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras.verify import load_activations, to_caffe_layout, to_keras_layout

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def files(name: str) -> tuple[str, str]:
    return str(FIXTURES / name / "deploy.prototxt"), str(FIXTURES / name / "weights.caffemodel")


def golden(name: str, layers: list[str]):
    """The fixture's input (NHWC) and Caffe's blob after each named layer (NCHW)."""
    manifest, arrays = load_activations(str(FIXTURES / name / "golden.npz"))
    blobs = {entry["layer"]: arrays[entry["key"]] for entry in manifest["blobs"]}
    return to_keras_layout(arrays[manifest["inputs"][0]["key"]]), [blobs[n] for n in layers]


def relative_error(got, want) -> float:
    got = to_caffe_layout(np.asarray(got, dtype=np.float64))
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def caffenet():
    return caffe2keras.convert(*files("caffenet"))


def random_batch(model, count: int, seed: int) -> np.ndarray:
    shape = (count, *model.input.shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def resnet_base():
    """ResNet up to its global pooling; BatchNorm+Scale fused into BatchNormalization."""
    return caffe2keras.convert(*files("resnet"), outputs=["pool5"])


def batch_norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def snapshot(model) -> dict[str, np.ndarray]:
    return {variable.path: variable.numpy().copy() for variable in model.weights}


def new_head_model(base, classes: int = 3):
    inputs = keras.Input(base.input.shape[1:])
    outputs = keras.layers.Dense(classes, activation="softmax", name="head")(
        keras.layers.Flatten()(base(inputs)))
    return keras.Model(inputs, outputs)


# --- features ------------------------------------------------------------------------------------

def test_features_from_inner_layers_equal_caffes(caffenet):
    """relu7 is fc7 after its in-place ReLU; conv5 is the convolution before relu5."""
    x, (relu7, conv5) = golden("caffenet", ["relu7", "conv5"])
    extractor = keras.Model(caffenet.input, [caffenet.get_layer("relu7").output,
                                             caffenet.get_layer("conv5").output])
    got_relu7, got_conv5 = extractor.predict(x, verbose=0)
    assert relative_error(got_relu7, relu7) < 1e-4
    assert relative_error(got_conv5, conv5) < 1e-4
    assert (got_conv5 < 0).any() and (got_relu7 >= 0).all()


def test_outputs_keep_only_the_layers_needed(caffenet):
    x, (relu7,) = golden("caffenet", ["relu7"])
    features = caffe2keras.convert(*files("caffenet"), outputs=["relu7"])
    names = {layer.name for layer in features.layers}
    assert {"fc6", "fc7", "relu7"} <= names and not {"fc8", "prob"} & names
    assert features.count_params() == caffenet.count_params() - 32 * 10 - 10  # fc8's
    assert relative_error(features.predict(x, verbose=0), relu7) < 1e-4


def test_vgg_convolutional_part_reads_no_fully_connected_weights():
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    net = caffe2keras.load_net(*files("vgg16"), outputs=layers)
    assert [layer.name for layer in net.layers][-1] == "relu5_1"
    assert not {"fc6", "fc7", "fc8", "pool5", "conv5_2"} & {layer.name for layer in net.layers}
    x, wanted = golden("vgg16", layers)
    model = caffe2keras.convert(*files("vgg16"), outputs=layers)
    got = model.predict(x, verbose=0)
    assert len(got) == 5
    for name, value, want in zip(layers, got, wanted):
        assert relative_error(value, want) < 1e-4, name


# --- training ------------------------------------------------------------------------------------

def test_frozen_model_trains_a_new_head_and_moves_nothing_else():
    base = resnet_base()
    assert batch_norms(base)
    base.trainable = False
    model = new_head_model(base)
    before = snapshot(base)
    head_before = model.get_layer("head").get_weights()[0].copy()
    assert len(model.trainable_weights) == 2  # the head's kernel and bias
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(random_batch(base, 8, 1), np.arange(8) % 3, epochs=2, batch_size=4, verbose=0)
    after = snapshot(base)
    moved = [path for path in before if not np.array_equal(before[path], after[path])]
    assert not moved, f"frozen weights moved: {moved}"
    assert any("moving_mean" in path for path in before)  # the statistics were checked too
    assert not np.array_equal(model.get_layer("head").get_weights()[0], head_before)


def test_fine_tuning_with_batchnorm_in_inference_mode():
    """Everything trains but the BatchNormalization layers, which keep Caffe's statistics and
    normalise with them (inference mode) during training too."""
    base = resnet_base()
    x = random_batch(base, 8, 2)
    model = new_head_model(base)
    for layer in batch_norms(base):
        layer.trainable = False
    before = snapshot(base)
    model.compile(keras.optimizers.SGD(1e-2), "sparse_categorical_crossentropy")
    # Inference mode while training: the forward pass with training=True equals inference.
    training, inference = (keras.ops.convert_to_numpy(base(x, training=mode))
                           for mode in (True, False))
    assert np.allclose(training, inference, rtol=1e-5, atol=1e-6)
    model.fit(x, np.arange(8) % 3, epochs=2, batch_size=4, verbose=0)
    after = snapshot(base)
    normalisation = {variable.path for layer in batch_norms(base) for variable in layer.weights}
    assert any("moving_variance" in path for path in normalisation)
    for path in before:
        same = np.array_equal(before[path], after[path])
        assert same if path in normalisation else not same, path


def test_called_inside_a_bigger_model_without_copying_weights(caffenet):
    cnn = caffe2keras.convert(*files("caffenet"), outputs=["relu7"])
    left, right = keras.Input(cnn.input.shape[1:]), keras.Input(cnn.input.shape[1:])
    difference = keras.layers.Subtract()([cnn(left), cnn(right)])
    siamese = keras.Model([left, right], keras.layers.Dense(1, name="same")(difference))
    assert siamese.count_params() == cnn.count_params() + 32 + 1
    assert {id(v) for v in cnn.weights} <= {id(v) for v in siamese.weights}
    assert len(siamese.weights) == len(cnn.weights) + 2
    a, b = random_batch(cnn, 2, 3), random_batch(cnn, 2, 4)
    dense = siamese.get_layer("same")
    kernel, bias = dense.get_weights()
    want = (cnn.predict(a, verbose=0) - cnn.predict(b, verbose=0)) @ kernel + bias
    assert np.allclose(siamese.predict([a, b], verbose=0), want, rtol=1e-5, atol=1e-5)
    # One set of weights: changing the converted model changes the bigger one.
    fc6 = cnn.get_layer("fc6")
    fc6.set_weights([w * 0 for w in fc6.get_weights()])
    assert np.allclose(siamese.predict([a, b], verbose=0), bias, atol=1e-6)


# --- serving -------------------------------------------------------------------------------------

def test_export_for_serving(tmp_path, caffenet):
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a SavedModel needs the TensorFlow backend")
    x, (prob,) = golden("caffenet", ["prob"])
    caffenet.export(str(tmp_path / "caffenet"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "caffenet"))
    assert tuple(served.serve.input_signature[0].shape) == (None, 103, 87, 3)
    assert relative_error(served.serve(x).numpy(), prob) < 1e-4
