"""ONNX lowerings of caffe2keras' custom layers (caffe2keras/formats/onnx_ops/custom_*.py).

Each layer sits in a small Keras model with asymmetric shapes (N != C != H != W), is written
with ``write_artifact`` (which runs it in onnxruntime on its probe and compares), then run
again at batch sizes 1 and 3 and compared with Keras: discrete outputs (indices, labels,
0/1) exactly, the rest within float32 round-off. Layers that run on 4-D values are checked
both on a value in the Keras layout (straight from an Input) and on one held channels-first
(after a layer that leaves it so). The hard layers are also run by OpenVINO from the file.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from caffe2keras.formats import get_format
from caffe2keras.formats.check import keras_outputs
from caffe2keras.formats.write import write_artifact
from caffe2keras.layers import (MVN, AbsVal, ArgMax, Axpy, Bias, BiasByInput, CaffePooling2D,
                                CaffePreprocess, Crop, DetectionOutput, Exp, GroupedConv2DTranspose,
                                Interp, Log, LRN, Normalize, Power, PriorBox, Reduction, Scale,
                                ScaleByInput, Slice, Threshold, Tile, WeightedSum)

from test_formats_golden import require_runtime

ROUND_OFF = 1e-5  # of the largest |value|: float32 arithmetic in another order
LAYOUTS = ["keras", "nchw"]


@pytest.fixture(autouse=True)
def _onnxruntime():
    require_runtime("onnx")


def channels_first(x, layout: str):
    """``x`` itself; for "nchw" through a 1x1 max pooling (the identity) whose ONNX value is
    channels-first, so the next layer's lowering reads that layout."""
    if layout == "keras":
        return x
    return CaffePooling2D(pool="max", kernel=1, stride=1, output_size=tuple(x.shape[1:3]))(x)


def normal_feeds(scale=50.0, seed=7):
    def feeds(model, batch):
        rng = np.random.default_rng(seed + batch)
        return {t.name: (rng.standard_normal((batch, *t.shape[1:])) * scale).astype(np.float32)
                for t in model.inputs}
    return feeds


def assert_same(want: np.ndarray, got: np.ndarray, exact: bool, label: str):
    assert got.shape == want.shape, f"{label}: shape {got.shape}, Keras {want.shape}"
    if exact:
        np.testing.assert_array_equal(got, want, err_msg=label)
        return
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    error = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert error <= ROUND_OFF * max(scale, 1e-30), f"{label}: error {error:g} of {scale:g}"


def exported(model, tmp_path) -> str:
    """Write ``model`` as ONNX through the format interface (checked in onnxruntime)."""
    path = str(tmp_path / f"{model.name}.onnx")
    checks = write_artifact(model, path, get_format("onnx"))
    assert checks and all(check.passed for check in checks)
    return path


def assert_matches(model, tmp_path, feeds=normal_feeds(), exact=False) -> str:
    """The ONNX file of ``model`` gives Keras' outputs at batch sizes 1 and 3."""
    path = exported(model, tmp_path)
    runner = get_format("onnx").load(path)
    for batch in (1, 3):
        inputs = feeds(model, batch)
        want, got = keras_outputs(model, inputs), runner.run(inputs)
        for name in want:
            assert_same(want[name], got[name], exact, f"{name} at batch {batch}")
    return path


def single(layer, shape, layout="keras", weights=None):
    x = keras.Input(shape)
    y = layer(channels_first(x, layout))
    if weights is not None:
        layer.set_weights(weights)
    return keras.Model(x, y)


def rng_weights(layer_weights_shapes, seed=3):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2, 2, shape).astype(np.float32) for shape in layer_weights_shapes]


# --- affine ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config, shapes", [
    (dict(axis=-1, bias_term=True), [(4,), (4,)]),  # per channel
    (dict(axes=(3, 1), bias_term=True), [(4, 5), (4, 5)]),  # Caffe's (C, H)
    (dict(axis=1, num_axes=3), [(5, 6, 4)]),  # Caffe's (C, H, W)
    (dict(axis=2, num_axes=0), [()]),  # a scalar
])
def test_scale(tmp_path, layout, config, shapes):
    model = single(Scale(**config), (5, 6, 4), layout, rng_weights(shapes))
    assert_matches(model, tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bias(tmp_path, layout):
    model = single(Bias(axes=(3, 1)), (5, 6, 4), layout, rng_weights([(4, 5)]))
    assert_matches(model, tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("factor_shape, axes", [((4,), (0, 3)), ((5, 6, 4), (0, 1, 2, 3))])
def test_scale_and_bias_by_input(tmp_path, layout, factor_shape, axes):
    x, s = keras.Input((5, 6, 4)), keras.Input(factor_shape)
    factor = channels_first(s, layout) if len(factor_shape) == 3 else s
    scaled = ScaleByInput(axes=axes)([channels_first(x, layout), factor])
    shifted = BiasByInput(axes=axes)([scaled, s])  # s in the Keras layout, scaled maybe not
    assert_matches(keras.Model([x, s], [scaled, shifted]), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scale_by_input_with_bias(tmp_path, layout):
    """A learned bias needs a factor without the batch axis (a Caffe blob of shape (C, H));
    Keras' predict cannot feed one, so the model is called and the file run directly."""
    import onnxruntime

    from caffe2keras.formats.onnx_file import lower_model
    x, s = keras.Input((5, 6, 4)), keras.Input(batch_shape=(4, 5))
    layer = ScaleByInput(axes=(3, 1), bias_term=True)
    model = keras.Model([x, s], layer([channels_first(x, layout), s]))
    layer.set_weights(rng_weights([(4, 5)]))
    path = str(tmp_path / "scale.onnx")
    lower_model(model).write(path, "scale")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for batch in (1, 3):
        feeds = [rng.standard_normal((batch, 5, 6, 4)).astype(np.float32),
                 rng.standard_normal((4, 5)).astype(np.float32)]
        want = keras.ops.convert_to_numpy(model(feeds))
        got = session.run(None, dict(zip([i.name for i in session.get_inputs()], feeds)))[0]
        assert_same(want, got, False, f"batch {batch}")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("factor_shape", [(4,), (1, 1, 4)])
def test_axpy(tmp_path, layout, factor_shape):
    a, x, y = keras.Input(factor_shape), keras.Input((5, 6, 4)), keras.Input((5, 6, 4))
    a_in = channels_first(a, layout) if len(factor_shape) == 3 else a
    out = Axpy()([a_in, channels_first(x, layout), y])
    assert_matches(keras.Model([a, x, y], out), tmp_path)


# --- element-wise ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("layer", [
    lambda: Power(power=2.0, scale=0.5, shift=1.5),
    lambda: Power(power=3.0, scale=-0.02),
    lambda: Power(power=1.5, scale=0.0, shift=2.0),  # Caffe ignores x: shift ^ power
    lambda: Power(power=0.0, scale=3.0),  # 1
    lambda: Exp(base=-1.0, scale=0.05, shift=0.1),
    lambda: Exp(base=2.0, scale=0.02, shift=-1.0),
    AbsVal,
], ids=["power", "cube", "constant", "one", "exp", "exp2", "absval"])
def test_elementwise(tmp_path, layout, layer):
    assert_matches(single(layer(), (5, 6, 4), layout), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_log_of_absval(tmp_path, layout):
    x = keras.Input((5, 6, 4))
    positive = AbsVal()(channels_first(x, layout))
    out = [Log(base=10.0, scale=2.0, shift=1.0)(positive), Log()(positive)]
    assert_matches(keras.Model(x, out), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_threshold(tmp_path, layout):
    def steps(model, batch):  # many values exactly at the threshold
        rng = np.random.default_rng(batch)
        values = rng.choice([-1.0, 0.25, 0.3, 0.5], (batch, 5, 6, 4))
        return {model.inputs[0].name: values.astype(np.float32)}
    model = single(Threshold(threshold=0.3), (5, 6, 4), layout)
    assert_matches(model, tmp_path, steps, exact=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_weighted_sum(tmp_path, layout):
    a, b, c = keras.Input((5, 6, 4)), keras.Input((5, 6, 4)), keras.Input((5, 6, 4))
    out = WeightedSum([1.0, -1.0, 0.3])([channels_first(a, layout), b, channels_first(c, layout)])
    assert_matches(keras.Model([a, b, c], out), tmp_path)


# --- normalisations -------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", [
    dict(local_size=5, alpha=0.01, beta=0.75, k=2.0),
    dict(local_size=3, alpha=0.02, beta=0.6, k=1.0),
    dict(local_size=3, alpha=0.05, beta=0.75, norm_region="within_channel"),
    dict(local_size=5, alpha=0.1, beta=0.5, k=3.0, norm_region="within_channel"),
])
def test_lrn(tmp_path, layout, config):
    assert_matches(single(LRN(**config), (5, 6, 7), layout), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("across_spatial", [True, False])
@pytest.mark.parametrize("channel_shared", [True, False])
def test_normalize(tmp_path, layout, across_spatial, channel_shared):
    layer = Normalize(across_spatial=across_spatial, channel_shared=channel_shared, eps=1e-10)
    weights = rng_weights([(1,) if channel_shared else (4,)])
    assert_matches(single(layer, (5, 6, 4), layout, weights), tmp_path)


def test_normalize_2d(tmp_path):
    layer = Normalize(across_spatial=False, channel_shared=False)
    assert_matches(single(layer, (6,), weights=rng_weights([(6,)])), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", [
    dict(axes=(1, 2)), dict(axes=(1, 2, 3), eps=1e-3), dict(axes=(1, 2), normalize_variance=False),
])
def test_mvn(tmp_path, layout, config):
    assert_matches(single(MVN(**config), (5, 6, 4), layout), tmp_path)


def test_mvn_of_single_values(tmp_path):
    assert_matches(single(MVN(axes=()), (6,)), tmp_path)


# --- pooling and resizing -------------------------------------------------------------------

def caffe_output(length, kernel, stride, pad, ceil=True):
    """Caffe's pooled size along one axis."""
    rounding = math.ceil if ceil else math.floor
    out = rounding((length + 2 * pad - kernel) / stride) + 1
    if pad and (out - 1) * stride >= length + pad:
        out -= 1
    return out


POOL_SHAPES = [  # (input h, w), kernel, stride, pad, ceil
    ((7, 10), (3, 2), (2, 3), (1, 0), True),  # ceil overhang, pad_h != pad_w
    ((8, 11), (3, 3), (2, 2), (0, 0), False),  # floor: the last row and column never read
    ((6, 10), (2, 4), (1, 3), (1, 1), True),
]
# ceil windows starting past the image: Caffe's MAX gives -FLT_MAX there (its AVE 0 / 0, a
# NaN no comparison accepts, so MAX only)
EMPTY_WINDOWS = ((5, 7), (1, 1), (3, 3), (0, 0), True)
POOLS = [(pool, *shape) for pool in ("max", "ave") for shape in POOL_SHAPES]
POOLS.append(("max", *EMPTY_WINDOWS))


def caffe_pooling(pool, size, kernel, stride, pad, ceil):
    out = tuple(caffe_output(*args, ceil) for args in zip(size, kernel, stride, pad))
    return CaffePooling2D(pool=pool, kernel=kernel, stride=stride, pad=pad, output_size=out)


def pooling_model(pool, shape, layout):
    return single(caffe_pooling(pool, *shape), (*shape[0], 3), layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pool, size, kernel, stride, pad, ceil", POOLS)
def test_caffe_pooling(tmp_path, layout, pool, size, kernel, stride, pad, ceil):
    assert_matches(pooling_model(pool, (size, kernel, stride, pad, ceil), layout), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", [
    dict(height=11, width=17),  # up
    dict(height=3, width=4),  # down
    dict(height=1, width=9, pad_beg=-1, pad_end=-1),  # one row, cropped first
    dict(height=4, width=7, pad_beg=-1, pad_end=0),  # the cropped size: a copy
])
def test_interp(tmp_path, layout, config):
    assert_matches(single(Interp(**config), (5, 8, 3), layout), tmp_path)


def test_interp_with_a_reference_input(tmp_path):
    x, reference = keras.Input((5, 8, 3)), keras.Input((9, 13, 2))
    out = Interp(height=9, width=13)([channels_first(x, "nchw"), reference])
    assert_matches(keras.Model([x, reference], out), tmp_path)


# --- shape layers ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("axis, points", [(-1, [1, 4]), (1, [2]), (2, [1, 3, 4])])
def test_slice(tmp_path, layout, axis, points):
    assert_matches(single(Slice(axis=axis, points=points), (5, 6, 7), layout), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_crop(tmp_path, layout):
    x, reference = keras.Input((7, 9, 5)), keras.Input((4, 5, 5))
    out = Crop(axes=[1, 2, 3], offsets=[2, 1, 1], sizes=[4, 5, 3])(
        [channels_first(x, layout), reference])
    assert_matches(keras.Model([x, reference], out), tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("axis, tiles", [(-1, 3), (1, 2), (2, 4)])
def test_tile(tmp_path, layout, axis, tiles):
    assert_matches(single(Tile(axis=axis, tiles=tiles), (5, 6, 3), layout), tmp_path)


def tied_feeds(levels=3, seed=11):
    """Integers 0..levels-1: most values tie with others."""
    def feeds(model, batch):
        rng = np.random.default_rng(seed + batch)
        return {t.name: rng.integers(0, levels, (batch, *t.shape[1:])).astype(np.float32)
                for t in model.inputs}
    return feeds


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", [
    dict(axis=-1), dict(axis=-1, top_k=3), dict(axis=1, top_k=2, out_max_val=True),
    dict(axis=2, top_k=4),
])
def test_argmax_along_an_axis(tmp_path, layout, config):
    assert_matches(single(ArgMax(**config), (5, 6, 4), layout), tmp_path, tied_feeds(),
                   exact=True)


@pytest.mark.parametrize("config", [dict(top_k=1), dict(top_k=5, out_max_val=True)])
def test_argmax_of_flattened_items(tmp_path, config):
    assert_matches(single(ArgMax(axis=None, **config), (3, 4, 2)), tmp_path, tied_feeds(),
                   exact=True)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("operation, axes, coeff", [
    ("SUM", [3], 1.0), ("ASUM", [1, 2, 3], 0.5), ("SUMSQ", [2, 3], -2.0), ("MEAN", [1], 0.7),
    ("MEAN", [1, 2], 1.0),
])
def test_reduction(tmp_path, layout, operation, axes, coeff):
    layer = Reduction(operation=operation, axes=axes, coeff=coeff)
    assert_matches(single(layer, (5, 6, 4), layout), tmp_path)


def test_reduction_of_5d(tmp_path):
    model = single(Reduction(operation="SUM", axes=[4]), (3, 4, 5, 6))
    assert_matches(model, tmp_path)


# --- deconvolution and preprocessing ------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("config", [
    dict(filters=6, kernel_size=(3, 2), strides=(2, 3), dilation_rate=(1, 2), groups=2),
    dict(filters=4, kernel_size=(2, 4), strides=(3, 1), use_bias=False),
    dict(filters=4, kernel_size=3, strides=2, groups=4),  # depthwise, FCN's upsampling
])
def test_grouped_conv_transpose(tmp_path, layout, config):
    layer = GroupedConv2DTranspose(**config)
    model = single(layer, (5, 7, 4), layout)
    layer.set_weights(rng_weights([w.shape for w in layer.weights]))
    assert_matches(model, tmp_path)


@pytest.mark.parametrize("config, mean_shape", [
    (dict(channel_swap=[2, 1, 0], raw_scale=255.0, scale=0.017), (3,)),
    (dict(channel_swap=[1, 2, 0]), (5, 6, 3)),
    (dict(raw_scale=2.0), None),
])
def test_caffe_preprocess(tmp_path, config, mean_shape):
    layer = CaffePreprocess(mean_shape=mean_shape, **config)
    model = single(layer, (5, 6, 3))
    if mean_shape is not None:
        layer.set_weights(rng_weights([mean_shape]))
    assert_matches(model, tmp_path, normal_feeds(scale=1.0))


# --- detection ------------------------------------------------------------------------------

FEATURE, IMAGE = (4, 5), (30, 40)
PRIORS = FEATURE[0] * FEATURE[1] * 4  # per cell: min size, max size, aspect ratios 2 and 1/2
CLASSES = 4


def priors_of(feature, image):
    return PriorBox(min_sizes=[14.0], max_sizes=[22.0], aspect_ratios=[1.0, 2.0, 0.5], clip=True,
                    variances=[0.1, 0.1, 0.2, 0.2])([feature, image])


def test_prior_box(tmp_path):
    feature, image = keras.Input((*FEATURE, 2)), keras.Input((*IMAGE, 3))
    model = keras.Model([feature, image], priors_of(channels_first(feature, "nchw"), image))
    assert_matches(model, tmp_path, exact=True)


def ssd_head(share_location=True, classes=CLASSES, **config):
    """PriorBox priors, locations through tanh (bounded, so the writer's random probe gives
    finite boxes) and the class scores as fed: DetectionOutput([loc, conf, priors])."""
    feature = keras.Input((*FEATURE, 2), name="feature")
    image = keras.Input((*IMAGE, 3), name="image")
    loc_classes = 1 if share_location else classes
    loc = keras.Input((PRIORS * loc_classes * 4,), name="loc")
    conf = keras.Input((PRIORS * classes,), name="conf")
    detections = DetectionOutput(num_classes=classes, share_location=share_location, **config)(
        [keras.layers.Activation("tanh")(loc), conf, priors_of(feature, image)])
    return keras.Model([feature, image, loc, conf], detections)


def detection_feeds(model, batch, seed=0):
    """Scores from a few levels (ties everywhere); item 1 scores nothing above 0.1: an image
    without detections."""
    rng = np.random.default_rng(seed + batch)
    feeds = {t.name: rng.standard_normal((batch, *t.shape[1:])).astype(np.float32)
             for t in model.inputs}
    conf = rng.choice([0.05, 0.3, 0.6, 0.6, 0.9], feeds["conf"].shape).astype(np.float32)
    if batch > 1:
        conf[1] = 0.05
    feeds["conf"] = conf
    return feeds


# name: (DetectionOutput config, what the Keras output shows for items 0 and 1: rows "full"
# to capacity, "partial" (then padding) or "empty")
DETECTIONS = {
    "topk_keep_top_k": (dict(code_type="center_size", confidence_threshold=0.1,
                             nms_threshold=0.45, top_k=25, keep_top_k=30), ("full", "empty")),
    "eta_per_class_boxes": (dict(share_location=False, code_type="center_size",
                                 confidence_threshold=0.1, nms_threshold=0.7, eta=0.8),
                            ("partial", "empty")),
    "corner_no_background": (dict(share_location=False, background_label_id=-1,
                                  variance_encoded_in_target=True, confidence_threshold=0.1,
                                  nms_threshold=0.3, keep_top_k=40), ("full", "empty")),
    "corner_size_all_scores": (dict(code_type="corner_size", nms_threshold=0.5, top_k=12),
                               ("partial", "partial")),
    "keep_none": (dict(confidence_threshold=0.1, keep_top_k=0), ("empty", "empty")),
}


def assert_detections_match(want, got, label):
    """Image index, label and score exactly (scores are copied, not computed); boxes within
    round-off."""
    assert got.shape == want.shape, label
    np.testing.assert_array_equal(got[..., :3], want[..., :3], err_msg=label)
    assert_same(want[..., 3:], got[..., 3:], False, label)


def assert_detections_exercised(detections, expected):
    """The Keras output shows what the scenario is for: rows filled to capacity or not, an
    image without detections, tied scores among the kept rows of a label."""
    found = detections[..., 1] >= 0
    for item, kind in enumerate(expected):
        assert {"full": found[item].all(), "empty": not found[item].any(),
                "partial": found[item].any() and not found[item].all()}[kind], (item, kind)
    rows = detections[0][found[0]]
    ties = [len(np.unique(s)) < len(s) for s in (rows[rows[:, 1] == c, 2] for c in range(CLASSES))]
    assert any(ties) or not found[0].any(), "no tie among the kept scores of a label"


@pytest.mark.parametrize("name", DETECTIONS)
def test_detection_output(tmp_path, name):
    config, expected = DETECTIONS[name]
    model = ssd_head(**config)
    path = exported(model, tmp_path)
    runner = get_format("onnx").load(path)
    for batch in (1, 3):
        feeds = detection_feeds(model, batch)
        want = keras_outputs(model, feeds)[model.output_names[0]]
        if batch == 3:
            assert_detections_exercised(want, expected)
        assert_detections_match(want, runner.run(feeds)[model.output_names[0]], f"batch {batch}")


def test_detection_output_of_the_background_class_only(tmp_path):
    """No class to detect: one padding row per image."""
    model = ssd_head(classes=1)
    assert_matches(model, tmp_path, detection_feeds, exact=True)
    padding = keras_outputs(model, detection_feeds(model, 3))[model.output_names[0]]
    np.testing.assert_array_equal(padding[:, 0, 0], [0, 1, 2])


def test_detection_output_nms_suppresses_and_eta_matters(tmp_path):
    """The scenarios above do suppress boxes, and eta < 1 changes which."""
    config = DETECTIONS["eta_per_class_boxes"][0]
    with_eta, without = ssd_head(**config), ssd_head(**{**config, "eta": 1.0})
    everything = ssd_head(**{**config, "eta": 1.0, "nms_threshold": 1.0})
    feeds = detection_feeds(with_eta, 3)
    counts = [int((keras_outputs(m, feeds)[m.output_names[0]][0, :, 1] >= 0).sum())
              for m in (with_eta, without, everything)]
    assert counts[0] != counts[1] and max(counts[:2]) < counts[2]


# --- OpenVINO reads the same files ----------------------------------------------------------

def openvino_outputs(path, feeds):
    """The ONNX file converted by OpenVINO's ONNX frontend and run at float32 (this CPU's
    default is bf16, which is the OpenVINO format's business, not the graph's)."""
    require_runtime("openvino")
    import openvino
    core = openvino.Core()
    compiled = core.compile_model(openvino.convert_model(path), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    results = compiled(feeds)
    return {output.get_any_name(): results[output] for output in compiled.outputs}


HARD_LAYERS = {
    "pooling_max": lambda: pooling_model("max", POOL_SHAPES[0], "nchw"),
    "pooling_ave": lambda: pooling_model("ave", POOL_SHAPES[2], "keras"),
    "pooling_empty_windows": lambda: pooling_model("max", EMPTY_WINDOWS, "keras"),
    "interp": lambda: single(Interp(height=11, width=17, pad_beg=-1), (5, 8, 3), "nchw"),
    "argmax": lambda: single(ArgMax(axis=-1, top_k=3), (5, 6, 4), "nchw"),
    "argmax_flat": lambda: single(ArgMax(axis=None, top_k=4, out_max_val=True), (3, 4, 2)),
}


@pytest.mark.parametrize("name", HARD_LAYERS)
def test_openvino_runs_the_hard_layers(tmp_path, name):
    model = HARD_LAYERS[name]()
    path = exported(model, tmp_path)
    feeds = (tied_feeds() if name.startswith("argmax") else normal_feeds())(model, 3)
    want, got = keras_outputs(model, feeds), openvino_outputs(path, feeds)
    for output in want:
        assert_same(want[output], got[output], name.startswith("argmax"), output)


@pytest.mark.parametrize("name", DETECTIONS)
def test_openvino_runs_detection_output(tmp_path, name):
    model = ssd_head(**DETECTIONS[name][0])
    path = exported(model, tmp_path)
    feeds = detection_feeds(model, 3)
    output = model.output_names[0]
    assert_detections_match(keras_outputs(model, feeds)[output],
                            openvino_outputs(path, feeds)[output], name)


# --- the registry ---------------------------------------------------------------------------

def test_every_custom_layer_has_a_lowering():
    import caffe2keras.layers
    from caffe2keras.formats.onnx_ops import registry
    assert set(caffe2keras.layers.__all__) <= registry.lowered_class_names()
