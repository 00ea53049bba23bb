"""The converted-model contract: files, atomic writes, fillers, input shapes, batch, names, layouts,
safe-mode loading and the unsupported-layer error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

import caffe2keras
import caffe_ref as ref
from caffe2keras.api import prepare
from caffe2keras.errors import OutputError, UnsupportedLayerError
from numpy_forward import assert_close, forward, keras_values, normal, to_keras, write_net

# --- a small net touching every custom layer (and most built-in conversions) ---------------------

ZOO = """
name: "zoo"
input: "data"
input_shape { dim: 2 dim: 3 dim: 12 dim: 10 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad_h: 1 pad_w: 2 stride_h: 2 stride_w: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 3 alpha: 0.5 } }
layer { name: "norm2" type: "LRN" bottom: "norm1" top: "norm2"
        lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL } }
layer { name: "pool1" type: "Pooling" bottom: "norm2" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "dw" type: "Convolution" bottom: "pool1" top: "dw"
        convolution_param { num_output: 6 group: 6 kernel_size: 3 dilation: 2 stride: 2 pad: 2 } }
layer { name: "scl" type: "Scale" bottom: "dw" top: "scl" scale_param { num_axes: 2 } }
layer { name: "bia" type: "Bias" bottom: "scl" top: "bia" bias_param { axis: 2 num_axes: 2 } }
layer { name: "abs" type: "AbsVal" bottom: "bia" top: "abs" }
layer { name: "pw" type: "Power" bottom: "abs" top: "pw" power_param { power: 0.5 shift: 0.1 } }
layer { name: "ex" type: "Exp" bottom: "pw" top: "ex" exp_param { base: 2 scale: 0.1 } }
layer { name: "lg" type: "Log" bottom: "ex" top: "lg" log_param { shift: 1 } }
layer { name: "thr" type: "Threshold" bottom: "bia" top: "thr" threshold_param { threshold: 0.2 } }
layer { name: "mix" type: "Eltwise" bottom: "lg" bottom: "thr" top: "mix" eltwise_param { coeff: 0.5 coeff: -1 } }
layer { name: "gap" type: "Pooling" bottom: "mix" top: "gap" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc1" type: "InnerProduct" bottom: "gap" top: "fc1" inner_product_param { num_output: 6 } }
layer { name: "gate" type: "Sigmoid" bottom: "fc1" top: "fc1" }
layer { name: "se" type: "Scale" bottom: "mix" bottom: "fc1" top: "se" scale_param { axis: 0 } }
layer { name: "res" type: "Bias" bottom: "se" bottom: "mix" top: "res" bias_param { axis: 0 } }
layer { name: "prelu" type: "PReLU" bottom: "res" top: "res" }
layer { name: "avg" type: "Pooling" bottom: "res" top: "avg"
        pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 1 } }
layer { name: "flat" type: "Flatten" bottom: "avg" top: "flat" }
layer { name: "drop" type: "Dropout" bottom: "flat" top: "flat" }
layer { name: "fc2" type: "InnerProduct" bottom: "flat" top: "fc2" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }
layer { name: "cat" type: "Concat" bottom: "res" bottom: "mix" top: "cat" }
layer { name: "aux" type: "ELU" bottom: "cat" top: "aux" elu_param { alpha: 0.5 } }
"""
CUSTOM_LAYERS = {"LRN", "CaffePooling2D", "Scale", "ScaleByInput", "Bias", "BiasByInput", "AbsVal",
                 "Power", "Exp", "Log", "Threshold", "WeightedSum"}


def zoo_blobs():
    shapes = {"conv1": [(6, 3, 3, 3), (6,)], "sc1": [(6,), (6,)], "dw": [(6, 1, 3, 3), (6,)],
              "scl": [(6, 2)], "bia": [(2, 4)], "fc1": [(6, 6), (6,)], "prelu": [(6,)],
              "fc2": [(5, 6 * 3 * 3), (5,)]}
    blobs = {name: [normal(shape, seed=i * 10 + j) for j, shape in enumerate(group)]
             for i, (name, group) in enumerate(shapes.items())}
    var = np.abs(normal((6,), seed=99)) + 0.5
    blobs["bn1"] = [2.0 * normal((6,), seed=98), 2.0 * var, np.array([2.0], np.float32)]
    return blobs


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """(prototxt, caffemodel, converted model, input NCHW)."""
    folder = tmp_path_factory.mktemp("zoo")
    prototxt, caffemodel = write_net(folder, ZOO, zoo_blobs())
    return prototxt, caffemodel, caffe2keras.convert(prototxt, caffemodel), normal((2, 3, 12, 10), 7)


def test_zoo_matches_numpy_forward(zoo):
    """The contract test net itself computes Caffe's numbers, top by top."""
    prototxt, caffemodel, model, x = zoo
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    values = forward(net, {"data": x})
    tops = {layer.name: values[layer.tops[0]] for layer in net.layers if layer.tops}
    names = [name for name in tops if name != "bn1"]  # fused into sc1
    got = keras_values(model, names, {"data": x})
    for name in names:
        assert_close(got[name], tops[name], name)


def test_zoo_uses_every_custom_layer_and_no_lambda(zoo):
    _, _, model, _ = zoo
    classes = {type(layer) for layer in model.layers}
    assert CUSTOM_LAYERS <= {cls.__name__ for cls in classes}
    assert not any(issubclass(cls, keras.layers.Lambda) for cls in classes)
    # Every class is Keras' own or ours (registered for safe-mode loading).
    foreign = [cls for cls in classes
               if not cls.__module__.startswith(("keras.", "caffe2keras.layers"))]
    assert not foreign, foreign


RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import caffe2keras, keras
    x = np.load(sys.argv[1])
    report = {}
    for path in sys.argv[2:]:
        model = keras.models.load_model(path, safe_mode=True)
        outputs = model.predict(x, verbose=0)
        np.savez(path + ".npz", *outputs)
        report[path] = sorted({type(layer).__name__ for layer in model.layers})
    print(json.dumps(report))
""")


def test_saved_files_load_in_safe_mode_in_a_fresh_process(zoo, tmp_path, run_cli):
    """`caffe2keras convert` writes .h5 or .keras by extension; after `import caffe2keras`, a
    fresh Python loads both with safe_mode=True and computes what the in-process model does."""
    prototxt, caffemodel, model, x = zoo
    paths = [str(tmp_path / "zoo.h5"), str(tmp_path / "zoo.keras")]
    for path in paths:
        code, _, err = run_cli("convert", prototxt, caffemodel, path)
        assert code == 0, err
    with open(paths[0], "rb") as h5, open(paths[1], "rb") as zipped:
        assert h5.read(8) == b"\x89HDF\r\n\x1a\n" and zipped.read(2) == b"PK"
    np.save(tmp_path / "x.npy", to_keras(x))
    (tmp_path / "reload.py").write_text(RELOAD)
    done = subprocess.run([sys.executable, str(tmp_path / "reload.py"), str(tmp_path / "x.npy"),
                           *paths], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    classes = json.loads(done.stdout.strip().splitlines()[-1])
    expected = model.predict(to_keras(x), verbose=0)
    for path in paths:
        assert CUSTOM_LAYERS <= set(classes[path]), path
        with np.load(path + ".npz") as saved:
            reloaded = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        assert len(reloaded) == len(expected)
        for got, want in zip(reloaded, expected):
            assert got.shape == want.shape
            assert np.max(np.abs(got - want)) <= 1e-6, path


def test_safe_mode_round_trip_in_process(zoo, tmp_path):
    _, _, model, x = zoo
    path = str(tmp_path / "zoo.keras")
    caffe2keras.api.save_model(model, path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for got, want in zip(loaded.predict(to_keras(x), verbose=0), model.predict(to_keras(x), verbose=0)):
        assert np.array_equal(got, want)


# --- atomic writes ------------------------------------------------------------------------------

UNSUPPORTED = """
name: "unsupported"
input: "data"
input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
layer { name: "ok" type: "ReLU" bottom: "data" top: "ok" }
layer { name: "odd/1" type: "MadeUpLayer" bottom: "ok" top: "odd" }
layer { name: "py" type: "Python" bottom: "odd" top: "py" python_param { module: "m" layer: "L" } }
layer { name: "fine" type: "TanH" bottom: "py" top: "fine" }
layer { name: "odd2" type: "AnotherMadeUpLayer" bottom: "fine" top: "odd2" }
"""
SMALL = """
name: "small"
input: "data"
input_shape { dim: 2 dim: 3 dim: 9 dim: 7 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
"""


def small_net_in(folder):
    """SMALL written into ``folder``/net, so that ``folder`` itself holds only outputs."""
    (folder / "net").mkdir()
    return write_net(folder / "net", SMALL, small_blobs())


def small_blobs():
    return {"conv": [normal((4, 3, 3, 2), 1), normal((4,), 2)],
            "fc": [normal((5, 4 * 3 * 3), 3), normal((5,), 4)]}


def small_reference(x):
    w, b = small_blobs()["conv"]
    pooled = ref.pooling(ref.convolution(x, w, b, stride=(2, 1), pad=(1, 0)), "max", 2, 2)
    return ref.inner_product(pooled, *small_blobs()["fc"])


def test_unsupported_layers_are_listed_in_one_error(tmp_path):
    prototxt, _ = write_net(tmp_path, UNSUPPORTED)
    with pytest.raises(UnsupportedLayerError) as raised:
        caffe2keras.convert(prototxt)
    expected = [("odd/1", "MadeUpLayer"), ("py", "Python"), ("odd2", "AnotherMadeUpLayer")]
    assert raised.value.layers == expected
    for name, type_ in expected:
        assert f"'{name}' ({type_}" in str(raised.value)
    assert "Python class that python_param names" in str(raised.value)


@pytest.mark.parametrize("existing", [None, b"an older model, keep me"])
def test_unsupported_layer_leaves_no_file_and_keeps_the_old_one(tmp_path, run_cli, existing):
    prototxt, _ = write_net(tmp_path, UNSUPPORTED)
    output = tmp_path / "out" / "model.h5"
    output.parent.mkdir()
    if existing is not None:
        output.write_bytes(existing)
    code, out, err = run_cli("convert", prototxt, str(output))
    assert code == UnsupportedLayerError.exit_code
    assert "MadeUpLayer" in err and "AnotherMadeUpLayer" in err and "Python" in err
    assert "Traceback" not in err
    assert os.listdir(output.parent) == ([] if existing is None else ["model.h5"])
    if existing is not None:
        assert output.read_bytes() == existing


@pytest.mark.parametrize("name", ["model.txt", "model", "model.h5.tmp"])
def test_bad_extension_writes_nothing(tmp_path, run_cli, name):
    prototxt, caffemodel = small_net_in(tmp_path)
    code, _, err = run_cli("convert", prototxt, caffemodel, str(tmp_path / name))
    assert code == OutputError.exit_code and ".h5" in err
    assert os.listdir(tmp_path) == ["net"]
    with pytest.raises(OutputError):
        caffe2keras.convert_file(prototxt, caffemodel, str(tmp_path / name))
    assert os.listdir(tmp_path) == ["net"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("boom"),
                                   KeyboardInterrupt()], ids=["oserror", "runtime", "interrupt"])
@pytest.mark.parametrize("extension", [".h5", ".keras"])
def test_save_failing_midway_leaves_no_trace(tmp_path, monkeypatch, error, extension):
    """keras.Model.save writes half a file, then fails: the target keeps its old bytes and no
    temporary file remains."""
    prototxt, caffemodel = small_net_in(tmp_path)
    target = tmp_path / f"model{extension}"
    target.write_bytes(b"old model")
    written = []

    def half_save(self, path, *args, **kwargs):
        with open(path, "wb") as partial:
            partial.write(b"half a model")
        written.append(path)
        raise error

    monkeypatch.setattr(keras.Model, "save", half_save)
    expected = OutputError if isinstance(error, (OSError, RuntimeError)) else type(error)
    with pytest.raises(expected):
        caffe2keras.convert_file(prototxt, caffemodel, str(target))
    assert written and os.path.dirname(os.path.abspath(written[0])) == str(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([target.name, "net"])
    assert target.read_bytes() == b"old model"


def test_successful_conversion_replaces_an_existing_file(tmp_path, run_cli):
    prototxt, caffemodel = small_net_in(tmp_path)
    target = tmp_path / "model.keras"
    target.write_bytes(b"old model")
    code, _, err = run_cli("convert", prototxt, caffemodel, str(target))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "net"]
    x = normal((2, 3, 9, 7), 5)
    loaded = keras.models.load_model(target, safe_mode=True)
    assert_close(loaded.predict(to_keras(x), verbose=0), small_reference(x))


# --- fillers ------------------------------------------------------------------------------------

FILLED = """
name: "filled"
input: "data"
input_shape { dim: 2 dim: 3 dim: 6 dim: 5 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3
                            weight_filler { type: "constant" value: 0.25 }
                            bias_filler { type: "constant" value: 0.7 } } }
layer { name: "scale" type: "Scale" bottom: "conv" top: "scale"
        scale_param { bias_term: true bias_filler { type: "constant" value: -0.5 } } }
layer { name: "prelu" type: "PReLU" bottom: "scale" top: "prelu" }
layer { name: "fc" type: "InnerProduct" bottom: "prelu" top: "fc"
        inner_product_param { num_output: 3 weight_filler { type: "uniform" min: -0.1 max: 0.3 }
                              bias_filler { type: "constant" value: -2 } } }
layer { name: "fc2" type: "InnerProduct" bottom: "fc" top: "fc2"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.01 } } }
"""


def test_without_weights_fillers_are_used_with_a_warning(tmp_path):
    prototxt, _ = write_net(tmp_path, FILLED)
    with pytest.warns(UserWarning, match="filler"):
        model = caffe2keras.convert(prototxt)
    conv_kernel, conv_bias = model.get_layer("conv").get_weights()
    assert np.all(conv_kernel == np.float32(0.25)) and np.all(conv_bias == np.float32(0.7))
    gamma, beta = model.get_layer("scale").get_weights()
    assert np.all(gamma == 1) and np.all(beta == np.float32(-0.5))  # Caffe's Scale filler: 1
    assert np.all(model.get_layer("prelu").get_weights()[0] == np.float32(0.25))  # PReLU: 0.25
    fc_kernel, fc_bias = model.get_layer("fc").get_weights()
    assert fc_kernel.min() >= -0.1 and fc_kernel.max() <= 0.3 and fc_kernel.std() > 0.05
    assert np.all(fc_bias == -2)
    fc2_kernel, fc2_bias = model.get_layer("fc2").get_weights()
    assert 0.003 < fc2_kernel.std() < 0.03 and np.all(fc2_bias == 0)  # Caffe's default: constant 0
    x = normal((2, 3, 6, 5), 6)
    conv = ref.convolution(x, conv_kernel.transpose(3, 2, 0, 1), conv_bias)
    prelu = ref.prelu(ref.scale(conv, gamma, beta), np.full(4, 0.25))
    fc = ref.inner_product(prelu, fc_kernel.reshape(4, 3, 4, 3).transpose(3, 2, 0, 1).reshape(3, -1),
                           fc_bias)
    got = model.predict(to_keras(x), verbose=0)
    assert np.isfinite(got).all()
    assert_close(got, ref.inner_product(fc, fc2_kernel.T, fc2_bias))


def test_cli_without_weights_warns_on_stderr(tmp_path, run_cli):
    prototxt, _ = write_net(tmp_path, FILLED)
    code, _, err = run_cli("convert", prototxt, str(tmp_path / "filled.h5"))
    assert code == 0, err
    assert any(line.startswith("warning:") and "filler" in line for line in err.splitlines())
    assert (tmp_path / "filled.h5").is_file()


def test_full_weights_give_no_filler_warning(tmp_path):
    prototxt, caffemodel = write_net(tmp_path, SMALL, small_blobs())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caffe2keras.convert(prototxt, caffemodel)
    assert not [w for w in caught if "filler" in str(w.message)]


# --- input shapes, batch, order, layouts --------------------------------------------------------

FULLY_CONVOLUTIONAL = """
name: "fcn"
input: "data"
input_shape { dim: 2 dim: 3 dim: 9 dim: 7 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
"""


def fcn_reference(x):
    w, b = small_blobs()["conv"]
    conv = ref.convolution(x, w, b, stride=(2, 1), pad=(1, 0))
    return ref.pooling(conv, "ave", 3, 2, 1)


def test_input_shape_override_on_the_command_line(tmp_path, run_cli):
    prototxt, caffemodel = write_net(tmp_path, FULLY_CONVOLUTIONAL,
                                     {"conv": small_blobs()["conv"]})
    output = tmp_path / "fcn.keras"
    code, _, err = run_cli("convert", "--input-shape", "data=1,3,20,16", prototxt, caffemodel,
                           str(output))
    assert code == 0, err
    model = keras.models.load_model(output, safe_mode=True)
    assert tuple(model.inputs[0].shape) == (None, 20, 16, 3)
    x = normal((2, 3, 20, 16), 8)
    want = fcn_reference(x)
    assert want.shape == (2, 4, 6, 8)
    assert_close(keras_values(model, ["pool"], {"data": x})["pool"], want)


def test_input_shape_override_in_the_api_and_repeated(tmp_path, run_cli):
    text = FULLY_CONVOLUTIONAL.replace('layer {', 'input: "side"\ninput_shape { dim: 1 dim: 2 }\n'
                                       'layer {', 1) + """
layer { name: "side_fc" type: "InnerProduct" bottom: "side" top: "side_fc" inner_product_param { num_output: 3 } }
"""
    w, b = normal((3, 2), 9), normal((3,), 10)
    prototxt, caffemodel = write_net(tmp_path, text, {"conv": small_blobs()["conv"],
                                                      "side_fc": [w, b]})
    model = caffe2keras.convert(prototxt, caffemodel,
                                input_shapes={"data": (1, 3, 12, 11), "side": (4, 2)})
    assert [tuple(t.shape) for t in model.inputs] == [(None, 12, 11, 3), (None, 2)]
    output = tmp_path / "two.h5"
    code, _, err = run_cli("convert", prototxt, caffemodel, str(output), "--input-shape",
                           "data=1,3,12,11", "--input-shape", "side=4,2")
    assert code == 0, err
    loaded = keras.models.load_model(output, safe_mode=True)
    assert [tuple(t.shape) for t in loaded.inputs] == [(None, 12, 11, 3), (None, 2)]
    x, s = normal((3, 3, 12, 11), 11), normal((3, 2), 12)
    for converted in (model, loaded):
        got = keras_values(converted, ["pool", "side_fc"], {"data": x, "side": s})
        assert_close(got["pool"], fcn_reference(x))
        assert_close(got["side_fc"], ref.inner_product(s, w, b))


def test_unknown_input_in_override_is_an_error(tmp_path, run_cli):
    prototxt, caffemodel = write_net(tmp_path, FULLY_CONVOLUTIONAL,
                                     {"conv": small_blobs()["conv"]})
    code, _, err = run_cli("convert", "--input-shape", "image=1,3,20,16", prototxt, caffemodel,
                           str(tmp_path / "x.h5"))
    assert code != 0 and "image" in err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("batch", [1, 3])
def test_batch_dimension_is_free(tmp_path, batch):
    prototxt, caffemodel = write_net(tmp_path, SMALL, small_blobs())
    model = caffe2keras.convert(prototxt, caffemodel)  # declared batch: 2
    assert model.inputs[0].shape[0] is None
    x = normal((batch, 3, 9, 7), 13)
    got = model.predict(to_keras(x), verbose=0)
    assert got.shape == (batch, 5)
    assert_close(got, small_reference(x))


TWO_BY_TWO = """
name: "two_by_two"
input: "zeta"
input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
layer { name: "alpha" type: "Input" top: "alpha" input_param { shape { dim: 2 dim: 6 } } }
layer { name: "spatial" type: "TanH" bottom: "zeta" top: "mm_map" }
layer { name: "first" type: "InnerProduct" bottom: "zeta" top: "zz_scores" inner_product_param { num_output: 6 } }
layer { name: "mixed" type: "Eltwise" bottom: "zz_scores" bottom: "alpha" top: "mixed" }
layer { name: "second/out" type: "Softmax" bottom: "mixed" top: "aa_prob" }
"""


def test_inputs_and_outputs_in_caffe_order_and_named_after_caffe(tmp_path):
    """Inputs in declaration order; outputs in Caffe's order, which Net::Init takes from a
    std::set of blob names: sorted (aa_prob, mm_map), not the order the layers run (mm_map
    first)."""
    w, b = normal((6, 60), 14), normal((6,), 15)
    prototxt, caffemodel = write_net(tmp_path, TWO_BY_TWO, {"first": [w, b]})
    model = caffe2keras.convert(prototxt, caffemodel)
    assert [t.name for t in model.inputs] == ["zeta", "alpha"]
    assert len(model.outputs) == 2
    assert model.outputs[0] is model.get_layer("second_out").output
    assert model.outputs[1] is model.get_layer("spatial").output
    z, a = normal((2, 3, 5, 4), 16), normal((2, 6), 17)
    prob, spatial = model.predict([to_keras(z), a], verbose=0)
    assert_close(prob, ref.softmax(ref.eltwise([ref.inner_product(z, w, b), a])))
    assert_close(spatial, to_keras(ref.tanh(z)))


LAYOUTS = """
name: "layouts"
input: "data"
input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
layer { name: "four" type: "ReLU" bottom: "data" top: "a4" relu_param { negative_slope: 0.5 } }
layer { name: "three" type: "Flatten" bottom: "data" top: "b3" flatten_param { axis: 2 } }
layer { name: "two" type: "InnerProduct" bottom: "data" top: "c2" inner_product_param { num_output: 6 } }
"""


def test_four_d_blobs_are_nhwc_other_ranks_keep_caffe_order(tmp_path):
    w, b = normal((6, 60), 18), normal((6,), 19)
    prototxt, caffemodel = write_net(tmp_path, LAYOUTS, {"two": [w, b]})
    model = caffe2keras.convert(prototxt, caffemodel)
    assert tuple(model.inputs[0].shape) == (None, 5, 4, 3)
    assert [tuple(t.shape) for t in model.outputs] == [(None, 5, 4, 3), (None, 3, 20), (None, 6)]
    x = normal((2, 3, 5, 4), 20)
    four, three, two = model.predict(to_keras(x), verbose=0)
    assert_close(four, ref.relu(x, 0.5).transpose(0, 2, 3, 1))
    assert_close(three, ref.flatten(x, axis=2))
    assert_close(two, ref.inner_product(x, w, b))
