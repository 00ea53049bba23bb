"""Caffe's forward pass of a whole ``caffe2keras.ir.Net`` in numpy, layer by layer, with caffe_ref.

Use a net from ``caffe2keras.api.prepare(..., fuse_batchnorm=False)`` (or ``load_net`` +
``infer_shapes``): every layer keeps Caffe's type and blobs. Parameters are read here straight
from each layer's ``caffe_pb2.LayerParameter``, not through the package's geometry helpers, so
the reference does not share the converter's reading of the prototxt. Values are NCHW.

Also here, for the conversion tests: writing a net given as prototxt text with its blobs,
running a converted Keras model in Caffe's layout, and the comparison every test uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from google.protobuf import text_format

import caffe_ref as ref
from caffe2keras.proto import caffe_pb2

# --- the numpy forward pass ---------------------------------------------------------------------


def forward(net, inputs: dict[str, np.ndarray], extra=None) -> dict[str, np.ndarray]:
    """Run ``net`` on ``inputs`` (input name -> NCHW array); return value id -> array for the
    inputs and every top, in Caffe's layout. ``extra``: more layer types (type -> function of
    (layer, bottoms) returning the tops), e.g. a fork's (tests/fork_forward.py)."""
    values = {name: np.asarray(inputs[name], dtype=np.float32) for name in net.inputs}
    table = {**_LAYERS, **(extra or {})}
    for layer in net.layers:
        run = table.get(layer.type)
        if run is None:
            raise NotImplementedError(f"numpy_forward has no {layer.type} ({layer.name!r})")
        outputs = run(layer, [values[b] for b in layer.bottoms])
        if len(outputs) != len(layer.tops):
            raise AssertionError(f"{layer.name}: {len(outputs)} outputs for {len(layer.tops)} tops")
        values.update(zip(layer.tops, outputs))
    return values


def _conv_hw(p, name: str, default: int) -> tuple[int, int]:
    """A convolution parameter: ``<name>_h``/``<name>_w`` when set, else the repeated field
    (kernel_size, pad, stride) given once or per axis."""
    if p.HasField(f"{name}_h") or p.HasField(f"{name}_w"):
        return getattr(p, f"{name}_h"), getattr(p, f"{name}_w")
    values = list(getattr(p, "kernel_size" if name == "kernel" else name)) or [default]
    return values[0], values[-1]


def _pool_hw(p, name: str) -> tuple[int, int]:
    """A pooling parameter: ``<name>_h``/``<name>_w`` when set, else the square field."""
    if p.HasField(f"{name}_h") or p.HasField(f"{name}_w"):
        return getattr(p, f"{name}_h"), getattr(p, f"{name}_w")
    value = getattr(p, "kernel_size" if name == "kernel" else name)
    return value, value


def _convolution(layer, bottoms):
    p = layer.param.convolution_param
    assert p.axis == 1 and bottoms[0].ndim == 4, "numpy_forward: 2-D convolution only"
    dilation = list(p.dilation) or [1]
    bias = layer.blobs[1] if p.bias_term else None
    return [ref.convolution(bottoms[0], layer.blobs[0], bias,
                            stride=_conv_hw(p, "stride", 1), pad=_conv_hw(p, "pad", 0),
                            dilation=(dilation[0], dilation[-1]), group=p.group)]


def _pooling(layer, bottoms):
    p = layer.param.pooling_param
    floor = (p.HasField("ceil_mode") and not p.ceil_mode) or p.round_mode == p.FLOOR
    pool = {p.MAX: "max", p.AVE: "ave"}[p.pool]
    kernel = None if p.global_pooling else _pool_hw(p, "kernel")
    return [ref.pooling(bottoms[0], pool, kernel, _pool_hw(p, "stride"), _pool_hw(p, "pad"),
                        round_mode="floor" if floor else "ceil", global_pooling=p.global_pooling)]


def _inner_product(layer, bottoms):
    p = layer.param.inner_product_param
    bias = layer.blobs[1] if p.bias_term else None
    return [ref.inner_product(bottoms[0], layer.blobs[0], bias, axis=p.axis, transpose=p.transpose)]


def _lrn(layer, bottoms):
    p = layer.param.lrn_param
    region = "within_channel" if p.norm_region == p.WITHIN_CHANNEL else "across_channels"
    return [ref.lrn(bottoms[0], p.local_size, p.alpha, p.beta, p.k, region)]


def _batch_norm(layer, bottoms):
    p = layer.param.batch_norm_param
    assert not p.HasField("use_global_stats") or p.use_global_stats, "batch statistics"
    mean, var, factor = layer.blobs[:3]
    return [ref.batch_norm(bottoms[0], mean, var, factor, eps=p.eps)]


def _scale(layer, bottoms):
    p = layer.param.scale_param
    x = bottoms[0]
    if len(bottoms) == 2:
        beta = layer.blobs[0] if p.bias_term else None
        return [ref.scale(x, bottoms[1], beta, axis=p.axis, num_axes=bottoms[1].ndim)]
    beta = layer.blobs[1] if p.bias_term else None
    return [ref.scale(x, layer.blobs[0], beta, axis=p.axis, num_axes=p.num_axes)]


def _bias(layer, bottoms):
    p = layer.param.bias_param
    if len(bottoms) == 2:
        return [ref.bias(bottoms[0], bottoms[1], axis=p.axis, num_axes=bottoms[1].ndim)]
    return [ref.bias(bottoms[0], layer.blobs[0], axis=p.axis, num_axes=p.num_axes)]


def _eltwise(layer, bottoms):
    p = layer.param.eltwise_param
    op = {p.SUM: "sum", p.PROD: "prod", p.MAX: "max"}[p.operation]
    return [ref.eltwise(bottoms, op, list(p.coeff) or None)]


def _concat(layer, bottoms):
    p = layer.param.concat_param
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    return [ref.concat(bottoms, axis=axis)]


def _prelu(layer, bottoms):
    return [ref.prelu(bottoms[0], layer.blobs[0], layer.param.prelu_param.channel_shared)]


def _neuron(function, param_name=None, fields=()):
    def run(layer, bottoms):
        p = getattr(layer.param, param_name) if param_name else None
        return [function(bottoms[0], *(getattr(p, f) for f in fields))]
    return run


_LAYERS = {
    "Convolution": _convolution,
    "Pooling": _pooling,
    "InnerProduct": _inner_product,
    "LRN": _lrn,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Bias": _bias,
    "Eltwise": _eltwise,
    "Concat": _concat,
    "PReLU": _prelu,
    "ReLU": _neuron(ref.relu, "relu_param", ("negative_slope",)),
    "ELU": _neuron(ref.elu, "elu_param", ("alpha",)),
    "Sigmoid": _neuron(ref.sigmoid),
    "TanH": _neuron(ref.tanh),
    "AbsVal": _neuron(ref.absval),
    "BNLL": _neuron(ref.bnll),
    "Power": _neuron(ref.power, "power_param", ("power", "scale", "shift")),
    "Exp": _neuron(ref.exp, "exp_param", ("base", "scale", "shift")),
    "Log": _neuron(ref.log, "log_param", ("base", "scale", "shift")),
    "Threshold": _neuron(ref.threshold, "threshold_param", ("threshold",)),
    "Softmax": _neuron(ref.softmax, "softmax_param", ("axis",)),
    "Flatten": _neuron(ref.flatten, "flatten_param", ("axis", "end_axis")),
    "Dropout": lambda layer, bottoms: [bottoms[0]],  # Caffe's TEST phase: identity
    "Split": lambda layer, bottoms: [bottoms[0]] * len(layer.tops),
    "Silence": lambda layer, bottoms: [],
}


# --- writing test nets --------------------------------------------------------------------------


def _blob(array) -> caffe_pb2.BlobProto:
    array = np.asarray(array, dtype=np.float32)
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend(array.shape)
    proto.data.extend(array.ravel().tolist())
    return proto


def write_net(folder, text: str, blobs: dict[str, list[np.ndarray]] | None = None):
    """Write the prototxt ``text`` and, if ``blobs`` (layer name -> arrays) is given, a
    caffemodel: the same net with those blobs. Returns (prototxt path, caffemodel path or None)."""
    folder = Path(folder)
    prototxt = folder / "deploy.prototxt"
    prototxt.write_text(text)
    if blobs is None:
        return str(prototxt), None
    net = text_format.Parse(text, caffe_pb2.NetParameter())
    unknown = set(blobs) - {layer.name for layer in net.layer}
    assert not unknown, f"blobs for layers the net does not have: {unknown}"
    for layer in net.layer:
        for array in blobs.get(layer.name, []):
            layer.blobs.add().CopyFrom(_blob(array))
    caffemodel = folder / "weights.caffemodel"
    caffemodel.write_bytes(net.SerializeToString())
    return str(prototxt), str(caffemodel)


def normal(shape, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Seeded standard normal values (negatives included), float32."""
    return (shift + scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# --- running the Keras model in Caffe's layout and comparing ------------------------------------


def to_keras(array) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)) if array.ndim == 4 else array


def to_caffe(array) -> np.ndarray:
    array = np.asarray(array)
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


def keras_values(model, layer_names, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of the Keras layers named after the Caffe layers ``layer_names`` (Caffe
    names, '/' -> '_'), run on ``inputs`` (Caffe input name -> NCHW), in Caffe's layout."""
    import keras

    from caffe2keras import keras_layer_name

    names = list(layer_names)
    probe = keras.Model(model.inputs, [model.get_layer(keras_layer_name(n)).output for n in names])
    feeds = [to_keras(inputs[tensor.name]) if tensor.name in inputs else None
             for tensor in model.inputs]
    missing = [t.name for t, f in zip(model.inputs, feeds) if f is None]
    assert not missing, f"no input given for {missing}"
    results = probe.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    if len(names) == 1:
        results = [results]
    return {name: to_caffe(result) for name, result in zip(names, results)}


def assert_close(got, want, what: str = "", rtol: float = 1e-5):
    """Same shape, NaN where Caffe gives NaN, and max |err| <= rtol * max(1, max |want|)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, Caffe's {want.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaNs differ"
    finite = ~np.isnan(want)
    error = float(np.max(np.abs(got[finite].astype(np.float64) - want[finite]), initial=0.0))
    bound = rtol * max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
    assert error <= bound, f"{what}: max |err| {error:.3g} > {bound:.3g}"


# --- checking a conversion ----------------------------------------------------------------------

SKIPPED_TYPES = ("Input", "Split", "Silence")  # no Keras layer: inputs, or tops that are bottoms


def check_conversion(folder, text: str, blobs, inputs: dict[str, np.ndarray],
                     expected: dict[str, np.ndarray], absent=(), **convert_options):
    """Convert the net ``text`` (with ``blobs``, see ``write_net``) and check the contract
    per layer: every Caffe layer (but Input, Split, Silence and the names in ``absent``) has a
    Keras layer of its name, those in ``absent`` have none, and the output of the Keras layer
    named after each Caffe layer in ``expected`` equals Caffe's top (NCHW), shape included.
    Returns the model."""
    import caffe2keras
    from caffe2keras import keras_layer_name

    prototxt, caffemodel = write_net(folder, text, blobs)
    model = caffe2keras.convert(prototxt, caffemodel, **convert_options)
    keras_names = {layer.name for layer in model.layers}
    caffe_layers = text_format.Parse(text, caffe_pb2.NetParameter()).layer
    wanted = [layer.name for layer in caffe_layers
              if layer.type not in SKIPPED_TYPES and layer.name not in absent]
    missing = [name for name in wanted if keras_layer_name(name) not in keras_names]
    assert not missing, f"no Keras layer named after {missing}; the model has {sorted(keras_names)}"
    present = [name for name in absent if keras_layer_name(name) in keras_names]
    assert not present, f"Keras layers named after {present} should not exist"
    got = keras_values(model, expected, inputs)
    for name, want in expected.items():
        assert_close(got[name], want, name)
    return model
