"""The LiteRT format: outputs by name whatever order LiteRT keeps, a dynamic batch, the
large-kernel route around the converter, the conversion check catching a broken export,
refusals by layer name. Golden nets against Caffe: tests/test_formats_golden.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("the tflite format converts on the TensorFlow backend", allow_module_level=True)

from caffe2keras.errors import ExportCheckError, OutputError, UnsupportedInFormatError  # noqa: E402
from caffe2keras.formats import litert, litert_convert, litert_norms, litert_weights  # noqa: E402,E501
from caffe2keras.formats.base import output_names  # noqa: E402
from caffe2keras.formats.check import check_artifact, keras_outputs  # noqa: E402
from caffe2keras.formats.litert import LiteRTFormat, name_of_key, signature_key  # noqa: E402
from caffe2keras.formats.write import write_artifact  # noqa: E402
from caffe2keras.layers import GroupedConv2DTranspose, Slice  # noqa: E402

FORMAT = LiteRTFormat()
RNG = np.random.default_rng(7)


def heads_model():
    """Heads of equal shapes (two (N, 4)) and of different shapes ((N, 10), a feature map,
    the two parts of a Slice, whose canonical names end in :0 and :1), listed so that
    neither name order nor shape order is the model's order. H != W != C."""
    data = keras.Input((9, 7, 3), name="data")
    features = keras.layers.Conv2D(5, (3, 2), strides=(2, 1), name="conv")(data)
    flat = keras.layers.Flatten(name="flat")(features)
    landmarks = keras.layers.Dense(10, name="landmarks")(flat)
    box = keras.layers.Dense(4, name="box")(flat)
    score = keras.layers.Dense(4, name="a_score")(flat)
    low, high = Slice(axis=-1, points=[2], name="split")(features)
    return keras.Model(data, [landmarks, score, high, box, features, low], name="heads")


def inputs_for(model, batch):
    return {tensor.name: (RNG.standard_normal((batch, *tensor.shape[1:])) * 50).astype(np.float32)
            for tensor in model.inputs}


def assert_matches_keras(runner, model, batch, tolerance=1e-5):
    feeds = inputs_for(model, batch)
    expected = keras_outputs(model, feeds)
    actual = runner.run(feeds)
    assert sorted(actual) == sorted(expected)
    for name, want in expected.items():
        assert actual[name].shape == want.shape, name
        scale = np.max(np.abs(want))
        assert np.max(np.abs(actual[name] - want)) <= tolerance * scale, name


@pytest.mark.parametrize("name", ["prob", "conv1/3x3_reduce", "split:1", "_x", "-y", "a.b",
                                  "x y", "ü", "a.2e"])
def test_signature_keys_are_tensorflow_names_and_round_trip(name):
    key = signature_key(name)
    assert all(c.isascii() and (c.isalnum() or c in "_-.") for c in key)
    assert key[0].isalnum() or key[0] == "."
    assert name_of_key(key) == name


def test_several_outputs_come_back_by_name_at_any_batch(tmp_path):
    model = heads_model()
    path = str(tmp_path / "heads.tflite")
    FORMAT.write(model, path)
    runner = FORMAT.load(path)
    assert runner.inputs == ["data"]
    assert runner.outputs == output_names(model)
    assert "split:0" in runner.outputs and "split:1" in runner.outputs
    for batch in (1, 3):  # one file, one interpreter
        assert_matches_keras(runner, model, batch)


def test_inputs_keep_the_model_order_and_an_input_can_be_an_output(tmp_path):
    data = keras.Input((4, 3, 2), name="data")
    aux = keras.Input((5,), name="aux")  # sorts before "data"
    conv = keras.layers.Conv2D(3, 1, name="conv")(data)
    model = keras.Model([data, aux], [conv, data, keras.layers.Dense(2, name="fc")(aux)])
    path = str(tmp_path / "two.tflite")
    FORMAT.write(model, path)
    runner = FORMAT.load(path)
    assert (runner.inputs, runner.outputs) == (["data", "aux"], ["conv", "data", "fc"])
    assert_matches_keras(runner, model, 2, tolerance=1e-6)


def test_names_with_characters_tensorflow_refuses_in_keys(tmp_path):
    data = keras.Input((4, 3, 2), name="data.1")
    first = keras.layers.Conv2D(3, 1, name="conv>1.a")(data)
    parts = Slice(axis=-1, points=[1], name="split")(first)
    model = keras.Model(data, [keras.layers.Conv2D(2, 1, name="conv-x")(data), *parts])
    path = str(tmp_path / "names.tflite")
    FORMAT.write(model, path)
    runner = FORMAT.load(path)
    assert (runner.inputs, runner.outputs) == (["data.1"], ["conv-x", "split:0", "split:1"])
    assert_matches_keras(runner, model, 2)


def test_the_batch_dimension_is_dynamic_in_the_file(tmp_path):
    model = heads_model()
    path = str(tmp_path / "heads.tflite")
    FORMAT.write(model, path)
    runner = FORMAT.load(path)
    details = runner.signature.get_input_details()
    assert [list(d["shape_signature"]) for d in details.values()] == [[-1, 9, 7, 3]]


def test_write_artifact_checks_and_places_the_file(tmp_path):
    model = heads_model()
    path = tmp_path / "model.tflite"
    checks = write_artifact(model, str(path), FORMAT)
    assert {c.name for c in checks} == set(output_names(model))
    assert all(c.passed and c.relative_error <= 1e-5 for c in checks)
    assert os.listdir(tmp_path) == ["model.tflite"]


def kernels_model():
    """One layer of each kind whose kernel goes around the converter, a Dense whose kernel
    the converter folds a following scale into (found lost, converted for real), and a
    convolution with groups."""
    data = keras.Input((11, 14, 6), name="data")
    x = keras.layers.Conv2D(8, (3, 2), strides=(1, 2), name="conv")(data)
    x = keras.layers.Conv2D(8, (1, 3), groups=2, name="grouped")(x)
    x = keras.layers.DepthwiseConv2D((2, 3), depth_multiplier=2, name="depthwise")(x)
    x = keras.layers.Conv2DTranspose(5, (3, 2), strides=(2, 1), name="up")(x)
    y = GroupedConv2DTranspose(4, (2, 3), strides=(1, 2), name="grouped_up")(x)
    flat = keras.layers.Flatten(name="flat")(y)
    hidden = keras.layers.Dense(7, name="fc")(flat)
    folded = keras.layers.Dense(6, use_bias=False, name="fc_scaled")(hidden)
    folded = keras.layers.Rescaling(0.37, name="scaled")(folded)
    model = keras.Model(data, [hidden, folded, y], name="kernels")
    for variable in model.variables:  # not Keras' zero biases
        variable.assign(RNG.standard_normal(variable.shape).astype(np.float32))
    return model


def record_rounds(monkeypatch):
    """The marked variables of each conversion round, and the markers placed in the end."""
    rounds, placed = [], []
    convert, write = litert_convert.convert, litert_convert.write_model_file

    def counting_convert(model, marked, *args):
        rounds.append([v.path for v in marked])
        return convert(model, marked, *args)

    def recording_write(tree, path, inputs, outputs, found=(), *args):
        placed.extend(found)
        return write(tree, path, inputs, outputs, found, *args)

    monkeypatch.setattr(litert_convert, "convert", counting_convert)
    monkeypatch.setattr(litert_convert, "write_model_file", recording_write)
    return rounds, placed


def write_every_kernel_marked(model, tmp_path, monkeypatch):
    """Write ``model`` with every known kernel a marker; (runner, rounds, placed)."""
    monkeypatch.setattr(litert_weights, "MARKER_BYTES", 0)
    rounds, placed = record_rounds(monkeypatch)
    path = str(tmp_path / f"{model.name}.tflite")
    FORMAT.write(model, path)
    return FORMAT.load(path), rounds, placed


def test_every_known_kernel_layout_goes_around_the_converter(tmp_path, monkeypatch):
    model = kernels_model()
    runner, rounds, placed = write_every_kernel_marked(model, tmp_path, monkeypatch)
    assert_matches_keras(runner, model, 2)
    assert_matches_keras(runner, model, 1)
    # one round: the kernel a following Rescaling folds into was never marked
    assert rounds == [["conv/kernel", "grouped/kernel", "depthwise/kernel", "up/kernel",
                       "fc/kernel"]]
    assert len(placed) == 5  # GroupedConv2DTranspose's sliced kernel is not a known use


def test_a_kernel_folded_against_the_prediction_is_converted_in_a_second_round(
        tmp_path, monkeypatch):
    monkeypatch.setattr(litert_weights, "FOLDING_LAYERS", ())
    model = kernels_model()
    runner, rounds, placed = write_every_kernel_marked(model, tmp_path, monkeypatch)
    assert_matches_keras(runner, model, 2)
    assert len(rounds) == 2
    assert "fc_scaled/kernel" in rounds[0] and "fc_scaled/kernel" not in rounds[1]
    assert len(rounds[1]) == len(placed) == 5


def norms_model():
    """Kernels each followed by a BatchNormalization (with and without bias, gamma, beta;
    depthwise, dense), one whose convolution output is also a model output (so its
    normalisation cannot be folded), random statistics."""
    data = keras.Input((10, 9, 4), name="data")
    x = keras.layers.Conv2D(6, (3, 2), name="conv")(data)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="conv_bn")(x)
    x = keras.layers.DepthwiseConv2D((2, 3), depth_multiplier=2, use_bias=False,
                                     name="depthwise")(x)
    x = keras.layers.BatchNormalization(scale=False, name="depthwise_bn")(x)
    x = keras.layers.Conv2DTranspose(3, (2, 3), strides=(2, 1), name="up")(x)
    x = keras.layers.BatchNormalization(name="up_bn")(x)
    seen = keras.layers.Conv2D(5, 1, name="seen")(x)
    y = keras.layers.BatchNormalization(center=False, name="seen_bn")(seen)
    flat = keras.layers.Flatten(name="flat")(y)
    dense = keras.layers.Dense(7, name="fc")(flat)
    out = keras.layers.BatchNormalization(name="fc_bn")(dense)
    model = keras.Model(data, [out, seen], name="norms")
    for variable in model.variables:
        values = RNG.standard_normal(variable.shape).astype(np.float32)
        if "variance" in variable.path:
            values = np.abs(values) + np.float32(0.1)
        variable.assign(values)
    return model


def test_a_following_batchnorm_is_folded_around_the_converter(tmp_path, monkeypatch):
    model = norms_model()
    runner, rounds, placed = write_every_kernel_marked(model, tmp_path, monkeypatch)
    assert_matches_keras(runner, model, 2)
    assert rounds == [["conv/kernel", "depthwise/kernel", "up/kernel", "seen/kernel",
                       "fc/kernel"]]
    assert len(placed) == 5
    assert sorted(pair[0].name for pair in litert_norms.norms_after(model, [
        v for v in model.variables if v.path.endswith("/kernel")]).values()) == [
        "conv_bn", "depthwise_bn", "fc_bn", "up_bn"]  # not seen_bn: "seen" is an output


def wide_model():
    data = keras.Input((5, 4, 3), name="data")
    flat = keras.layers.Flatten(name="flat")(data)
    return keras.Model(data, keras.layers.Dense(20000, name="wide")(flat))  # a 4.8 MB kernel


def test_a_kernel_around_the_converter_is_an_ordinary_flatbuffer_vector(tmp_path):
    """Read back through the flatbuffer schema as any TensorFlow Lite runtime reads it."""
    from ai_edge_litert import schema_py_generated as schema
    model = wide_model()
    path = str(tmp_path / "wide.tflite")
    FORMAT.write(model, path)
    with open(path, "rb") as handle:
        tree = schema.Model.GetRootAs(handle.read(), 0)
    buffers = [tree.Buffers(i) for i in range(tree.BuffersLength())]
    assert not [b for b in buffers if b.Offset() > 0]
    kernel = next(b.DataAsNumpy() for b in buffers if b.DataLength() == 60 * 20000 * 4)
    np.testing.assert_array_equal(kernel.view(np.float32).reshape(20000, 60),
                                  model.get_layer("wide").kernel.numpy().T)
    assert_matches_keras(FORMAT.load(path), model, 2)


def test_past_two_gigabytes_the_kernels_go_after_the_flatbuffer(tmp_path, monkeypatch):
    from caffe2keras.formats import litert_file
    from ai_edge_litert import schema_py_generated as schema
    monkeypatch.setattr(litert_file, "FLATBUFFER_LIMIT", 1 << 20)
    model = wide_model()
    path = str(tmp_path / "wide.tflite")
    FORMAT.write(model, path)
    with open(path, "rb") as handle:
        content = handle.read()
    tree = schema.Model.GetRootAs(content, 0)
    outside = [tree.Buffers(i) for i in range(tree.BuffersLength()) if tree.Buffers(i).Offset() > 1]
    assert [b.Size() for b in outside] == [60 * 20000 * 4]
    kernel = np.frombuffer(content, np.float32, 60 * 20000, outside[0].Offset())
    np.testing.assert_array_equal(kernel.reshape(20000, 60),
                                  model.get_layer("wide").kernel.numpy().T)
    assert_matches_keras(FORMAT.load(path), model, 2)


def test_a_perturbed_kernel_fails_the_check_naming_the_output(tmp_path, monkeypatch):
    monkeypatch.setattr(litert_weights, "MARKER_BYTES", 0)
    writer = litert_weights.laid_out_writer

    def perturbed(variable, perm, scale=None):
        if variable.path == "box/kernel":
            class Shifted:
                path, value = variable.path, variable.numpy() + np.float32(0.01)
            variable = Shifted
        return writer(variable, perm, scale)

    monkeypatch.setattr(litert_weights, "laid_out_writer", perturbed)
    model = heads_model()
    target = tmp_path / "model.tflite"
    with pytest.raises(ExportCheckError, match="output 'box'"):
        write_artifact(model, str(target), FORMAT)
    assert not target.exists() and os.listdir(tmp_path) == []


def test_swapped_outputs_fail_the_check_naming_one_of_them(tmp_path, monkeypatch):
    """Equal shapes, swapped names: only the values can tell."""
    names = litert_convert.output_names

    def swapped(model):
        result = names(model)
        i, j = result.index("box"), result.index("a_score")
        result[i], result[j] = result[j], result[i]
        return result

    monkeypatch.setattr(litert_convert, "output_names", swapped)
    model = heads_model()
    path = str(tmp_path / "model.tflite")
    FORMAT.write(model, path)
    with pytest.raises(ExportCheckError, match="output '(box|a_score)'"):
        check_artifact(FORMAT, model, path)


def test_a_dilated_transposed_convolution_is_refused_by_name(tmp_path):
    data = keras.Input((5, 7, 4), name="data")
    y = GroupedConv2DTranspose(3, 3, strides=2, dilation_rate=2, name="deconv_dilated")(data)
    model = keras.Model(data, keras.layers.Conv2D(2, 1, name="after")(y))
    target = tmp_path / "model.tflite"
    with pytest.raises(UnsupportedInFormatError, match="'deconv_dilated' "
                       r"\(GroupedConv2DTranspose\): LiteRT's TRANSPOSE_CONV has no dilation"):
        write_artifact(model, str(target), FORMAT)
    assert os.listdir(tmp_path) == []


def test_the_formats_table_names_the_dilated_transposed_convolutions():
    assert FORMAT.expresses("GroupedConv2DTranspose").startswith("dilated ones: LiteRT's")
    assert FORMAT.expresses("Conv2DTranspose").startswith("dilated ones: LiteRT's")
    assert FORMAT.expresses("Conv2D") is None
    up = keras.layers.Conv2DTranspose(2, 3, strides=2, name="up")  # no dilation: converts
    data = keras.Input((4, 5, 3), name="data")
    assert FORMAT.unsupported(keras.Model(data, up(data))) == []


@keras.saving.register_keras_serializable(package="caffe2keras_tests")
class Determinant(keras.layers.Layer):
    """A layer whose op (MatrixDeterminant) LiteRT has only as a Flex op."""

    def call(self, x):
        return keras.ops.expand_dims(keras.ops.det(x[..., 0]), -1)

    def compute_output_shape(self, shape):
        return (shape[0], 1)


def test_an_op_without_a_builtin_is_refused_naming_its_layer(tmp_path):
    data = keras.Input((3, 3, 2), name="data")
    out = Determinant(name="det_1")(keras.layers.Conv2D(2, 1, name="conv")(data))
    model = keras.Model(data, out)
    with pytest.raises(UnsupportedInFormatError,
                       match=r"'det_1' \(Determinant\): TensorFlow's MatrixDeterminant has no "
                             "LiteRT builtin op"):
        FORMAT.write(model, str(tmp_path / "model.tflite"))


def test_a_missing_runtime_names_the_install_command(tmp_path, monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ai_edge_litert" else find_spec(name, *a))
    with pytest.raises(OutputError, match=r"pip install 'caffe2keras\[export\]'"):
        FORMAT.load(str(tmp_path / "model.tflite"))


def test_a_file_from_elsewhere_is_refused(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(OutputError, match="cannot load the LiteRT model"):
        FORMAT.load(str(path))


@pytest.mark.parametrize("name", ["caffenet", "googlenet", "super_resolution", "mobilenet_v1"])
def test_golden_nets_with_every_kernel_around_the_converter(name, monkeypatch):
    """Grouped, 1x1 and 5x5, transposed and depthwise kernels, and kernels a following
    BatchNorm folds into (converted for real): every blob still matches real Caffe."""
    from test_formats_golden import FIXTURES, check_against_caffe

    monkeypatch.setattr(litert_weights, "MARKER_BYTES", 0)
    folder = FIXTURES / name
    check_against_caffe("tflite", folder / "deploy.prototxt", folder / "weights.caffemodel",
                        folder / "golden.npz")


def test_a_model_with_variable_ops_is_not_written(tmp_path, monkeypatch):
    """What Keras' own LiteRT export gives: resource variables read by READ_VARIABLE, which
    XNNPACK runs on uninitialised memory."""
    import tensorflow as tf

    def with_variables(model, marked, folder, key, *rest):
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="data")
        serve = tf.function(lambda x: {"out": model(x, training=False)}, input_signature=[spec])
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], model)
        return converter.convert()

    monkeypatch.setattr(litert_convert, "convert", with_variables)
    data = keras.Input((4, 3, 2), name="data")
    model = keras.Model(data, keras.layers.Conv2D(3, 1, name="conv")(data))
    with pytest.raises(OutputError, match="left READ_VARIABLE, VAR_HANDLE ops"):
        FORMAT.write(model, str(tmp_path / "model.tflite"))
    assert not (tmp_path / "model.tflite").exists()


def test_nsfw_with_every_kernel_and_batchnorm_folded_around_the_converter(nsfw_model,
                                                                          monkeypatch):
    """open_nsfw's 53 convolutions, each followed by a BatchNormalization folded here, and
    its classifier: the stored blobs of real Caffe still match."""
    from test_formats_golden import FIXTURES, check_against_caffe

    monkeypatch.setattr(litert_weights, "MARKER_BYTES", 0)
    rounds, placed = record_rounds(monkeypatch)
    prototxt, caffemodel = nsfw_model
    check_against_caffe("tflite", prototxt, caffemodel, FIXTURES / "nsfw" / "golden.npz",
                        fuse_batchnorm=True)
    assert len(rounds) == 1 and len(placed) == len(rounds[0]) == 54
