"""The OpenVINO IR format: outputs by name, one file for any batch size, exact under the CPU
plugin's default settings (bf16 on CPUs that have it) because of the precise marks and the
rewrites, the conversion check catching a broken export, refusals by layer name. Golden
nets against Caffe: tests/test_formats_golden.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
import openvino.opset1 as opset1  # noqa: E402
import openvino.opset8 as opset8  # noqa: E402
import openvino.opset14 as opset14  # noqa: E402
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("the openvino format is traced on the TensorFlow backend", allow_module_level=True)

from caffe2keras.errors import ExportCheckError, OutputError, UnsupportedInFormatError  # noqa: E402
from caffe2keras.formats import openvino_rewrites, openvino_trace  # noqa: E402
from caffe2keras.formats.base import output_names  # noqa: E402
from caffe2keras.formats.check import check_artifact, keras_outputs  # noqa: E402
from caffe2keras.formats.openvino_f32 import (PRECISE, below_float32, bodies,  # noqa: E402
                                              keep_float32)
from caffe2keras.formats.openvino_ir import OpenVINOFormat  # noqa: E402
from caffe2keras.formats.write import write_artifact  # noqa: E402
from caffe2keras.layers import Slice  # noqa: E402

from test_format_onnx_custom import (DETECTIONS, assert_detections_match,  # noqa: E402
                                     detection_feeds, ssd_head)

FORMAT = OpenVINOFormat()
RNG = np.random.default_rng(11)
# What the CPU plugin computes in when nobody asks: bf16 where the CPU has it.
NARROW_BY_DEFAULT = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT") in (ov.Type.bf16,
                                                                                 ov.Type.f16)
# the mark as set (openvino_f32.PRECISE) and as read back from an .xml
MARK_KEYS = (PRECISE, "DisablePrecisionConversion_0")


def randomized(model):
    for variable in model.variables:  # not Keras' zero biases
        variable.assign((RNG.standard_normal(variable.shape) * 0.3).astype(np.float32))
    return model


def heads_model():
    """Heads of several kinds: a dense head with bias, a softmax, a feature map, the two
    parts of a Slice (canonical names ending in :0 and :1) and a Dropout that is the same
    tensor as the ReLU before it. H != W != C."""
    data = keras.Input((9, 7, 3), name="data")
    features = keras.layers.Conv2D(6, (3, 2), strides=(2, 1), name="conv")(data)
    relu = keras.layers.ReLU(name="relu")(features)
    kept = keras.layers.Dropout(0.5, name="drop")(relu)
    flat = keras.layers.Flatten(name="flat")(kept)
    box = keras.layers.Dense(4, name="box")(flat)
    prob = keras.layers.Softmax(name="prob")(keras.layers.Dense(5, name="score")(flat))
    low, high = Slice(axis=-1, points=[2], name="split")(features)
    return randomized(keras.Model(data, [box, prob, high, relu, kept, low], name="heads"))


def bf16_visible_model():
    """The patterns whose bf16 rounding shows: max pooling, a strided 1x1 convolution, dense
    layers with biases (the CPU plugin rebuilds each into a new node)."""
    data = keras.Input((12, 10, 8), name="data")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(data)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(16, 1, strides=2, name="reduce")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
    return randomized(keras.Model(data, keras.layers.Dense(10, name="fc2")(x), name="visible"))


def inputs_for(model, batch):
    return {tensor.name: (RNG.standard_normal((batch, *tensor.shape[1:])) * 50).astype(np.float32)
            for tensor in model.inputs}


def largest_error(expected, actual):
    """Largest error of any output relative to that output's largest value."""
    return max(float(np.max(np.abs(actual[name] - want)) / np.max(np.abs(want)))
               for name, want in expected.items())


def compiled_outputs(compiled, feeds):
    results = compiled(feeds)
    return {name: np.asarray(value) for port, value in results.items()
            for name in port.get_names()}


def test_several_outputs_come_back_by_name_at_any_batch(tmp_path):
    model = heads_model()
    path = str(tmp_path / "heads.xml")
    FORMAT.write(model, path)
    runner = FORMAT.load(path)
    assert runner.inputs == ["data"]
    assert sorted(runner.outputs) == sorted(output_names(model))
    for batch in (1, 3):  # one file, one compiled model
        feeds = inputs_for(model, batch)
        expected, actual = keras_outputs(model, feeds), runner.run(feeds)
        assert sorted(actual) == sorted(expected)
        assert {name: a.shape for name, a in actual.items()} == \
            {name: e.shape for name, e in expected.items()}
        assert largest_error(expected, actual) <= 1e-5


def test_inputs_keep_the_model_order_and_an_input_can_be_an_output(tmp_path):
    data = keras.Input((4, 3, 2), name="data")
    aux = keras.Input((5,), name="aux")  # sorts before "data"
    conv = keras.layers.Conv2D(3, 1, name="conv")(data)
    model = randomized(keras.Model([data, aux], [conv, data,
                                                 keras.layers.Dense(2, name="fc")(aux)]))
    path = str(tmp_path / "two.xml")
    FORMAT.write(model, path)
    runner = FORMAT.load(path)
    assert (runner.inputs, sorted(runner.outputs)) == (["data", "aux"], ["conv", "data", "fc"])
    feeds = inputs_for(model, 2)
    actual = runner.run(feeds)
    assert largest_error(keras_outputs(model, feeds), actual) <= 1e-6
    assert np.array_equal(actual["data"], feeds["data"])


def test_the_batch_dimension_is_dynamic_in_the_file(tmp_path):
    model = heads_model()
    path = str(tmp_path / "heads.xml")
    FORMAT.write(model, path)
    read = ov.Core().read_model(path)
    assert [str(port.get_partial_shape()) for port in read.inputs] == ["[?,9,7,3]"]
    assert all(port.get_partial_shape()[0].is_dynamic for port in read.outputs)


@pytest.mark.parametrize("name", DETECTIONS)
def test_detection_output_keeps_what_keras_keeps(tmp_path, name):
    """DetectionOutput's NMS runs as an OpenVINO Loop (whose body the runtime graph does not
    show): what it keeps must be Keras' rows, with tied scores, eta, per-class boxes and an
    image without detections (the ONNX tests' scenarios)."""
    model = ssd_head(**DETECTIONS[name][0])
    path = str(tmp_path / "ssd.xml")
    FORMAT.write(model, path)
    runner = FORMAT.load(path)
    for batch in (1, 3):
        feeds = detection_feeds(model, batch)
        output = output_names(model)[0]
        assert_detections_match(keras_outputs(model, feeds)[output], runner.run(feeds)[output],
                                f"{name}, batch {batch}")


def test_write_artifact_checks_and_places_both_files(tmp_path):
    model = heads_model()
    checks = write_artifact(model, str(tmp_path / "model.xml"), FORMAT)
    assert {c.name for c in checks} == set(output_names(model))
    assert all(c.passed and c.relative_error <= 1e-5 for c in checks)
    assert sorted(os.listdir(tmp_path)) == ["model.bin", "model.xml"]
    assert FORMAT.files(str(tmp_path / "model.xml"))[1] == str(tmp_path / "model.bin")


def test_the_weights_stay_float32_in_the_bin(tmp_path):
    model = bf16_visible_model()
    path = str(tmp_path / "visible.xml")
    FORMAT.write(model, path)
    constants = [node for node in ov.Core().read_model(path).get_ops()
                 if node.get_type_name() == "Constant"]
    assert {node.get_element_type() for node in constants if node.get_byte_size() > 64} \
        == {ov.Type.f32}
    parameters = sum(int(np.prod(v.shape)) for v in model.weights)
    assert os.path.getsize(str(tmp_path / "visible.bin")) >= 4 * parameters


@pytest.mark.parametrize("compile_like_a_user", [
    lambda path: ov.Core().compile_model(path, "CPU"),
    lambda path: ov.compile_model(path),  # AUTO device selection
], ids=["Core.compile_model CPU", "openvino.compile_model AUTO"])
def test_the_users_default_compile_is_exact(tmp_path, compile_like_a_user):
    model = bf16_visible_model()
    path = str(tmp_path / "visible.xml")
    FORMAT.write(model, path)
    compiled = compile_like_a_user(path)
    feeds = inputs_for(model, 2)
    assert largest_error(keras_outputs(model, feeds), compiled_outputs(compiled, feeds)) <= 1e-5


USER_SCRIPT = """
import sys
import numpy as np
import openvino
stored = np.load(sys.argv[2])
compiled = openvino.Core().compile_model(sys.argv[1], "CPU")
got = compiled({"data": stored["data"]})[compiled.output("fc2")]
print(float(np.max(np.abs(got - stored["fc2"])) / np.max(np.abs(stored["fc2"]))))
"""


def test_a_fresh_process_with_only_openvino_gets_keras_numbers(tmp_path):
    """What a user does: another process, no caffe2keras, the .xml and the defaults."""
    model = bf16_visible_model()
    path = str(tmp_path / "visible.xml")
    FORMAT.write(model, path)
    feeds = inputs_for(model, 3)
    np.savez(tmp_path / "expected.npz", data=feeds["data"], **keras_outputs(model, feeds))
    done = subprocess.run([sys.executable, "-c", USER_SCRIPT, path,
                           str(tmp_path / "expected.npz")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) <= 1e-5


def _unmark(model):
    for node in model.get_ops():
        for key in MARK_KEYS:
            if key in node.get_rt_info():
                del node.get_rt_info()[key]
        for body in bodies(node):
            _unmark(body)


def test_the_precise_marks_are_what_keep_float32(tmp_path):
    """The same IR with the marks removed: on a CPU whose default is bf16 it runs ops in
    bf16 and differs visibly; on one without, the default is float32 and it stays exact."""
    model = bf16_visible_model()
    marked = str(tmp_path / "marked.xml")
    FORMAT.write(model, marked)
    unmarked_model = ov.Core().read_model(marked)
    _unmark(unmarked_model)
    unmarked = str(tmp_path / "unmarked.xml")
    ov.save_model(unmarked_model, unmarked, compress_to_fp16=False)
    assert "DisablePrecisionConversion" in open(marked).read()
    assert "DisablePrecisionConversion" not in open(unmarked).read()

    feeds = inputs_for(model, 2)
    expected = keras_outputs(model, feeds)
    with_marks = ov.Core().compile_model(marked, "CPU")
    without_marks = ov.Core().compile_model(unmarked, "CPU")
    assert below_float32(with_marks) == []
    assert largest_error(expected, compiled_outputs(with_marks, feeds)) <= 1e-5
    error = largest_error(expected, compiled_outputs(without_marks, feeds))
    if NARROW_BY_DEFAULT:
        assert below_float32(without_marks), "nothing ran below float32 without the marks"
        assert error > 1e-3, f"bf16 should show, the error is only {error:.3g}"
    else:  # nothing to keep: the unmarked IR is float32 too
        assert below_float32(without_marks) == []
        assert error <= 1e-5


def _residual_then_strided(x):
    """ResNet's downsampling: both branches of a block's output are strided 1x1 convolutions,
    and the shortcut into that output is read by another layer too."""
    inner = keras.layers.Conv2D(8, 3, padding="same", name="inner")(x)
    joined = keras.layers.ReLU(name="relu")(keras.layers.Add(name="sum")([inner, x]))
    return [keras.layers.Conv2D(8, 1, strides=2, name="branch1")(joined),
            keras.layers.Conv2D(6, 1, strides=2, name="branch2a")(joined)]


@pytest.mark.parametrize("layers,pattern", [
    (lambda x: [keras.layers.Dense(32, name="fc")(keras.layers.Flatten()(x))], "MatMul"),
    (lambda x: [keras.layers.Conv2D(8, 3, name="after")(keras.layers.MaxPooling2D(2)(x))],
     "MaxPool"),
    (_residual_then_strided, "Convolution"),
], ids=["dense bias", "max pooling", "strided 1x1 conv"])
def test_each_rewrite_is_what_keeps_its_pattern_in_float32(tmp_path, monkeypatch, layers,
                                                           pattern):
    data = keras.Input((12, 10, 8), name="data")
    model = randomized(keras.Model(data, layers(keras.layers.Conv2D(8, 3, name="c")(data))))
    path = str(tmp_path / "rewritten.xml")
    FORMAT.write(model, path)
    assert below_float32(ov.Core().compile_model(path, "CPU")) == []
    for rewrites in openvino_rewrites.PASSES:
        monkeypatch.delitem(rewrites, pattern, raising=False)
    FORMAT.write(model, path)
    # without the rewrite the plugin rebuilds the pattern, unmarked, in bf16 where it can
    assert bool(below_float32(ov.Core().compile_model(path, "CPU"))) == NARROW_BY_DEFAULT


@pytest.mark.parametrize("make, version", [
    (lambda x: opset8.max_pool(x, [2, 1], [1, 1], [0, 1], [1, 0], [3, 2], "ceil").output(0),
     "MaxPool-8"),
    (lambda x: opset14.max_pool(x, [2, 1], [1, 1], [0, 1], [1, 0], [3, 2], "floor").output(0),
     "MaxPool-14"),
    (lambda x: opset14.avg_pool(x, [1, 2], [1, 0], [0, 1], [2, 3], False, "ceil"),
     "AvgPool-14"),
    (lambda x: opset8.softmax(x, -3), "Softmax-8"),
], ids=["MaxPool-8", "MaxPool-14", "AvgPool-14", "Softmax-8"])
def test_op_versions_the_plugin_downgrades_are_written_as_version_1(tmp_path, make, version):
    """Between two convolutions (so no graph tail keeps it float32 anyway), the op is written
    as version 1, computes what the newer version does and stays float32."""
    x = opset1.parameter([-1, 6, 9, 7], np.float32, name="x")
    kernel = opset1.constant((RNG.standard_normal((6, 6, 1, 1)) * 0.3).astype(np.float32))
    y = make(opset1.convolution(x, kernel, [1, 1], [0, 0], [0, 0], [1, 1]))
    z = opset1.convolution(y, kernel, [1, 1], [0, 0], [0, 0], [1, 1])

    def build():
        model = ov.Model([z], [x])
        model.outputs[0].get_tensor().set_names({"z"})
        return model

    reference = ov.Core().compile_model(build(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    rewritten = build()
    keep_float32(rewritten)
    kind = version.split("-")[0]
    assert [node.get_type_info().version_id for node in rewritten.get_ops()
            if node.get_type_name() == kind] == ["opset1"]
    path = str(tmp_path / "op.xml")
    ov.save_model(rewritten, path, compress_to_fp16=False)
    compiled = ov.Core().compile_model(path, "CPU")
    assert below_float32(compiled) == []
    feeds = {"x": (RNG.standard_normal((2, 6, 9, 7)) * 50).astype(np.float32)}
    np.testing.assert_array_equal(compiled(feeds)["z"], reference(feeds)["z"])


def _ir_layers(path, kinds):
    return [(node.get_type_name(), node.get_attributes()["strides"])
            for node in ov.Core().read_model(path).get_ordered_ops()
            if node.get_type_name() in kinds]


def test_strides_move_up_into_the_producing_convolution_as_the_plugin_moves_them(tmp_path):
    """Both readers of a block's output are strided 1x1 convolutions: they get stride 1,
    the block's convolution computes only every second output (stride 2), and the shortcut,
    read by that convolution too, is subsampled by one 1x1 MaxPool. A strided 1x1
    convolution whose input is read otherwise as well stays as it is."""
    data = keras.Input((12, 10, 8), name="data")
    x = keras.layers.Conv2D(8, 3, name="c")(data)
    inner = keras.layers.Conv2D(8, 3, name="inner")(keras.layers.ZeroPadding2D(1)(x))
    joined = keras.layers.ReLU(name="relu")(keras.layers.Add(name="sum")([inner, x]))
    model = randomized(keras.Model(data, [
        keras.layers.Conv2D(8, 1, strides=2, name="branch1")(joined),
        keras.layers.Conv2D(6, 1, strides=2, name="branch2a")(joined),
        keras.layers.Conv2D(5, 1, strides=2, name="lone")(x)]))
    path = str(tmp_path / "block.xml")
    FORMAT.write(model, path)
    assert sorted(_ir_layers(path, ("Convolution", "MaxPool"))) == [
        ("Convolution", [1, 1]),  # c
        ("Convolution", [1, 1]), ("Convolution", [1, 1]),  # branch1, branch2a
        ("Convolution", [2, 2]),  # inner
        ("Convolution", [2, 2]),  # lone: x is read by inner and the Add too
        ("MaxPool", [2, 2])]  # the shortcut
    runner = FORMAT.load(path)
    for batch in (1, 3):
        feeds = inputs_for(model, batch)
        assert largest_error(keras_outputs(model, feeds), runner.run(feeds)) <= 1e-5


def test_a_compiled_model_below_float32_is_refused(tmp_path, monkeypatch):
    """Where the plugin still rounds something to bf16 (a pattern no rewrite knows), loading
    refuses, so the conversion check fails even where the probe input would not show it."""
    for rewrites in openvino_rewrites.PASSES:
        monkeypatch.delitem(rewrites, "MatMul", raising=False)
    path = str(tmp_path / "visible.xml")
    FORMAT.write(bf16_visible_model(), path)
    if NARROW_BY_DEFAULT:
        with pytest.raises(ExportCheckError, match=r"OpenVINO IR: the CPU plugin runs \d+ ops? "
                                                   r"below float32 by default: .*FullyConnected"):
            FORMAT.load(path)
    else:  # float32 by default: nothing to refuse
        assert FORMAT.load(path).outputs == ["fc2"]


def test_a_broken_export_fails_the_check_naming_the_output(tmp_path, monkeypatch):
    """A rewrite that loses the bias, as a buggy one would: the check names the output."""
    def bias_lost(node):
        add, _ = openvino_rewrites._bias_add(node)
        if add is not None:
            add.output(0).replace(node.output(0))

    monkeypatch.setitem(openvino_rewrites.PASSES[-1], "MatMul", bias_lost)
    data = keras.Input((5, 4, 3), name="data")
    conv = keras.layers.Conv2D(4, 2, name="conv")(data)
    head = keras.layers.Dense(6, name="head")(keras.layers.Flatten(name="flat")(conv))
    model = randomized(keras.Model(data, [conv, head]))
    path = str(tmp_path / "broken.xml")
    FORMAT.write(model, path)
    with pytest.raises(ExportCheckError, match=r"OpenVINO IR \(openvino\): output 'head' "
                                               r"differs .* 1 of 2 outputs differ"):
        check_artifact(FORMAT, model, path)
    with pytest.raises(ExportCheckError, match="'head'"):
        write_artifact(model, str(tmp_path / "model.xml"), FORMAT)
    assert sorted(os.listdir(tmp_path)) == ["broken.bin", "broken.xml"]


@keras.saving.register_keras_serializable(package="caffe2keras_tests")
class LogGamma(keras.layers.Layer):
    """A layer computing with a TensorFlow op OpenVINO has no conversion for (Lgamma)."""

    def call(self, inputs):
        import tensorflow as tf
        return tf.math.lgamma(tf.abs(inputs) + 1.0)


def test_a_layer_openvino_cannot_convert_is_refused_by_name(tmp_path):
    data = keras.Input((6, 5, 3), name="data")
    x = keras.layers.Conv2D(4, 2, name="conv")(data)
    model = keras.Model(data, keras.layers.Dense(3, name="fc")(LogGamma(name="loggamma")(x)))
    with pytest.raises(UnsupportedInFormatError) as refused:
        write_artifact(model, str(tmp_path / "model.xml"), FORMAT)
    assert refused.value.layers == [("loggamma", "LogGamma", "OpenVINO has no conversion for "
                                     "the TensorFlow op(s) Lgamma it computes with")]
    assert "OpenVINO IR cannot express 1 layer: 'loggamma' (LogGamma)" in str(refused.value)
    assert os.listdir(tmp_path) == []


def test_without_openvino_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(OutputError, match=r"pip install 'caffe2keras\[export\]'"):
        openvino_trace.import_openvino()


def test_another_keras_backend_is_refused_clearly(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(OutputError, match="needs the TensorFlow backend"):
        openvino_trace.trace(heads_model())
