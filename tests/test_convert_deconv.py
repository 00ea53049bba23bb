"""Deconvolution converted and compared with caffe_ref.deconvolution, one parameter variant at a
time, and the GroupedConv2DTranspose layer on its own.

As in test_convert_conv, each case gives the convolution_param text and, separately, the geometry
the reference uses, so a misread field changes the numbers.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import caffe2keras
import caffe_ref as ref
from caffe2keras.errors import StructureError
from caffe2keras.layers import GroupedConv2DTranspose
from numpy_forward import check_conversion, normal, to_caffe, to_keras, write_net

N, H, W = 2, 5, 4

# id: (convolution_param, input channels, num_output, group, kernel, stride, pad, dilation, bias)
CASES = {
    "fcn_up2": ("num_output: 3 kernel_size: 4 stride: 2 pad: 1",
                4, 3, 1, (4, 4), (2, 2), (1, 1), (1, 1), True),
    "hw_fields": ("num_output: 5 kernel_h: 3 kernel_w: 2 stride_h: 3 stride_w: 2 pad_h: 1 "
                  "pad_w: 0 bias_term: false", 4, 5, 1, (3, 2), (3, 2), (1, 0), (1, 1), False),
    "repeated_per_axis": ("num_output: 2 kernel_size: 3 kernel_size: 4 stride: 2 stride: 3 "
                          "pad: 0 pad: 1", 3, 2, 1, (3, 4), (2, 3), (0, 1), (1, 1), True),
    "kernel_below_stride": ("num_output: 2 kernel_h: 2 kernel_w: 1 stride: 3",
                            3, 2, 1, (2, 1), (3, 3), (0, 0), (1, 1), True),
    "stride_1": ("num_output: 2 kernel_size: 3", 3, 2, 1, (3, 3), (1, 1), (0, 0), (1, 1), True),
    "stride_1_pad": ("num_output: 2 kernel_size: 3 pad: 1",
                     3, 2, 1, (3, 3), (1, 1), (1, 1), (1, 1), True),
    "dilation_stride_1": ("num_output: 3 kernel_size: 3 dilation: 2",
                          3, 3, 1, (3, 3), (1, 1), (0, 0), (2, 2), True),
    "dilation_and_stride": ("num_output: 3 kernel_size: 3 stride_h: 2 stride_w: 3 dilation: 2 "
                            "dilation: 3 pad: 1", 3, 3, 1, (3, 3), (2, 3), (1, 1), (2, 3), True),
    "group_2": ("num_output: 6 kernel_size: 3 stride: 2 group: 2",
                4, 6, 2, (3, 3), (2, 2), (0, 0), (1, 1), True),
    "fcn_bilinear_group_c": ("num_output: 4 kernel_size: 4 stride: 2 group: 4 bias_term: false",
                             4, 4, 4, (4, 4), (2, 2), (0, 0), (1, 1), False),
    "group_c_pad_multiplier": ("num_output: 8 kernel_size: 4 stride: 2 pad: 1 group: 4",
                               4, 8, 4, (4, 4), (2, 2), (1, 1), (1, 1), True),
    "group_dilated_strided": ("num_output: 4 kernel_h: 2 kernel_w: 3 stride: 2 dilation: 2 "
                              "group: 2 pad_h: 0 pad_w: 2", 6, 4, 2, (2, 3), (2, 2), (0, 2),
                              (2, 2), True),
    "fsrcnn_x3": ("num_output: 1 kernel_size: 9 stride: 3 pad: 3",
                  3, 1, 1, (9, 9), (3, 3), (3, 3), (1, 1), True),
    "pointwise": ("num_output: 5 kernel_size: 1", 3, 5, 1, (1, 1), (1, 1), (0, 0), (1, 1), True),
}


def deconv_net(param: str, channels: int) -> str:
    return f"""
name: "deconv"
input: "data"
input_shape {{ dim: {N} dim: {channels} dim: {H} dim: {W} }}
layer {{ name: "up/1" type: "Deconvolution" bottom: "data" top: "up/1"
        convolution_param {{ {param} }} }}
"""


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_deconvolution_matches_caffe(tmp_path, case):
    param, channels, num_output, group, kernel, stride, pad, dilation, bias_term = case
    weights = normal((channels, num_output // group) + kernel, seed=1)
    bias = normal((num_output,), seed=2) if bias_term else None
    x = normal((N, channels, H, W), seed=3)
    want = ref.deconvolution(x, weights, bias, stride=stride, pad=pad, dilation=dilation,
                             group=group)
    blobs = [weights] + ([bias] if bias_term else [])
    model = check_conversion(tmp_path, deconv_net(param, channels), {"up/1": blobs}, {"data": x},
                             {"up/1": want})
    # Keras' own layer wherever it is exact; a crop after it takes the Caffe name.
    weighted = model.get_layer("up_1_deconv" if pad != (0, 0) else "up_1")
    uses_keras_layer = group == 1 and (stride == (1, 1) or dilation == (1, 1))
    expected_type = keras.layers.Conv2DTranspose if uses_keras_layer else GroupedConv2DTranspose
    assert type(weighted) is expected_type
    assert len(weighted.get_weights()) == (2 if bias_term else 1)
    if pad != (0, 0):
        assert isinstance(model.get_layer("up_1"), keras.layers.Cropping2D)


def test_deconvolution_after_convolution_and_crop(tmp_path):
    """FCN's pattern: score -> 2x Deconvolution (group = C, no bias) -> Crop against a skip."""
    text = """
name: "fcn"
input: "data"
input_shape { dim: 2 dim: 3 dim: 7 dim: 6 }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 group: 4 bias_term: false } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "crop"
        crop_param { offset: 2 offset: 1 } }
"""
    w1, b1 = normal((4, 3, 3, 3), seed=4), normal((4,), seed=5)
    w2 = normal((4, 1, 4, 4), seed=6)
    x = normal((2, 3, 7, 6), seed=7)
    score = ref.convolution(x, w1, b1)
    up = ref.deconvolution(score, w2, group=4, stride=2)  # 5x4 -> 12x10
    crop = ref.crop(up, (2, 3, 7, 6), axis=2, offset=(2, 1))
    check_conversion(tmp_path, text, {"score": [w1, b1], "up": [w2]}, {"data": x},
                     {"score": score, "up": up, "crop": crop})


def test_deconvolution_with_two_bottoms_is_refused(tmp_path):
    text = """
name: "two"
input: "a"
input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
input: "b"
input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
layer { name: "up" type: "Deconvolution" bottom: "a" bottom: "b" top: "ua" top: "ub"
        convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }
"""
    prototxt, caffemodel = write_net(tmp_path, text, {"up": [normal((3, 2, 2, 2), seed=8),
                                                            normal((2,), seed=9)]})
    with pytest.raises(StructureError, match="'up'.*bottoms"):
        caffe2keras.convert(prototxt, caffemodel)


def test_three_dimensional_deconvolution_is_refused(tmp_path):
    text = """
name: "3d"
input: "data"
input_shape { dim: 2 dim: 3 dim: 4 dim: 5 dim: 3 }
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
        convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }
"""
    prototxt, caffemodel = write_net(tmp_path, text, {"up": [normal((3, 2, 2, 2, 2), seed=10),
                                                            normal((2,), seed=11)]})
    with pytest.raises(StructureError, match="'up'.*2-D"):
        caffe2keras.convert(prototxt, caffemodel)


# --- GroupedConv2DTranspose on its own -----------------------------------------------------------

def _grouped_model():
    x = keras.Input((5, 4, 6))
    y = GroupedConv2DTranspose(4, (3, 2), strides=(2, 3), dilation_rate=(2, 1), groups=2,
                               name="up")(x)
    y = GroupedConv2DTranspose(3, 2, groups=1, use_bias=False, name="up2")(y)
    model = keras.Model(x, y)
    rng = np.random.default_rng(12)
    for layer in model.layers[1:]:
        layer.set_weights([rng.standard_normal(w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    return model


def test_grouped_conv_transpose_matches_caffe():
    model = _grouped_model()
    w1, b1 = model.get_layer("up").get_weights()
    (w2,) = model.get_layer("up2").get_weights()
    assert w1.shape == (3, 2, 2, 6) and w2.shape == (2, 2, 3, 4)
    x = normal((2, 6, 5, 4), seed=13)
    # Keras (kh, kw, C_out/g, C_in) back to Caffe's (C_in, C_out/g, kh, kw)
    y1 = ref.deconvolution(x, w1.transpose(3, 2, 0, 1), b1, stride=(2, 3), dilation=(2, 1),
                           group=2)
    y2 = ref.deconvolution(y1, w2.transpose(3, 2, 0, 1))
    got = to_caffe(model.predict(to_keras(x), verbose=0))
    np.testing.assert_allclose(got, y2, rtol=1e-5, atol=1e-5 * np.abs(y2).max())
    # H: 2*4 + 2*2 + 1 = 13, then + 1; W: 3*3 + 1 + 1 = 11, then + 1
    assert tuple(model.output.shape) == (None, 14, 12, 3)


def test_grouped_conv_transpose_config_round_trip():
    layer = GroupedConv2DTranspose(6, (4, 3), strides=2, dilation_rate=(1, 2), groups=3,
                                   use_bias=False, name="g")
    config = layer.get_config()
    assert GroupedConv2DTranspose.from_config(config).get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is GroupedConv2DTranspose and revived.get_config() == config


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_grouped_conv_transpose_save_and_load_in_safe_mode(tmp_path, suffix):
    model = _grouped_model()
    x = to_keras(normal((2, 6, 5, 4), seed=14))
    want = model.predict(x, verbose=0)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)


def test_grouped_conv_transpose_is_trainable():
    model = _grouped_model()
    assert len(model.trainable_weights) == 3  # kernel + bias, kernel
    model.compile(optimizer="sgd", loss="mse")
    x = to_keras(normal((2, 6, 5, 4), seed=15))
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, np.zeros((2, 14, 12, 3), np.float32), epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("kwargs,message", [
    (dict(filters=5, kernel_size=3, groups=2), "must divide filters"),
    (dict(filters=0, kernel_size=3), "filters"),
    (dict(filters=4, kernel_size=(3, 0)), "kernel_size"),
    (dict(filters=4, kernel_size=3, strides=(1, 2, 3)), "strides"),
])
def test_grouped_conv_transpose_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupedConv2DTranspose(**kwargs)


def test_grouped_conv_transpose_rejects_channels_it_cannot_group():
    with pytest.raises(ValueError, match="divide the 5 input channels"):
        GroupedConv2DTranspose(4, 3, groups=2)(keras.Input((4, 4, 5)))
