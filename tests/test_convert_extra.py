"""The converter fork's HardSwish, HardSigmoid, Pad, Resize, BilinearInterpolate, PixelShuffle and
Unsqueeze, and the later Caffes' Clip, Swish and Mish, against numpy transcriptions of their C++
``Forward_cpu`` loops (float32 where Caffe computes in float32). Real Caffe's own numbers are in
fixtures/extra_layers and fixtures/fork_activations (tests/test_golden.py)."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_forward import check_conversion, normal

from caffe2keras.errors import StructureError

SHAPE = (2, 3, 5, 4)  # N, C, H, W
f32 = np.float32


def one_layer(shape, layer_type: str, param: str, name: str = "layer") -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (f'input: "data" input_shape {{ {dims} }}\n'
            f'layer {{ name: "{name}" type: "{layer_type}" bottom: "data" top: "out" {param} }}\n')


# --- activations ------------------------------------------------------------------------------

def hard_swish(x):
    return x * np.maximum(f32(0), np.minimum(f32(1), x / f32(6) + f32(0.5)))


def hard_sigmoid(x, alpha=0.2, beta=0.5):
    return np.maximum(f32(0), np.minimum(f32(1), x * f32(alpha) + f32(beta)))


def clip(x, low, high):
    return np.maximum(f32(low), np.minimum(x, f32(high)))


def swish(x, beta=1.0):
    return x / (1 + np.exp(-np.float64(beta) * x))


def mish(x):
    return x * np.tanh(np.log1p(np.exp(np.float64(x))))


ACTIVATIONS = {
    "hard_swish": ("HardSwish", "", hard_swish),
    "hard_sigmoid_default": ("HardSigmoid", "", hard_sigmoid),
    "hard_sigmoid_params": ("HardSigmoid", "hardsigmoid_param { alpha: 0.3 beta: 0.4 }",
                            lambda x: hard_sigmoid(x, 0.3, 0.4)),
    "clip": ("Clip", "clip_param { min: -0.5 max: 1.5 }", lambda x: clip(x, -0.5, 1.5)),
    "clip_crossed": ("Clip", "clip_param { min: 0.5 max: -0.5 }", lambda x: clip(x, 0.5, -0.5)),
    "swish_default": ("Swish", "", swish),
    "swish_beta": ("Swish", "swish_param { beta: 1.7 }", lambda x: swish(x, 1.7)),
    "mish": ("Mish", "", mish),
}


@pytest.mark.parametrize("shape", [SHAPE, (2, 7)], ids=["4d", "2d"])
@pytest.mark.parametrize("case", ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
def test_activation_matches_the_fork(tmp_path, case, shape):
    layer_type, param, function = case
    x = normal(shape, seed=11, scale=4.0)  # past the kinks at +-3 and the clip bounds
    check_conversion(tmp_path, one_layer(shape, layer_type, param), None, {"data": x},
                     {"layer": function(x)})


# --- Pad ----------------------------------------------------------------------------------------

def pad_ref(x, u, d, left, right, mode="CONSTANT", value=0.0):
    """pad_layer.cpp: crop when all four are negative; else body, then rows' sides, then the
    top and bottom rows (reading the already padded rows)."""
    n, c, h, w = x.shape
    if min(u, d, left, right) < 0:
        return x[:, :, -u:h + d, -left:w + right].copy()
    th, tw = h + u + d, w + left + right
    y = np.zeros((n, c, th, tw), np.float32)
    y[:, :, u:u + h, left:left + w] = x
    for row in range(u, th - d):
        for col in range(left):
            y[:, :, row, col] = (value if mode == "CONSTANT" else
                                 y[:, :, row, left] if mode == "REPLICATE" else
                                 y[:, :, row, 2 * left - col])
        for col in range(tw - right, tw):
            y[:, :, row, col] = (value if mode == "CONSTANT" else
                                 y[:, :, row, tw - right - 1] if mode == "REPLICATE" else
                                 y[:, :, row, 2 * (tw - right - 1) - col])
    for row in range(u):
        y[:, :, row] = (value if mode == "CONSTANT" else y[:, :, u] if mode == "REPLICATE" else
                        y[:, :, 2 * u - row])
    for row in range(th - d, th):
        y[:, :, row] = (value if mode == "CONSTANT" else
                        y[:, :, th - d - 1] if mode == "REPLICATE" else
                        y[:, :, 2 * (th - d - 1) - row])
    return y


PADS = {
    "zero": ((1, 2, 3, 0), "CONSTANT", 0.0),
    "value": ((2, 0, 1, 3), "CONSTANT", -1.25),
    "replicate": ((3, 1, 0, 2), "REPLICATE", 0.0),
    "reflect": ((2, 3, 1, 3), "REFLECT", 0.0),
    "crop": ((-1, -2, -1, -1), "CONSTANT", 0.0),
}


@pytest.mark.parametrize("case", PADS.values(), ids=PADS.keys())
def test_pad_matches_the_fork(tmp_path, case):
    (u, d, left, right), mode, value = case
    x = normal(SHAPE, seed=12)
    param = (f"pad_param {{ pad_type: {mode} pad_u: {u} pad_d: {d} pad_l: {left} pad_r: {right}"
             f" pad_value: {value} }}")
    check_conversion(tmp_path, one_layer(SHAPE, "Pad", param), None, {"data": x},
                     {"layer": pad_ref(x, u, d, left, right, mode, value)})


@pytest.mark.parametrize("param, message", [
    ("pad_param { pad_u: -1 pad_d: 2 }", "mix negative"),
    ("pad_param { pad_type: REFLECT pad_u: 5 }", "REFLECT pads"),
])
def test_pad_refuses_what_caffe_computes_out_of_bounds(tmp_path, param, message):
    with pytest.raises(StructureError, match=message):
        check_conversion(tmp_path, one_layer(SHAPE, "Pad", param), None,
                         {"data": normal(SHAPE, seed=1)}, {})


# --- Resize, BilinearInterpolate ----------------------------------------------------------------

def resize_ref(x, out_h, out_w):
    """BiLinearResizeMat_cpu, loop for loop, in float32."""
    n, c, h, w = x.shape
    scale_w, scale_h = f32(w) / f32(out_w), f32(h) / f32(out_h)
    y = np.zeros((n, c, out_h, out_w), np.float32)
    for i in range(out_h):
        fh = f32(i) * scale_h
        sh = int(np.floor(fh))
        fh = f32(fh - f32(sh))
        wh0, wh1 = abs(f32(1) - fh), abs(fh)
        for j in range(out_w):
            fw = f32(j) * scale_w
            sw = int(np.floor(fw))
            fw = f32(fw - f32(sw))
            ww0, ww1 = abs(f32(1) - fw), abs(fw)
            v = wh0 * ww0 * x[:, :, sh, sw]
            flag = 0
            if sw + 1 < w:
                v = v + wh0 * ww1 * x[:, :, sh, sw + 1]
                flag += 1
            if sh + 1 < h:
                v = v + wh1 * ww0 * x[:, :, sh + 1, sw]
                flag += 1
            if flag > 1:
                v = v + wh1 * ww1 * x[:, :, sh + 1, sw + 1]
            y[:, :, i, j] = v
    return y


def interpolate_ref(x, out_h, out_w, align):
    """bilinear_interpolate_layer.cpp: source coordinates clamped, neighbours clamped."""
    n, c, h, w = x.shape

    def axis(size, out):
        pos = np.empty(out, np.float32)
        for i in range(out):
            if align:
                pos[i] = f32(f32(size - 1) / f32(out - 1)) * f32(i)
            else:
                pos[i] = f32(float(f32(f32(size) / f32(out))) * (i + 0.5) - 0.5)
        pos = np.clip(pos, 0, size - 1).astype(np.float32)
        first = np.clip(np.floor(pos).astype(int), 0, size - 2)
        return pos, first, first + 1

    hp, h0, h1 = axis(h, out_h)
    wp, w0, w1 = axis(w, out_w)
    y = np.zeros((n, c, out_h, out_w), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            r0 = (f32(w1[j]) - wp[j]) * x[:, :, h0[i], w0[j]] + (wp[j] - f32(w0[j])) * x[:, :, h0[i], w1[j]]
            r1 = (f32(w1[j]) - wp[j]) * x[:, :, h1[i], w0[j]] + (wp[j] - f32(w0[j])) * x[:, :, h1[i], w1[j]]
            y[:, :, i, j] = (f32(h1[i]) - hp[i]) * r0 + (hp[i] - f32(h0[i])) * r1
    return y


RESIZES = {
    "up": ("resize_param { height: 11 width: 7 }", (11, 7)),
    "down": ("resize_param { height: 3 width: 2 }", (3, 2)),
    "pyramid": ("resize_param { is_pyramid_test: true out_height_scale: 1.5 "
                "out_width_scale: 2.3 }", (7, 9)),
}


@pytest.mark.parametrize("case", RESIZES.values(), ids=RESIZES.keys())
def test_resize_matches_the_fork(tmp_path, case):
    param, (out_h, out_w) = case
    x = normal(SHAPE, seed=13)
    model = check_conversion(tmp_path, one_layer(SHAPE, "Resize", param), None, {"data": x},
                             {"layer": resize_ref(x, out_h, out_w)})
    assert model.output.shape[1:3] == (out_h, out_w)


INTERPOLATIONS = {
    "align_up": ("dst_h: 9 dst_w: 6", (9, 6), True),
    "half_pixel_up": ("dst_h: 9 dst_w: 6 align_corners: false", (9, 6), False),
    "half_pixel_down": ("dst_h: 3 dst_w: 3 align_corners: false", (3, 3), False),
    "align_height_only": ("dst_h: 8", (8, 4), True),
    "scale": ("scale_factor: 1.6", (8, 6), True),
    "scale_half_pixel": ("scale_factor: 2 align_corners: false", (10, 8), False),
    "same_size": ("dst_h: 5 dst_w: 4 align_corners: false", (5, 4), False),
}


@pytest.mark.parametrize("case", INTERPOLATIONS.values(), ids=INTERPOLATIONS.keys())
def test_bilinear_interpolate_matches_the_fork(tmp_path, case):
    fields, (out_h, out_w), align = case
    x = normal(SHAPE, seed=14)
    text = one_layer(SHAPE, "BilinearInterpolate", f"bilinear_interpolate_param {{ {fields} }}")
    check_conversion(tmp_path, text, None, {"data": x},
                     {"layer": interpolate_ref(x, out_h, out_w, align)})


def test_bilinear_interpolate_without_a_size_is_refused(tmp_path):
    text = one_layer(SHAPE, "BilinearInterpolate",
                     "bilinear_interpolate_param { dst_h: 4 scale_factor: 2 }")
    with pytest.raises(StructureError, match="either dst_h/dst_w or scale_factor"):
        check_conversion(tmp_path, text, None, {"data": normal(SHAPE, seed=1)}, {})


# --- PixelShuffle, Unsqueeze --------------------------------------------------------------------

def pixel_shuffle_ref(x, r):
    n, c, h, w = x.shape
    out = c // (r * r)
    y = np.zeros((n, out, h * r, w * r), np.float32)
    for p in range(out):
        for sh in range(r):
            for sw in range(r):
                y[:, p, sh::r, sw::r] = x[:, p * r * r + sh * r + sw]
    return y


@pytest.mark.parametrize("r, channels", [(2, 12), (3, 18), (1, 4)])
def test_pixel_shuffle_matches_the_fork(tmp_path, r, channels):
    shape = (2, channels, 3, 5)
    x = normal(shape, seed=15)
    check_conversion(tmp_path, one_layer(shape, "PixelShuffle",
                                         f"pixelshuffle_param {{ upscale_factor: {r} }}"),
                     None, {"data": x}, {"layer": pixel_shuffle_ref(x, r)})


@pytest.mark.parametrize("shape, dim, want", [
    (SHAPE, 1, (2, 1, 3, 5, 4)), (SHAPE, -1, (2, 3, 5, 4, 1)), ((2, 7), 2, (2, 7, 1)),
    ((2, 3, 4), -2, (2, 3, 1, 4)),
])
def test_unsqueeze_inserts_an_axis(tmp_path, shape, dim, want):
    x = normal(shape, seed=16)
    check_conversion(tmp_path, one_layer(shape, "Unsqueeze", f"unsqueeze_param {{ dim: {dim} }}"),
                     None, {"data": x}, {"layer": x.reshape(want)})


def test_unsqueeze_before_the_batch_is_refused(tmp_path):
    with pytest.raises(StructureError, match="batch axis"):
        check_conversion(tmp_path, one_layer(SHAPE, "Unsqueeze", "unsqueeze_param { dim: 0 }"),
                         None, {"data": normal(SHAPE, seed=1)}, {})


# --- the custom layers: saving, loading, arguments ----------------------------------------------

def test_the_layers_save_and_load_in_safe_mode(tmp_path):
    import keras

    import caffe2keras
    text = ('input: "data" input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }\n'
            'layer { name: "clip" type: "Clip" bottom: "data" top: "clip" '
            'clip_param { min: -0.5 max: 0.5 } }\n'
            'layer { name: "swish" type: "Swish" bottom: "clip" top: "swish" '
            'swish_param { beta: 2 } }\n'
            'layer { name: "pad" type: "Pad" bottom: "swish" top: "pad" '
            'pad_param { pad_type: REPLICATE pad_u: 1 pad_r: 2 } }\n'
            'layer { name: "resize" type: "Resize" bottom: "pad" top: "resize" '
            'resize_param { height: 9 width: 7 } }\n'
            'layer { name: "interp" type: "BilinearInterpolate" bottom: "resize" top: "interp" '
            'bilinear_interpolate_param { dst_h: 4 dst_w: 5 align_corners: false } }\n')
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(text)
    model = caffe2keras.convert(str(prototxt))
    model.save(tmp_path / "net.keras")
    loaded = keras.models.load_model(tmp_path / "net.keras", safe_mode=True)
    x = normal((2, 5, 4, 3), seed=17, scale=2.0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("make, message", [
    (lambda L: L.Clip(min=float("nan"), max=1.0), "finite"),
    (lambda L: L.Swish(beta="2"), "finite"),
    (lambda L: L.CaffePad(padding=((1, -1), (0, 0))), ">= 0"),
    (lambda L: L.CaffePad(mode="wrap"), "mode"),
    (lambda L: L.BilinearResize(height=0, width=3), "positive"),
    (lambda L: L.BilinearResize(height=2, width=3, coordinates="nearest"), "coordinates"),
])
def test_the_layers_refuse_bad_arguments(make, message):
    from caffe2keras import layers
    with pytest.raises(ValueError, match=message):
        make(layers)
