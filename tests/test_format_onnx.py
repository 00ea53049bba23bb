"""The ONNX format: every lowering of a Keras built-in layer against Keras itself, in
onnxruntime, on asymmetric shapes (N != C != H != W, stride_h != stride_w, pad_h != pad_w)
and several batch sizes through one file; the layout plumbing (no transposes between
channels-first layers); the writer (streamed weights, the 2 GiB limit, names); refusals and
the conversion check. The golden nets against real Caffe are in test_formats_golden.py."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from caffe2keras.errors import ExportCheckError, OutputError, UnsupportedInFormatError
from caffe2keras.formats.onnx_file import OnnxFormat
from caffe2keras.formats.write import write_artifact

from test_formats_golden import require_runtime

L = keras.layers
TOLERANCE = 1e-5  # of the largest value; float32 round-off in a differently ordered sum
BATCHES = (1, 3)


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime("onnx")


def randomise(model, seed=0):
    """Every weight random (Keras starts biases at 0, which would hide a dropped bias);
    variances positive."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        values = rng.standard_normal(variable.shape)
        if "variance" in variable.path:
            values = np.abs(values) + 0.1
        variable.assign(values.astype(np.float32))
    return model


def chain(input_shape, *layers, name="data"):
    """A model applying ``layers`` in turn (a callable gets the tensor and returns one)."""
    x = keras.Input(input_shape, name=name)
    y = x
    for layer in layers:
        y = layer(y)
    return randomise(keras.Model(x, y))


def write_and_compare(model, folder, batches=BATCHES, scale=5.0):
    """Write ``model`` as ONNX, check the file with onnx's full checker, run it at each
    batch size and return the largest relative error against Keras."""
    import onnx
    path = os.path.join(folder, "model.onnx")
    fmt = OnnxFormat()
    assert fmt.unsupported(model) == []
    fmt.write(model, path)
    onnx.checker.check_model(path, full_check=True)
    runner = fmt.load(path)
    rng = np.random.default_rng(1)
    worst = 0.0
    for batch in batches:
        feeds = {tensor.name: (rng.standard_normal((batch, *tensor.shape[1:])) * scale)
                 .astype(np.float32) for tensor in model.inputs}
        values = [feeds[t.name] for t in model.inputs]
        expected = model.predict(values if len(values) > 1 else values[0], verbose=0)
        expected = expected if isinstance(expected, list) else [expected]
        got = runner.run(feeds)
        assert list(got) == runner.outputs
        for name, want in zip(runner.outputs, expected):
            assert got[name].shape == want.shape, name
            error = np.max(np.abs(got[name].astype(np.float64) - want)) / np.max(np.abs(want))
            worst = max(worst, float(error))
    return worst


SHAPE = (7, 9, 5)  # H, W, C
CASES = {
    "conv_valid": (SHAPE, [L.Conv2D(6, (3, 2), strides=(2, 3))]),
    "conv_same": (SHAPE, [L.Conv2D(4, (4, 3), strides=(3, 2), padding="same")]),
    "conv_groups": ((7, 9, 6), [L.Conv2D(9, (3, 3), groups=3)]),
    "conv_dilated": (SHAPE, [L.Conv2D(4, (2, 3), dilation_rate=(3, 2), use_bias=False)]),
    "conv_dilated_same": (SHAPE, [L.Conv2D(3, 3, dilation_rate=(2, 1), padding="same")]),
    "conv_activation": (SHAPE, [L.Conv2D(4, 3, activation="relu")]),
    "conv_channels_first": ((5, 7, 9), [L.Conv2D(4, (3, 2), strides=(1, 2),
                                                 data_format="channels_first")]),
    "depthwise": (SHAPE, [L.DepthwiseConv2D((3, 2), strides=(2, 1), depth_multiplier=2,
                                            padding="same")]),
    "depthwise_dilated": (SHAPE, [L.DepthwiseConv2D(2, dilation_rate=(1, 2), use_bias=False)]),
    "deconv_full": (SHAPE, [L.Conv2DTranspose(4, (3, 2), strides=(2, 3), output_padding=0)]),
    "deconv_kernel_below_stride": (SHAPE, [L.Conv2DTranspose(3, 2, strides=(3, 4))]),
    "deconv_same": (SHAPE, [L.Conv2DTranspose(3, (3, 4), strides=(2, 3), padding="same")]),
    "deconv_dilated": (SHAPE, [L.Conv2DTranspose(2, (3, 2), dilation_rate=(2, 3))]),
    "dense": ((11,), [L.Dense(6)]),
    "dense_3d": ((4, 11), [L.Dense(6, activation="tanh")]),
    "dense_on_conv": (SHAPE, [L.Conv2D(4, 1), L.Dense(3, use_bias=False)]),
    "flatten_dense": (SHAPE, [L.Conv2D(4, 2), L.Flatten(), L.Dense(3)]),
    "batchnorm": (SHAPE, [L.Conv2D(4, 1), L.BatchNormalization(epsilon=0.01)]),
    "batchnorm_no_center": (SHAPE, [L.BatchNormalization(center=False)]),
    "batchnorm_no_scale": (SHAPE, [L.Conv2D(4, 1), L.BatchNormalization(scale=False)]),
    "batchnorm_plain_2d": ((6,), [L.BatchNormalization(center=False, scale=False)]),
    "batchnorm_axis_h": (SHAPE, [L.BatchNormalization(axis=1)]),
    "relu": (SHAPE, [L.Conv2D(4, 1), L.ReLU()]),
    "relu_slope": (SHAPE, [L.ReLU(negative_slope=0.1)]),
    "relu6": (SHAPE, [L.ReLU(max_value=6.0)]),
    "relu_ceiling_slope": (SHAPE, [L.ReLU(max_value=2.5, negative_slope=0.2)]),
    "relu_threshold": (SHAPE, [L.ReLU(threshold=0.5)]),
    "relu_everything": (SHAPE, [L.ReLU(max_value=3.0, negative_slope=0.3, threshold=0.5)]),
    "leaky_relu": (SHAPE, [L.LeakyReLU(negative_slope=0.25)]),
    "elu": (SHAPE, [L.ELU()]),
    "elu_alpha": (SHAPE, [L.Conv2D(4, 1), L.ELU(alpha=0.5)]),
    "prelu_channels": (SHAPE, [L.Conv2D(4, 1), L.PReLU(shared_axes=[1, 2])]),
    "prelu_everywhere": (SHAPE, [L.Conv2D(4, 1), L.PReLU()]),
    "prelu_shared": ((6,), [L.PReLU(shared_axes=[1])]),
    "softmax_channels": (SHAPE, [L.Conv2D(4, 1), L.Softmax()]),
    "softmax_height": (SHAPE, [L.Conv2D(4, 1), L.Softmax(axis=1)]),
    "softmax_3d": ((4, 6), [L.Softmax(axis=1)]),
    "max_pool": (SHAPE, [L.MaxPooling2D((3, 2), strides=(2, 3))]),
    "max_pool_same": (SHAPE, [L.MaxPooling2D((2, 3), strides=(3, 2), padding="same")]),
    "subsample": (SHAPE, [L.MaxPooling2D(1, strides=(2, 3))]),
    "ave_pool": (SHAPE, [L.AveragePooling2D((2, 3), strides=(3, 1))]),
    "ave_pool_same": (SHAPE, [L.Conv2D(4, 1), L.AveragePooling2D((3, 2), strides=(2, 3),
                                                                 padding="same")]),
    "pool_channels_first": ((5, 7, 9), [L.AveragePooling2D(2, padding="same",
                                                           data_format="channels_first")]),
    "global_ave": (SHAPE, [L.Conv2D(4, 1), L.GlobalAveragePooling2D(keepdims=True)]),
    "global_max": (SHAPE, [L.GlobalMaxPooling2D(keepdims=True)]),
    "global_ave_flat": (SHAPE, [L.GlobalAveragePooling2D()]),
    "global_max_flat_channels_first": ((5, 7, 9), [L.GlobalMaxPooling2D(
        data_format="channels_first")]),
    "zero_padding": (SHAPE, [L.Conv2D(4, 1), L.ZeroPadding2D(((1, 2), (3, 0)))]),
    "zero_padding_keras_layout": (SHAPE, [L.ZeroPadding2D(((2, 0), (1, 3)))]),
    "cropping": (SHAPE, [L.Conv2D(4, 1), L.Cropping2D(((1, 2), (0, 3)))]),
    "cropping_channels_first": ((5, 7, 9), [L.Cropping2D(((2, 1), (3, 0)),
                                                          data_format="channels_first")]),
    "upsampling2d": (SHAPE, [L.Conv2D(4, 1), L.UpSampling2D((2, 3))]),
    "upsampling2d_keras_layout": (SHAPE, [L.UpSampling2D((3, 1))]),
    "upsampling1d": ((4, 6), [L.UpSampling1D(3)]),
    "flatten": (SHAPE, [L.Flatten()]),
    "flatten_channels_first": ((5, 7, 9), [L.Flatten(data_format="channels_first")]),
    "reshape": (SHAPE, [L.Conv2D(4, 1), L.Reshape((9, 7, 4))]),
    "reshape_3d": ((4, 6), [L.Reshape((3, 8))]),
    "permute_to_nchw": (SHAPE, [L.Conv2D(4, 1), L.Permute((3, 1, 2))]),
    "permute_3d": ((4, 6), [L.Permute((2, 1))]),
    "permute_other": (SHAPE, [L.Conv2D(4, 1), L.Permute((2, 1, 3))]),
    "caffe_order_reshape": (SHAPE, [L.Conv2D(4, 1), L.Permute((3, 1, 2)),
                                    L.Reshape((2, 14, 9)), L.Permute((2, 3, 1)),
                                    L.Conv2D(3, 1)]),
    "identities": (SHAPE, [L.Conv2D(4, 1), L.Identity(), L.Dropout(0.5),
                           L.SpatialDropout2D(0.3), L.GaussianNoise(1.0)]),
}
ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softplus", "softsign", "exponential",
               "elu", "selu", "relu6", "silu", "hard_sigmoid", "gelu", "softmax"]


@pytest.mark.parametrize("case", list(CASES))
def test_lowering_matches_keras(case, tmp_path):
    shape, layers = CASES[case]
    assert write_and_compare(chain(shape, *layers), tmp_path) <= TOLERANCE


@pytest.mark.parametrize("function", ACTIVATIONS)
def test_activation_matches_keras(function, tmp_path):
    # after a 1x1 convolution, so that the value is stored channels-first
    model = chain(SHAPE, L.Conv2D(4, 1), L.Activation(function))
    assert write_and_compare(model, tmp_path, scale=2.0) <= TOLERANCE


def test_softplus_is_stable_for_large_inputs(tmp_path):
    # log(1 + e^x) computed naively overflows to inf from x ~ 89
    assert write_and_compare(chain((6,), L.Activation("softplus")), tmp_path,
                             scale=200.0) <= TOLERANCE


def two_branches(merge, second=None):
    """A merge of a channels-first value (a conv's) with the input itself (Keras layout)."""
    x = keras.Input(SHAPE, name="data")
    a = L.Conv2D(5, 1, name="conv_a")(x)
    b = second(x) if second else x
    c = L.Conv2D(5, (1, 1), name="conv_c")(x)
    return randomise(keras.Model(x, merge([a, b, c])))


@pytest.mark.parametrize("merge", [
    L.Add(), L.Multiply(), L.Maximum(), L.Minimum(), L.Average(), L.Concatenate(),
    L.Concatenate(axis=1), L.Concatenate(axis=2)], ids=lambda layer: layer.__class__.__name__)
def test_merge_of_mixed_layouts_matches_keras(merge, tmp_path):
    assert write_and_compare(two_branches(merge), tmp_path) <= TOLERANCE


def test_subtract_and_2d_concatenate(tmp_path):
    x = keras.Input((6,), name="data")
    a, b = L.Dense(4, name="a")(x), L.Dense(4, name="b")(x)
    model = randomise(keras.Model(x, [L.Subtract()([a, b]), L.Concatenate()([a, x, b])]))
    assert write_and_compare(model, tmp_path) <= TOLERANCE


def transposes(path) -> int:
    import onnx
    return sum(node.op_type == "Transpose" for node in onnx.load(path).graph.node)


def test_channels_first_layers_run_without_transposes(tmp_path):
    """A ResNet-like block and a Caffe-order reshape: one transpose in, one out."""
    x = keras.Input(SHAPE, name="data")
    y = L.ZeroPadding2D(((1, 0), (0, 2)))(x)
    y = L.Conv2D(8, 3, strides=(2, 1))(y)
    y = L.BatchNormalization()(y)
    y = L.ReLU()(y)
    shortcut = y
    y = L.Conv2D(8, 1)(y)
    y = L.PReLU(shared_axes=[1, 2])(y)
    y = L.Add()([y, shortcut])
    y = L.MaxPooling2D(2, strides=(1, 2))(y)
    y = L.Concatenate()([y, L.Conv2D(2, 1)(y)])
    y = L.Permute((3, 1, 2))(y)  # the converters' Caffe-order reshape
    y = L.Reshape((5, 4, 4))(y)
    y = L.Permute((2, 3, 1))(y)
    y = L.Conv2D(3, 1)(y)
    y = L.GlobalAveragePooling2D(keepdims=True)(y)
    y = L.Softmax()(y)
    model = randomise(keras.Model(x, y))
    assert write_and_compare(model, tmp_path) <= TOLERANCE
    assert transposes(tmp_path / "model.onnx") == 2


def test_file_names_and_batch(tmp_path):
    """Inputs and outputs carry the model's canonical names and a symbolic batch; an
    input returned as an output and a value read twice are fine."""
    import onnx
    x = keras.Input((6,), name="image")
    second = keras.Input((7, 9, 5), name="map")
    dense = L.Dense(3, name="scores")(x)
    conv = L.Conv2D(2, 1, name="conv")(second)
    model = randomise(keras.Model([x, second], [conv, x, dense, L.Flatten(name="flat")(conv)]))
    assert write_and_compare(model, tmp_path, batches=(2, 5)) <= TOLERANCE
    graph = onnx.load(tmp_path / "model.onnx").graph
    assert [value.name for value in graph.input] == ["image", "map"]
    assert [value.name for value in graph.output] == ["conv", "image", "scores", "flat"]
    for value in [*graph.input, *graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "N"
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim[1:]] == [7, 9, 2]


def test_write_artifact_end_to_end(tmp_path):
    model = chain(SHAPE, L.Conv2D(6, (3, 2), strides=(2, 1)), L.ReLU(), L.Flatten(),
                  L.Dense(4, name="out"))
    target = tmp_path / "net.onnx"
    checks = write_artifact(model, str(target), OnnxFormat())
    assert [check.name for check in checks] == ["out"]
    assert all(check.passed and check.relative_error < TOLERANCE for check in checks)
    assert os.listdir(tmp_path) == ["net.onnx"]


def test_a_broken_lowering_fails_the_check(tmp_path, monkeypatch):
    """A Conv lowering that drops the bias writes a file that runs but is wrong: the
    check names the output and nothing is left behind."""
    from caffe2keras.formats.onnx_ops import builtin_conv
    model = chain(SHAPE, L.Conv2D(4, (2, 3), name="conv"), L.Flatten(name="out"))
    monkeypatch.setattr(builtin_conv, "_bias", lambda g, layer: "")
    with pytest.raises(ExportCheckError, match="output 'out' differs"):
        write_artifact(model, str(tmp_path / "net.onnx"), OnnxFormat())
    assert os.listdir(tmp_path) == []


class Doubling(L.Layer):
    def call(self, x):
        return x * 2


def test_layer_without_lowering_is_refused_before_writing(tmp_path):
    model = chain(SHAPE, L.Conv2D(4, 1, name="conv"), Doubling(name="twice"),
                  L.UpSampling2D(2, interpolation="bilinear", name="smooth"),
                  L.Activation("log_softmax", name="logp"))
    with pytest.raises(UnsupportedInFormatError) as refused:
        write_artifact(model, str(tmp_path / "net.onnx"), OnnxFormat())
    assert refused.value.layers == [
        ("twice", "Doubling", "no ONNX lowering"),
        ("smooth", "UpSampling2D", "bilinear interpolation has no ONNX lowering (only nearest)"),
        ("logp", "Activation", "activation 'log_softmax' has no ONNX lowering")]
    assert os.listdir(tmp_path) == []


def test_merging_different_ranks_is_refused():
    x = keras.Input((4, 5), name="data")
    model = keras.Model(x, L.Add(name="sum")([x, L.Flatten()(x)[:, :5]]))
    assert ("sum", "Add", "merging inputs of different ranks [2, 3] has no ONNX lowering") in \
        OnnxFormat().unsupported(model)


def test_softmax_over_several_axes_is_refused():
    model = chain(SHAPE, L.Softmax(axis=(1, 2), name="spatial_softmax"))
    assert OnnxFormat().unsupported(model) == [
        ("spatial_softmax", "Softmax", "softmax over several axes (1, 2) has no ONNX lowering")]


def test_format_says_what_it_expresses():
    fmt = OnnxFormat()
    assert fmt.description == "ONNX (opset 17)"
    assert fmt.expresses("Conv2D") is None and fmt.expresses("UpSampling1D") is None
    assert fmt.expresses("Doubling") == "no ONNX lowering"


def test_models_beyond_protobuf_limit_are_refused(tmp_path, monkeypatch):
    from caffe2keras.formats.onnx_ops import graph
    model = chain(SHAPE, L.Conv2D(4, 3), L.Flatten(), L.Dense(50))
    weights = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    path = tmp_path / "model.onnx"
    monkeypatch.setattr(graph, "PROTOBUF_LIMIT", weights - 1)  # the weights alone
    with pytest.raises(OutputError, match="at most 2 GiB"):
        OnnxFormat().write(model, str(path))
    monkeypatch.setattr(graph, "PROTOBUF_LIMIT", weights + 16)  # the weights and the graph
    with pytest.raises(OutputError, match="at most 2 GiB"):
        OnnxFormat().write(model, str(path))
    assert not path.exists()


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_missing_package_says_how_to_install(module, tmp_path, monkeypatch):
    model = chain((6,), L.Dense(2))
    path = str(tmp_path / "model.onnx")
    OnnxFormat().write(model, path)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(OutputError, match=r"pip install 'caffe2keras\[export\]'"):
        OnnxFormat().write(model, path) if module == "onnx" else OnnxFormat().load(path)


def test_registering_twice_raises(monkeypatch):
    from caffe2keras.formats.onnx_ops import find_lowering, lowering, registry
    monkeypatch.setattr(registry, "_LOWERINGS", dict(registry._LOWERINGS))
    with pytest.raises(ValueError, match="already registered"):
        lowering(L.Conv2D)(lambda layer, g, inputs, outputs: None)

    @lowering("Doubling")
    def double(layer, g, inputs, outputs):
        pass

    assert find_lowering(Doubling()) is double  # by class name
    with pytest.raises(ValueError, match="already registered"):
        lowering("Doubling")(double)


def test_importing_the_format_loads_no_runtime():
    code = ("import sys, caffe2keras.formats.onnx_file; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_unused_values_are_not_written(tmp_path, monkeypatch):
    """A lowering that makes a constant and a node it does not use leaves neither in the
    file."""
    import onnx
    from caffe2keras.formats.onnx_ops import builtin_conv, registry
    monkeypatch.setattr(registry, "_LOWERINGS", dict(registry._LOWERINGS))

    def wasteful_dense(layer, g, inputs, outputs):
        g.op("Neg", g.const(np.arange(100, dtype=np.float32), name="unused"))
        builtin_conv.dense(layer, g, inputs, outputs)

    registry._LOWERINGS[L.Dense] = wasteful_dense
    assert write_and_compare(chain((6,), L.Dense(3)), tmp_path) <= TOLERANCE
    graph = onnx.load(tmp_path / "model.onnx").graph
    assert "unused" not in {tensor.name for tensor in graph.initializer}
    assert [node.op_type for node in graph.node] == ["Gemm", "Identity"]
