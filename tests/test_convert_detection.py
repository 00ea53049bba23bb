"""SSD and fork layers (converters/detection.py, converters/resize.py) against caffe_ref.

ReLU6, Normalize, MVN, Upsample, Interp, Axpy, PriorBox and DetectionOutput, one parameter
variant at a time; the custom layers' configs, saving and loading; the errors for what does not
convert; verify's comparison of the padded DetectionOutput top. Interp and Axpy are not in the
Caffe build the golden fixtures come from, so caffe_ref is their only reference.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import caffe2keras
import caffe_ref as ref
from caffe2keras.errors import StructureError
from caffe2keras.layers import MVN, Axpy, DetectionOutput, Interp, Normalize, PriorBox
from caffe2keras.verify import compare_detections, compare_reshaped
from numpy_forward import check_conversion, keras_values, normal, write_net

N, C, H, W = 2, 5, 7, 9


def header(*inputs) -> str:
    text = 'name: "detection"\n'
    for name, shape in inputs:
        text += f'input: "{name}"\ninput_shape {{ {" ".join(f"dim: {d}" for d in shape)} }}\n'
    return text


def one_layer(type_: str, param: str, shape=(N, C, H, W), bottoms=("data",)) -> str:
    bottom = " ".join(f'bottom: "{b}"' for b in bottoms)
    return header(("data", shape)) + (
        f'layer {{ name: "out" type: "{type_}" {bottom} top: "out" {param} }}\n')


# --- ReLU6 --------------------------------------------------------------------------------------

RELU6_CASES = {
    "default": ("", {}),
    "slope_threshold": ("relu6_param { negative_slope: 0.1 threshold: 4 }",
                        dict(negative_slope=0.1, threshold=4.0)),
    "threshold_zero": ("relu6_param { threshold: 0 negative_slope: 0.2 }",
                       dict(negative_slope=0.2, threshold=0.0)),
}


@pytest.mark.parametrize("case", RELU6_CASES.values(), ids=RELU6_CASES.keys())
def test_relu6_matches_caffe(tmp_path, case):
    param, options = case
    x = normal((N, C, H, W), seed=1, scale=5.0)
    check_conversion(tmp_path, one_layer("ReLU6", param), None, {"data": x},
                     {"out": ref.relu6(x, **options)})


def test_relu6_negative_threshold_is_refused(tmp_path):
    prototxt, _ = write_net(tmp_path, one_layer("ReLU6", "relu6_param { threshold: -1 }"))
    with pytest.raises(StructureError, match="'out'.*threshold"):
        caffe2keras.convert(prototxt)


# --- Normalize ----------------------------------------------------------------------------------

NORMALIZE_CASES = {  # norm_param, across_spatial, channel_shared, eps
    "defaults": ("", True, True, 1e-10),
    "per_position": ("across_spatial: false channel_shared: false", False, False, 1e-10),
    "spatial_per_channel": ("channel_shared: false eps: 0.5", True, False, 0.5),
    "per_position_shared": ("across_spatial: false eps: 0.3", False, True, 0.3),
}


@pytest.mark.parametrize("shape", [(N, C, H, W), (N, C, H), (N, C)], ids=["4d", "3d", "2d"])
@pytest.mark.parametrize("case", NORMALIZE_CASES.values(), ids=NORMALIZE_CASES.keys())
def test_normalize_matches_caffe(tmp_path, case, shape):
    param, across, shared, eps = case
    # Caffe stores a shared scale as a 0-axis blob.
    scale = np.array(7.5, np.float32) if shared else normal((C,), seed=2, shift=10.0, scale=4.0)
    x = normal(shape, seed=3)
    want = ref.normalize(x, scale, across_spatial=across, channel_shared=shared, eps=eps)
    check_conversion(tmp_path, one_layer("Normalize", f"norm_param {{ {param} }}", shape),
                     {"out": [scale]}, {"data": x}, {"out": want})


def test_normalize_without_weights_uses_the_scale_filler(tmp_path):
    text = one_layer("Normalize", "norm_param { channel_shared: false "
                                  "scale_filler { type: 'constant' value: 20 } }")
    x = normal((N, C, H, W), seed=4)
    want = ref.normalize(x, np.full(C, 20.0), channel_shared=False)
    with pytest.warns(UserWarning):
        check_conversion(tmp_path, text, None, {"data": x}, {"out": want})


# --- MVN ----------------------------------------------------------------------------------------

MVN_CASES = {
    "defaults": ("", {}),
    "across_channels": ("across_channels: true", dict(across_channels=True)),
    "mean_only": ("normalize_variance: false", dict(normalize_variance=False)),
    "large_eps": ("eps: 0.5 across_channels: true", dict(eps=0.5, across_channels=True)),
}


@pytest.mark.parametrize("shape", [(N, C, H, W), (N, C, H), (N, C)], ids=["4d", "3d", "2d"])
@pytest.mark.parametrize("case", MVN_CASES.values(), ids=MVN_CASES.keys())
def test_mvn_matches_caffe(tmp_path, case, shape):
    param, options = case
    x = normal(shape, seed=5, shift=1.5, scale=2.0)
    check_conversion(tmp_path, one_layer("MVN", f"mvn_param {{ {param} }}", shape), None,
                     {"data": x}, {"out": ref.mvn(x, **options)})


# --- Upsample -----------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1, 2, 3])
def test_upsample_matches_caffe(tmp_path, scale):
    x = normal((N, C, H, W), seed=6)
    check_conversion(tmp_path, one_layer("Upsample", f"upsample_param {{ scale: {scale} }}"),
                     None, {"data": x}, {"out": ref.upsample(x, scale)})


def test_upsample_3d_matches_caffe(tmp_path):
    x = normal((N, C, W), seed=7)
    text = one_layer("Upsample", "upsample_param { scale: 3 dims_num: 3 }", (N, C, W))
    check_conversion(tmp_path, text, None, {"data": x}, {"out": ref.upsample(x, 3, dims_num=3)})


def test_upsample_dims_num_must_fit_the_input(tmp_path):
    text = one_layer("Upsample", "upsample_param { scale: 2 dims_num: 3 }")
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match="'out'.*dims_num 3"):
        caffe2keras.convert(prototxt)


# --- Interp (not in the golden Caffe build: caffe_ref only) -------------------------------------

INTERP_CASES = {  # interp_param, output height, width, pad_beg, pad_end
    "zoom": ("zoom_factor: 3", 19, 25, 0, 0),
    "shrink": ("shrink_factor: 2", 4, 5, 0, 0),
    "size_up": ("height: 11 width: 20", 11, 20, 0, 0),
    "size_down": ("height: 4 width: 6", 4, 6, 0, 0),
    "one_row": ("height: 1 width: 13", 1, 13, 0, 0),
    "crop_zoom": ("zoom_factor: 2 pad_beg: -1 pad_end: -2", 7, 11, -1, -2),
    "crop_only": ("height: 5 width: 7 pad_beg: -1 pad_end: -1", 5, 7, -1, -1),
    "shrink_zoom": ("shrink_factor: 2 zoom_factor: 3", 10, 13, 0, 0),
}


@pytest.mark.parametrize("case", INTERP_CASES.values(), ids=INTERP_CASES.keys())
def test_interp_matches_reference(tmp_path, case):
    param, height, width, pad_beg, pad_end = case
    x = normal((N, C, H, W), seed=8)
    want = ref.interp(x, height, width, pad_beg, pad_end)
    assert want.shape == (N, C, height, width)
    check_conversion(tmp_path, one_layer("Interp", f"interp_param {{ {param} }}"), None,
                     {"data": x}, {"out": want})


def test_interp_to_the_size_of_a_second_bottom(tmp_path):
    text = header(("data", (N, C, H, W)), ("like", (N, 3, 12, 16))) + (
        'layer { name: "out" type: "Interp" bottom: "data" bottom: "like" top: "out" }\n')
    x = normal((N, C, H, W), seed=9)
    check_conversion(tmp_path, text, None, {"data": x, "like": normal((N, 3, 12, 16), seed=10)},
                     {"out": ref.interp(x, 12, 16)})


# --- Axpy (not in the golden Caffe build: caffe_ref only) ---------------------------------------

@pytest.mark.parametrize("a_shape", [(N, C, 1, 1), (N, C)], ids=["nc11", "nc"])
def test_axpy_matches_reference(tmp_path, a_shape):
    text = header(("a", a_shape), ("x", (N, C, H, W)), ("y", (N, C, H, W))) + (
        'layer { name: "out" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "out" }\n')
    a, x, y = normal(a_shape, seed=11), normal((N, C, H, W), seed=12), normal((N, C, H, W), seed=13)
    check_conversion(tmp_path, text, None, {"a": a, "x": x, "y": y}, {"out": ref.axpy(a, x, y)})


# --- PriorBox -----------------------------------------------------------------------------------

FEATURE, IMAGE = (N, 3, 4, 6), (N, 3, 17, 23)

PRIOR_CASES = {  # prior_box_param, caffe_ref.prior_box options
    "min_only": ("min_size: 4", dict(min_sizes=[4])),
    "max_ratios_flip": ("min_size: 5 max_size: 9 aspect_ratio: 2 aspect_ratio: 3 clip: false "
                        "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2",
                        dict(min_sizes=[5], max_sizes=[9], aspect_ratios=[2, 3], clip=False,
                             variances=[0.1, 0.1, 0.2, 0.2])),
    "two_sizes_no_flip": ("min_size: 2.5 min_size: 7 max_size: 5 max_size: 11.5 "
                          "aspect_ratio: 2 flip: false step: 3.5 offset: 0.25",
                          dict(min_sizes=[2.5, 7], max_sizes=[5, 11.5], aspect_ratios=[2],
                               flip=False, step=(3.5, 3.5), offset=0.25)),
    "duplicate_ratios": ("min_size: 6 aspect_ratio: 0.5 aspect_ratio: 2 aspect_ratio: 0.5 "
                         "img_size: 32 variance: 0.3",
                         dict(min_sizes=[6], aspect_ratios=[0.5, 2, 0.5], img_size=(32, 32),
                              variances=[0.3])),
    "img_hw_step_hw": ("min_size: 3 aspect_ratio: 1.5 img_h: 24 img_w: 40 step_h: 6 step_w: 7 "
                       "clip: false", dict(min_sizes=[3], aspect_ratios=[1.5], img_size=(24, 40),
                                           step=(6, 7), clip=False)),
}


def prior_net(param: str) -> str:
    return header(("feature", FEATURE), ("data", IMAGE)) + (
        'layer { name: "priors" type: "PriorBox" bottom: "feature" bottom: "data" top: "priors" '
        f'prior_box_param {{ {param} }} }}\n')


@pytest.mark.parametrize("case", PRIOR_CASES.values(), ids=PRIOR_CASES.keys())
def test_prior_box_matches_caffe(tmp_path, case):
    param, options = case
    want = ref.prior_box(FEATURE[2:], IMAGE[2:], **options)
    inputs = {"feature": normal(FEATURE, seed=14), "data": normal(IMAGE, seed=15)}
    # Caffe's (1, 2, L) is repeated along the Keras batch axis.
    check_conversion(tmp_path, prior_net(param), None, inputs,
                     {"priors": np.broadcast_to(want, (N,) + want.shape[1:])})


@pytest.mark.parametrize("param", ["min_size: 4 img_h: 20", "min_size: 4 step_w: 2"])
def test_prior_box_half_given_pairs_are_refused(tmp_path, param):
    prototxt, _ = write_net(tmp_path, prior_net(param))
    with pytest.raises(StructureError, match="'priors'"):
        caffe2keras.convert(prototxt)


# --- DetectionOutput ----------------------------------------------------------------------------

CLASSES = 4
PRIORS = "min_size: 6 max_size: 10 aspect_ratio: 2 flip: false variance: 0.1 variance: 0.1 " \
         "variance: 0.2 variance: 0.2"
PRIORS_PER_CELL = 3
NUM_PRIORS = FEATURE[2] * FEATURE[3] * PRIORS_PER_CELL

ALL = 3 * NUM_PRIORS  # rows without top_k or keep_top_k: 3 non-background classes x all priors
DETECTION_CASES = {  # detection_output_param (without num_classes), caffe_ref options, Keras rows
    "ssd_deploy": ("code_type: CENTER_SIZE keep_top_k: 9 confidence_threshold: 0.35 "
                   "nms_param { nms_threshold: 0.45 top_k: 12 }",
                   dict(code_type="center_size", keep_top_k=9, confidence_threshold=0.35,
                        nms_threshold=0.45, top_k=12), 9),
    "corner_defaults": ("nms_param { }", dict(code_type="corner"), ALL),
    "corner_size_eta": ("code_type: CORNER_SIZE nms_param { nms_threshold: 0.8 eta: 0.7 } "
                        "keep_top_k: 40", dict(code_type="corner_size", nms_threshold=0.8,
                                               eta=0.7, keep_top_k=40), 40),
    "variance_in_target": ("code_type: CENTER_SIZE variance_encoded_in_target: true "
                           "confidence_threshold: 0.5 nms_param { nms_threshold: 0.3 }",
                           dict(code_type="center_size", variance_encoded_in_target=True,
                                confidence_threshold=0.5, nms_threshold=0.3), ALL),
    "per_class_locations": ("share_location: false background_label_id: 2 code_type: CENTER_SIZE "
                            "confidence_threshold: 0.2 nms_param { nms_threshold: 0.4 top_k: 8 }",
                            dict(share_location=False, background_label_id=2,
                                 code_type="center_size", confidence_threshold=0.2,
                                 nms_threshold=0.4, top_k=8), 3 * 8),
    "no_background": ("share_location: false background_label_id: -1 confidence_threshold: 0.6 "
                      "keep_top_k: 5 nms_param { nms_threshold: 0.5 }",
                      dict(share_location=False, background_label_id=-1, confidence_threshold=0.6,
                           keep_top_k=5, nms_threshold=0.5), 5),
    "nothing_detected": ("confidence_threshold: 1.5 nms_param { nms_threshold: 0.5 }",
                         dict(confidence_threshold=1.5, nms_threshold=0.5), ALL),
    "top_k_zero": ("nms_param { nms_threshold: 0.5 top_k: 0 }", dict(nms_threshold=0.5, top_k=0),
                   1),
}


def detection_net(param: str, loc_classes: int) -> str:
    return header(("feature", FEATURE), ("data", IMAGE),
                  ("loc", (N, NUM_PRIORS * loc_classes * 4)),
                  ("conf", (N, NUM_PRIORS * CLASSES))) + f"""
layer {{ name: "priors" type: "PriorBox" bottom: "feature" bottom: "data" top: "priors"
        prior_box_param {{ {PRIORS} }} }}
layer {{ name: "detections" type: "DetectionOutput" bottom: "loc" bottom: "conf"
        bottom: "priors" top: "detections"
        detection_output_param {{ num_classes: {CLASSES} {param} }} }}
"""


def padded(caffe_rows: np.ndarray, rows: int) -> np.ndarray:
    """Caffe's (1, 1, R, 7) top laid out like the Keras output: (N, rows, 7), image i's
    detections first, then [i, -1, ..., -1] rows."""
    out = np.full((N, rows, 7), -1.0, np.float32)
    out[:, :, 0] = np.arange(N)[:, None]
    real = caffe_rows[0, 0][caffe_rows[0, 0][:, 1] != -1]
    for i in range(N):
        mine = real[real[:, 0] == i]
        out[i, :len(mine)] = mine
    return out


def detection_inputs(loc_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    return {"feature": normal(FEATURE, seed=seed), "data": normal(IMAGE, seed=seed + 1),
            "loc": rng.standard_normal((N, NUM_PRIORS * loc_classes * 4)).astype(np.float32),
            "conf": rng.uniform(0.0, 1.0, (N, NUM_PRIORS * CLASSES)).astype(np.float32)}


@pytest.mark.parametrize("case", DETECTION_CASES.values(), ids=DETECTION_CASES.keys())
def test_detection_output_matches_caffe(tmp_path, case):
    param, options, rows = case
    loc_classes = 1 if options.get("share_location", True) else CLASSES
    inputs = detection_inputs(loc_classes, seed=20)
    priors = ref.prior_box(FEATURE[2:], IMAGE[2:], [6], [10], [2], flip=False,
                           variances=[0.1, 0.1, 0.2, 0.2])
    want = ref.detection_output(inputs["loc"], inputs["conf"], priors, CLASSES, **options)
    model = caffe2keras.convert(*write_net(tmp_path, detection_net(param, loc_classes)))
    got = keras_values(model, ["detections"], inputs)["detections"]
    assert got.shape == (N, rows, 7)
    np.testing.assert_allclose(got, padded(want, rows), rtol=0, atol=2e-6)
    passed = compare_detections(want, got, 1e-5)
    assert passed[2], passed


def test_detection_output_breaks_ties_by_prior_index(tmp_path):
    """Scores on four levels tie all the time: candidates of equal score keep prior order (Caffe's
    stable_sort), and so does the keep_top_k cut here (Caffe's std::sort leaves that open)."""
    param = ("code_type: CENTER_SIZE keep_top_k: 12 confidence_threshold: 0.3 "
             "nms_param { nms_threshold: 0.45 top_k: 10 }")
    inputs = detection_inputs(1, seed=40)
    inputs["conf"] = np.random.default_rng(41).integers(0, 4, inputs["conf"].shape) / 4.0
    inputs["conf"] = inputs["conf"].astype(np.float32)
    priors = ref.prior_box(FEATURE[2:], IMAGE[2:], [6], [10], [2], flip=False,
                           variances=[0.1, 0.1, 0.2, 0.2])
    want = ref.detection_output(inputs["loc"], inputs["conf"], priors, CLASSES,
                                code_type="center_size", keep_top_k=12, confidence_threshold=0.3,
                                nms_threshold=0.45, top_k=10)
    model = caffe2keras.convert(*write_net(tmp_path, detection_net(param, 1)))
    got = keras_values(model, ["detections"], inputs)["detections"]
    np.testing.assert_allclose(got, padded(want, 12), rtol=0, atol=2e-6)


def test_detection_output_detects_something():
    """The variants above are not vacuous: most of them keep boxes."""
    kept = {}
    for name, (_, options, _) in DETECTION_CASES.items():
        loc_classes = 1 if options.get("share_location", True) else CLASSES
        inputs = detection_inputs(loc_classes, seed=20)
        priors = ref.prior_box(FEATURE[2:], IMAGE[2:], [6], [10], [2], flip=False,
                               variances=[0.1, 0.1, 0.2, 0.2])
        rows = ref.detection_output(inputs["loc"], inputs["conf"], priors, CLASSES, **options)
        kept[name] = int(np.sum(rows[0, 0, :, 1] != -1))
    assert kept.pop("nothing_detected") == 0 and kept.pop("top_k_zero") == 0
    assert min(kept.values()) >= 5, kept


def test_detection_output_batches_independently(tmp_path):
    """Items are processed alone: predicting one image at a time gives the same rows (but
    column 0, the index within the batch, restarts at 0)."""
    param = DETECTION_CASES["ssd_deploy"][0]
    inputs = detection_inputs(1, seed=30)
    model = caffe2keras.convert(*write_net(tmp_path, detection_net(param, 1)))
    feeds = [inputs[t.name] if inputs[t.name].ndim != 4 else inputs[t.name].transpose(0, 2, 3, 1)
             for t in model.inputs]
    together = model.predict(feeds, batch_size=N, verbose=0)
    alone = model.predict(feeds, batch_size=1, verbose=0)
    np.testing.assert_array_equal(alone[..., 1:], together[..., 1:])
    np.testing.assert_array_equal(alone[..., 0], 0 * together[..., 0])


DETECTION_ERRORS = {
    "no_nms_param": ("keep_top_k: 3", "nms_param"),
    "shared_without_background": ("background_label_id: -1 nms_param { }", "label -1"),
    "bad_eta": ("nms_param { eta: 1.5 }", "eta"),
}


@pytest.mark.parametrize("case", DETECTION_ERRORS.values(), ids=DETECTION_ERRORS.keys())
def test_detection_output_refusals(tmp_path, case):
    param, match = case
    prototxt, _ = write_net(tmp_path, detection_net(param, 1))
    with pytest.raises(StructureError, match=f"'detections'.*{match}"):
        caffe2keras.convert(prototxt)


# --- verify's comparison of reshaped blobs ------------------------------------------------------

def caffe_top(rows) -> np.ndarray:
    return np.asarray(rows, np.float32).reshape(1, 1, -1, 7)


def test_compare_detections_accepts_padded_rows():
    caffe = caffe_top([[0, 1, 0.9, 0.1, 0.1, 0.5, 0.5], [0, 3, 0.8, 0.2, 0.2, 0.4, 0.6],
                       [1, 2, 0.7, 0.0, 0.3, 0.5, 0.9]])
    keras_out = np.array([[[0, 1, 0.9, 0.1, 0.1, 0.5, 0.5], [0, 3, 0.8, 0.2, 0.2, 0.4, 0.6],
                           [0, -1, -1, -1, -1, -1, -1]],
                          [[1, 2, 0.7, 0.0, 0.3, 0.5, 0.9], [1, -1, -1, -1, -1, -1, -1],
                           [1, -1, -1, -1, -1, -1, -1]]], np.float32)
    error, relative, passed, note = compare_detections(caffe, keras_out, 1e-4)
    assert passed and error == 0 and "3 detections" in note
    keras_out[1, 0, 2] += 1e-3  # a score off by more than the tolerance
    assert not compare_detections(caffe, keras_out, 1e-4)[2]


def test_compare_detections_with_caffe_fake_rows():
    caffe = caffe_top([[0, -1, -1, -1, -1, -1, -1], [1, -1, -1, -1, -1, -1, -1]])
    keras_out = np.full((2, 4, 7), -1.0, np.float32)
    keras_out[:, :, 0] = [[0], [1]]
    assert compare_detections(caffe, keras_out, 1e-4)[2]


@pytest.mark.parametrize("change,message", [
    (lambda k: k.__setitem__((0, 1, 1), 2.0), "beyond"),        # an extra detection
    (lambda k: k.__setitem__((0, 0, 1), 2.0), "label"),         # the wrong label
    (lambda k: k.__setitem__((0, 2, 0), 1.0), "beyond"),        # padding with the wrong image
])
def test_compare_detections_rejects_structure_changes(change, message):
    caffe = caffe_top([[0, 1, 0.9, 0.1, 0.1, 0.5, 0.5]])
    keras_out = np.full((1, 3, 7), -1.0, np.float32)
    keras_out[0, :, 0] = 0
    keras_out[0, 0] = [0, 1, 0.9, 0.1, 0.1, 0.5, 0.5]
    change(keras_out)
    error, relative, passed, note = compare_detections(caffe, keras_out, 1e-4)
    assert not passed and message in note


def test_compare_reshaped_batch_independent_blob():
    caffe = np.arange(12, dtype=np.float32).reshape(1, 2, 6)
    keras_out = np.repeat(caffe, 3, axis=0)
    assert compare_reshaped("Concat", caffe, keras_out, 1e-4)[2]
    keras_out[2, 1, 5] += 1
    assert not compare_reshaped("PriorBox", caffe, keras_out, 1e-4)[2]
    assert compare_reshaped("Convolution", caffe, keras_out[:, :1], 1e-4) is None


# --- the custom layers: configs, saving, loading ------------------------------------------------

def assert_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


@pytest.mark.parametrize("layer", [
    Normalize(across_spatial=False, channel_shared=False, eps=1e-6, axis=1),
    MVN(axes=(1, 2, 3), normalize_variance=False, eps=0.1),
    MVN(axes=()),
    Interp(height=9, width=4, pad_beg=-1, pad_end=0),
    Axpy(axis=1),
    PriorBox(min_sizes=[3, 7], max_sizes=[5, 9], aspect_ratios=[1, 2, 0.5], clip=False,
             variances=[0.1, 0.1, 0.2, 0.2], img_size=(20, 30), step=(2.5, 3.0), offset=0.25),
    DetectionOutput(num_classes=5, share_location=False, background_label_id=-1,
                    code_type="corner_size", variance_encoded_in_target=True, keep_top_k=20,
                    confidence_threshold=0.25, nms_threshold=0.4, top_k=50, eta=0.9),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    assert_config_round_trip(layer)


@pytest.mark.parametrize("arguments,message", [
    (dict(cls=Interp, height=3, width=4, pad_beg=1), "pad_beg"),
    (dict(cls=Interp, height=0, width=4), "height"),
    (dict(cls=MVN, axes=(0, 1)), "axes"),
    (dict(cls=PriorBox, min_sizes=[]), "min_size"),
    (dict(cls=PriorBox, min_sizes=[4], aspect_ratios=[2.0]), "start with 1"),
    (dict(cls=DetectionOutput, num_classes=3, code_type="centre"), "code_type"),
    (dict(cls=DetectionOutput, num_classes=3, background_label_id=-1), "-1"),
])
def test_bad_arguments_are_refused(arguments, message):
    cls = arguments.pop("cls")
    with pytest.raises(ValueError, match=message):
        cls(**arguments)


def _model_with_every_layer():
    feature = keras.Input((4, 6, 3), name="feature")
    image = keras.Input((17, 23, 3), name="image")
    a = keras.Input((3,), name="a")
    x = Normalize(channel_shared=False, across_spatial=False, name="norm")(feature)
    x = MVN(axes=(1, 2))(x)
    x = Axpy()([a, x, feature])
    x = Interp(height=7, width=11, pad_beg=-1)(x)
    loc_conv = keras.layers.Conv2D(3 * 4, 1, name="loc")(feature)
    conf_conv = keras.layers.Conv2D(3 * 3, 1, name="conf")(feature)
    conf = keras.layers.Softmax()(keras.layers.Reshape((-1, 3))(conf_conv))
    priors = PriorBox(min_sizes=[6], max_sizes=[10], aspect_ratios=[1, 2],
                      variances=[0.1, 0.1, 0.2, 0.2])([feature, image])
    detections = DetectionOutput(num_classes=3, code_type="center_size", keep_top_k=6,
                                 confidence_threshold=0.2, nms_threshold=0.45, top_k=10)(
        [keras.layers.Flatten()(loc_conv), keras.layers.Flatten()(conf), priors])
    model = keras.Model([feature, image, a], [x, detections])
    model.get_layer("norm").set_weights([np.array([2.0, 3.0, 5.0], np.float32)])
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_load_in_safe_mode(tmp_path, suffix):
    model = _model_with_every_layer()
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((2, 4, 6, 3)).astype(np.float32),
              rng.standard_normal((2, 17, 23, 3)).astype(np.float32),
              rng.standard_normal((2, 3)).astype(np.float32)]
    want = model.predict(inputs, verbose=0)
    assert np.all(want[1][:, 0, 1] >= 0), "the test model should detect something"
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for got, expected in zip(loaded.predict(inputs, verbose=0), want):
        np.testing.assert_array_equal(got, expected)
