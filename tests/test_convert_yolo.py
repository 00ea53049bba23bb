"""The YOLOv2 Caffe ports' Reorg and Region, checked against numpy transcriptions of the ports'
C++ loops (reorg_cpu, RegionLayer::Forward_cpu), in Keras and in every runtime format; the
Region layer's config round trip; the errors for what the ports cannot run."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras.errors import StructureError
from caffe2keras.layers import Region
from fork_golden import FORMATS, check_everywhere
from numpy_forward import normal, write_net


def reorg_port(x, stride, reverse):
    """reorg_cpu(bottom, b_w, b_h, b_c, b_n, stride, forward=reverse, top) of the ports,
    loop for loop over the bottom's flat buffer."""
    n_, c_, h_, w_ = x.shape
    t_c, t_w, t_h = c_ // (stride * stride), w_ * stride, h_ * stride
    bottom = x.ravel()
    top = np.full(bottom.size, np.nan, np.float32)
    for n in range(n_):
        for c in range(c_):
            for h in range(h_):
                for w in range(w_):
                    bottom_index = w + w_ * (h + h_ * (c + c_ * n))
                    c2, offset = c % t_c, c // t_c
                    w2 = w * stride + offset % stride
                    h2 = h * stride + offset // stride
                    top_index = w2 + t_w * (h2 + t_h * (c2 + t_c * n))
                    if reverse:
                        top[top_index] = bottom[bottom_index]
                    else:
                        top[bottom_index] = bottom[top_index]
    if reverse:
        return top.reshape(n_, t_c, t_h, t_w)
    return top.reshape(n_, c_ * stride * stride, h_ // stride, w_ // stride)


def region_port(x, num, coords, classes):
    """RegionLayer::Forward_cpu: copy, logistic on 2*w*h values from entry 0 and on entry
    ``coords`` per anchor, softmax over the classes with stride w*h."""
    batch, channels, height, width = x.shape
    area = height * width
    top = x.astype(np.float64).ravel().copy()
    inputs = area * num * (classes + coords + 1)
    logistic = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for b in range(batch):
        for n in range(num):
            index = b * inputs + n * area * (coords + classes + 1)
            top[index:index + 2 * area] = logistic(top[index:index + 2 * area])
            index += coords * area
            top[index:index + area] = logistic(top[index:index + area])
            first = b * inputs + n * area * (coords + classes + 1) + (coords + 1) * area
            scores = top[first:first + classes * area].reshape(classes, area)
            e = np.exp(scores - scores.max(axis=0))
            top[first:first + classes * area] = (e / e.sum(axis=0)).ravel()
    return top.reshape(x.shape).astype(np.float32)


def net(type_, param, shape):
    dims = " ".join(f"dim: {d}" for d in shape)
    return (f'name: "yolo"\ninput: "data"\ninput_shape {{ {dims} }}\n'
            f'layer {{ name: "out" type: "{type_}" bottom: "data" top: "out" {param} }}\n')


REORG_CASES = {  # (N, C, H, W), stride, reverse
    "s2": ((2, 8, 6, 10), 2, False),
    "s3": ((2, 9, 6, 3), 3, False),
    "reverse_s2": ((2, 12, 5, 3), 2, True),
}


@pytest.mark.parametrize("format_name", FORMATS)
@pytest.mark.parametrize("case", REORG_CASES.values(), ids=REORG_CASES.keys())
def test_reorg_matches_the_port(tmp_path, case, format_name):
    shape, stride, reverse = case
    x = normal(shape, seed=21)
    param = f"reorg_param {{ stride: {stride} reverse: {str(reverse).lower()} }}"
    want = reorg_port(x, stride, reverse)
    assert not np.isnan(want).any()
    errors = check_everywhere(tmp_path, net("Reorg", param, shape), None, {"data": x},
                              {("out", "out", "Reorg"): want}, format_name)
    assert errors["out"] == 0.0  # a permutation: exact


def test_reorg_is_not_space_to_depth():
    """darknet's default reorg differs from a space-to-depth (the reason it is spelt out)."""
    x = normal((1, 8, 4, 6), seed=1)
    s2d = x.reshape(1, 8, 2, 2, 3, 2).transpose(0, 3, 5, 1, 2, 4).reshape(1, 32, 2, 3)
    assert not np.array_equal(reorg_port(x, 2, False), s2d)


REGION_CASES = {  # (N, C, H, W), num, coords, classes
    "yolov2_like": ((2, 3 * (4 + 3 + 1), 5, 7), 3, 4, 3),
    "one_anchor_six_coords": ((2, 1 * (6 + 2 + 1), 3, 4), 1, 6, 2),
}


@pytest.mark.parametrize("format_name", FORMATS)
@pytest.mark.parametrize("case", REGION_CASES.values(), ids=REGION_CASES.keys())
def test_region_matches_the_port(tmp_path, case, format_name):
    shape, num, coords, classes = case
    x = normal(shape, seed=22, scale=3.0)
    param = f"region_param {{ num: {num} coords: {coords} classes: {classes} }}"
    errors = check_everywhere(tmp_path, net("Region", param, shape), None, {"data": x},
                              {("out", "out", "Region"): region_port(x, num, coords, classes)},
                              format_name)
    assert errors["out"] < 1e-5


def test_region_config_round_trip_and_safe_load(tmp_path):
    layer = Region(num=2, coords=4, classes=3, name="region")
    assert Region.from_config(layer.get_config()).get_config() == layer.get_config()
    inputs = keras.Input((3, 4, 16))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    x = normal((2, 3, 4, 16), seed=3)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("type_, param, shape, message", [
    ("Reorg", "reorg_param { }", (1, 8, 4, 4), "needs a stride"),
    ("Reorg", "reorg_param { stride: 2 }", (1, 6, 4, 4), "C divisible by 4"),
    ("Reorg", "reorg_param { stride: 2 }", (1, 8, 5, 4), "H, W by 2"),
    ("Region", "region_param { num: 2 coords: 4 }", (1, 16, 3, 3), "must set classes"),
    ("Region", "region_param { num: 2 coords: 4 classes: 2 }", (1, 16, 3, 3), "14"),
    ("Region", "region_param { num: 2 coords: 1 classes: 2 }", (1, 8, 3, 3), "coords at least 2"),
])
def test_what_the_ports_cannot_run_is_refused(tmp_path, type_, param, shape, message):
    prototxt, _ = write_net(tmp_path, net(type_, param, shape))
    with pytest.raises(StructureError, match=f"'out' \\({type_}\\).*{message}"):
        caffe2keras.convert(prototxt)


def test_reorg_counts_match():
    for shape, stride, reverse in REORG_CASES.values():
        assert reorg_port(normal(shape, 0), stride, reverse).size == math.prod(shape)


def upsample_port(x, scale):
    """The YOLOv3 ports' UpsampleLayer::Forward_cpu: out[n, c, h, w] = in[n, c, h / s, w / s]
    over the (N, C, H*s, W*s) top."""
    n_, c_, h_, w_ = x.shape
    top = np.empty((n_, c_, h_ * scale, w_ * scale), np.float32)
    for h in range(h_ * scale):
        for w in range(w_ * scale):
            top[:, :, h, w] = x[:, :, h // scale, w // scale]
    return top


@pytest.mark.parametrize("format_name", FORMATS)
def test_yolov3_upsample_matches_the_port(tmp_path, format_name):
    """The YOLOv3 Caffe ports write `upsample_param { scale: 2 }`, the field our Upsample
    reads (the ports number upsample_param differently: their caffemodels' layer settings
    are not read, the prototxt's are)."""
    x = normal((2, 3, 5, 4), seed=23)
    errors = check_everywhere(tmp_path, net("Upsample", "upsample_param { scale: 2 }", x.shape),
                              None, {"data": x}, {("out", "out", "Upsample"): upsample_port(x, 2)},
                              format_name)
    assert errors["out"] == 0.0
