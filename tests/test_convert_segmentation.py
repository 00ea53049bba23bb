"""Pooling's mask top, unpooling (SegNet/ENet Upsample with a mask, MaxUnPool), the SegNet/ENet
BN and BatchNormKyle: converted nets against the numpy transcriptions of tests/fork_forward.py,
every blob (the mask included), shapes asymmetric; the refusals by name."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras.api import prepare
from caffe2keras.build import build_graph
from caffe2keras.errors import StructureError
from caffe2keras.verify import verify_net
from fork_forward import forward, max_pool_with_mask, unpool
from numpy_forward import assert_close, normal, to_caffe, to_keras, write_net


def every_blob(net, inputs):
    """value id -> Keras value (Caffe layout) of every input and top of ``net``."""
    model_inputs, tensors = build_graph(net)
    names = [v for v in tensors if v not in net.inputs]
    model = keras.Model(model_inputs, [tensors[v] for v in names])
    feeds = [to_keras(inputs[name]) for name in net.inputs]
    results = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    results = results if isinstance(results, (list, tuple)) else [results]
    return {name: to_caffe(result) for name, result in zip(names, results)}


def fresh(net):
    """The net read again from its files (building a model hands its blobs back)."""
    return prepare(*net.source, fuse_batchnorm=False)


def check_net(tmp_path, text, blobs, inputs, rtol=1e-5):
    prototxt, caffemodel = write_net(tmp_path, text, blobs)
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    net.source = (prototxt, caffemodel)
    want = forward(net, inputs)
    got = every_blob(net, inputs)
    for value, array in got.items():
        assert_close(array, want[value], value, rtol=rtol)
    return net, got, want


def numpy_golden(net, values, inputs):
    """A manifest and arrays in the golden format (verify_net's input) holding every top of
    ``net`` as ``values`` (value id -> NCHW) has it: a numpy reference in place of Caffe's."""
    arrays, blobs = {}, []
    for k, name in enumerate(net.inputs):
        arrays[f"in{k}"] = inputs[name]
    for layer in net.layers:
        for index, (value, top) in enumerate(zip(layer.tops, layer.top_blobs)):
            key = f"b{len(blobs):04d}"
            arrays[key] = values[value]
            blobs.append({"layer": layer.name, "type": layer.type, "top": top, "index": index,
                          "key": key, "shape": list(values[value].shape)})
    manifest = {"tolerance": 1e-4, "blobs": blobs,
                "inputs": [{"name": name, "key": f"in{k}", "shape": list(inputs[name].shape)}
                           for k, name in enumerate(net.inputs)]}
    return manifest, arrays


def check_formats(net, values, inputs, formats=("onnx", "tflite", "openvino", "torch")):
    """Every blob, exported to each format and run in its runtime, against ``values``;
    returns format -> the largest relative error."""
    manifest, arrays = numpy_golden(net, values, inputs)
    worst = {}
    for runtime in formats:
        checks = verify_net(fresh(net), manifest, arrays, runtime=runtime)
        compared = [c for c in checks if c.max_abs_error is not None]
        assert compared, runtime
        failed = [f"{c.layer}:{c.top} {c.relative_error}" for c in checks if not c.passed]
        assert not failed, f"{runtime}: {failed}"
        worst[runtime] = max(c.relative_error for c in compared)
    return worst


def _pool_unpool(pool_params, unpool_layer, shape=(2, 5, 9, 7)):
    return f"""
    input: "data" input_shape {{ dim: {shape[0]} dim: {shape[1]} dim: {shape[2]} dim: {shape[3]} }}
    layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "pool_mask"
             pooling_param {{ pool: MAX {pool_params} }} }}
    layer {{ name: "scale" type: "Power" bottom: "pool" top: "scaled"
             power_param {{ scale: -1.5 shift: 0.25 }} }}
    {unpool_layer}
    """


SEGNET_UPSAMPLE = """layer { name: "up" type: "Upsample" bottom: "scaled" bottom: "pool_mask"
                       top: "up" upsample_param { %s } }"""


@pytest.mark.parametrize("pool_params, upsample, out_hw", [
    # ceil mode: 9x7 -> 5x4; pad_out_h gives back 9 rows, upsample_w names the 7 columns.
    ("kernel_size: 2 stride: 2", "scale: 2 pad_out_h: true pad_out_w: true", (9, 7)),
    ("kernel_size: 2 stride: 2", "upsample_h: 9 upsample_w: 7", (9, 7)),
    # kernel < stride and kernel_h != kernel_w: pixels no window reaches stay zero. (No window
    # may start past the image: its index -1 makes Caffe write before the plane.)
    ("kernel_h: 2 kernel_w: 1 stride_h: 2 stride_w: 3", "upsample_h: 9 upsample_w: 7", (9, 7)),
    # padded windows: pad_h 1, pad_w 0 (the clip rule on both axes).
    ("kernel_h: 3 kernel_w: 2 stride_h: 3 stride_w: 2 pad_h: 1 pad_w: 0",
     "upsample_h: 9 upsample_w: 7", (9, 7)),
])
def test_pooling_mask_and_upsample(tmp_path, pool_params, upsample, out_hw):
    text = _pool_unpool(pool_params, SEGNET_UPSAMPLE % upsample)
    inputs = {"data": normal((2, 5, 9, 7), 3)}
    net, got, want = check_net(tmp_path, text, None, inputs)
    mask = got[net.layer("pool").tops[1]]
    assert mask.shape[2:] == want[net.layer("pool").tops[0]].shape[2:]
    assert np.array_equal(mask, want[net.layer("pool").tops[1]])  # indices exactly
    assert got[net.layer("up").tops[0]].shape == (2, 5, *out_hw)


def test_upsample_default_scale_is_two(tmp_path):
    """caffe-segnet declares scale [default = 2]: a two-bottom Upsample with no scale doubles."""
    text = _pool_unpool("kernel_size: 2 stride: 2", SEGNET_UPSAMPLE % "", shape=(1, 3, 6, 8))
    net, got, _ = check_net(tmp_path, text, None, {"data": normal((1, 3, 6, 8), 4)})
    assert got[net.layer("up").tops[0]].shape == (1, 3, 6, 8)


def test_mask_ties_take_the_first_pixel(tmp_path):
    """Equal values in a window: Caffe's strict '>' keeps the first in row order."""
    x = np.zeros((1, 2, 4, 6), np.float32)
    x[0, 1, 1, 1] = x[0, 1, 0, 1] = 5.0
    text = _pool_unpool("kernel_size: 2 stride: 2", SEGNET_UPSAMPLE % "scale: 2", (1, 2, 4, 6))
    net, got, want = check_net(tmp_path, text, None, {"data": x})
    mask = got[net.layer("pool").tops[1]]
    assert mask[0, 0, 0, 0] == 0 and mask[0, 1, 0, 0] == 1  # (0,0) of zeros; (0,1) of the 5s
    assert np.array_equal(mask, want[net.layer("pool").tops[1]])


def test_max_unpool(tmp_path):
    unpool_layer = """layer { name: "unpool" type: "MaxUnPool" bottom: "scaled" bottom: "pool_mask"
                       top: "unpool" max_unpool_param { dst_h: 9 dst_w: 7 } }"""
    text = _pool_unpool("kernel_size: 3 stride: 3", unpool_layer)
    net, got, _ = check_net(tmp_path, text, None, {"data": normal((2, 5, 9, 7), 5)})
    assert got[net.layer("unpool").tops[0]].shape == (2, 5, 9, 7)


def test_bn_inference(tmp_path):
    text = """input: "data" input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
    layer { name: "bn" type: "BN" bottom: "data" top: "data" bn_param { bn_mode: INFERENCE } }"""
    blobs = {"bn": [normal((1, 3, 1, 1), 1), normal((1, 3, 1, 1), 2)]}
    check_net(tmp_path, text, blobs, {"data": normal((2, 3, 5, 4), 6)})


@pytest.mark.parametrize("alpha_beta", [False, True])
def test_batch_norm_kyle(tmp_path, alpha_beta):
    text = f"""input: "data" input_shape {{ dim: 2 dim: 3 dim: 5 dim: 4 }}
    layer {{ name: "bn" type: "BatchNormKyle" bottom: "data" top: "bn"
             batch_norm_param {{ eps: 0.001 use_alpha_beta: {str(alpha_beta).lower()} }} }}"""
    blobs = [normal((3,), 1), np.abs(normal((3,), 2)) + 0.5, np.array([2.5], np.float32)]
    if alpha_beta:
        blobs += [normal((3,), 3), normal((3,), 4)]
    check_net(tmp_path, text, {"bn": blobs}, {"data": normal((2, 3, 5, 4), 7)})


def test_unpool_reference_lets_the_last_write_win():
    """The transcription itself: overlapping indices keep the later value (Caffe's loop)."""
    x = np.array([[[[1.0, 2.0]]]], np.float32)
    top = unpool(x, np.array([[[[3.0, 3.0]]]], np.float32), 2, 2)
    assert top.reshape(-1).tolist() == [0.0, 0.0, 0.0, 2.0]
    top, mask = max_pool_with_mask(np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4),
                                   (2, 2), (2, 2), (0, 0))
    assert mask.reshape(-1).tolist() == [5.0, 7.0, 9.0, 11.0]


def _refusal(tmp_path, text, blobs=None):
    prototxt, caffemodel = write_net(tmp_path, text, blobs)
    with pytest.raises(StructureError) as error:
        caffe2keras.convert(prototxt, caffemodel)
    return str(error.value)


def test_refusals(tmp_path):
    overlap = _pool_unpool("kernel_size: 3 stride: 2", SEGNET_UPSAMPLE % "upsample_h: 9 "
                                                                           "upsample_w: 7")
    assert "'up' (Upsample)" in _refusal(tmp_path, overlap) and "overlap" in _refusal(tmp_path,
                                                                                      overlap)
    not_a_mask = """input: "data" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }
    input: "m" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }
    layer { name: "up" type: "Upsample" bottom: "data" bottom: "m" top: "up"
            upsample_param { scale: 2 } }"""
    assert "second top of a MAX" in _refusal(tmp_path, not_a_mask)
    other_size = _pool_unpool("kernel_size: 2 stride: 2", SEGNET_UPSAMPLE % "scale: 2")
    assert "only the pooling input's size" in _refusal(tmp_path, other_size)
    ave = """input: "data" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }
    layer { name: "pool" type: "Pooling" bottom: "data" top: "p" top: "m"
            pooling_param { pool: AVE kernel_size: 2 stride: 2 } }"""
    assert "only MAX pooling has a mask" in _refusal(tmp_path, ave)
    learn = """input: "data" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }
    layer { name: "bn" type: "BN" bottom: "data" top: "bn" }"""
    assert "bn_mode LEARN" in _refusal(tmp_path, learn, {"bn": [np.ones((1, 2, 1, 1),
                                                                         np.float32)] * 2})
    other_fork = learn.replace('top: "bn" }', 'top: "bn" bn_param { frozen: true } }')
    assert "the BN of another fork" in _refusal(tmp_path, other_fork)


def test_every_format(tmp_path):
    """Pooling with its mask, a padded overlapping-free unpooling, MaxUnPool, BN and
    BatchNormKyle in one net, exported to every format, every blob against numpy."""
    text = """input: "data" input_shape { dim: 2 dim: 5 dim: 9 dim: 7 }
    layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "pool_mask"
            pooling_param { pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 3 stride_w: 2
                            pad_h: 1 pad_w: 0 } }
    layer { name: "bn" type: "BN" bottom: "pool" top: "bn" bn_param { bn_mode: INFERENCE } }
    layer { name: "up" type: "Upsample" bottom: "bn" bottom: "pool_mask" top: "up"
            upsample_param { upsample_h: 9 upsample_w: 7 } }
    layer { name: "pool2" type: "Pooling" bottom: "up" top: "pool2" top: "pool2_mask"
            pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    layer { name: "kyle" type: "BatchNormKyle" bottom: "pool2" top: "kyle"
            batch_norm_param { use_alpha_beta: true } }
    layer { name: "unpool" type: "MaxUnPool" bottom: "kyle" bottom: "pool2_mask" top: "unpool"
            max_unpool_param { dst_h: 9 dst_w: 7 } }"""
    blobs = {"bn": [normal((1, 5, 1, 1), 1), normal((1, 5, 1, 1), 2)],
             "kyle": [normal((5,), 3), np.abs(normal((5,), 4)) + 0.5,
                      np.array([0.75], np.float32), normal((5,), 5), normal((5,), 6)]}
    inputs = {"data": normal((2, 5, 9, 7), 8)}
    net, _, want = check_net(tmp_path, text, blobs, inputs)
    worst = check_formats(net, want, inputs)
    assert set(worst) == {"onnx", "tflite", "openvino", "torch"}
    print(f"\nlargest relative error per format: {worst}")


def test_fillers_without_weights(tmp_path):
    """No caffemodel: BN takes its scale_filler and shift_filler (SegNet's 1 and 0.001),
    BatchNormKyle Caffe's initial blobs (zero statistics and factor, alpha 1, beta 0)."""
    text = """input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 4 }
    layer { name: "bn" type: "BN" bottom: "data" top: "bn"
            bn_param { bn_mode: INFERENCE scale_filler { type: "constant" value: 1 }
                       shift_filler { type: "constant" value: 0.001 } } }
    layer { name: "kyle" type: "BatchNormKyle" bottom: "bn" top: "kyle"
            batch_norm_param { use_alpha_beta: true eps: 0.25 } }"""
    prototxt, _ = write_net(tmp_path, text)
    net = prepare(prototxt, fuse_batchnorm=False)
    scale, shift = net.layer("bn").blobs
    assert scale.ravel().tolist() == [1.0, 1.0]
    assert np.array_equal(shift.ravel(), np.full(2, 0.001, np.float32))
    kyle = [b.ravel().tolist() for b in net.layer("kyle").blobs]
    assert kyle == [[0.0, 0.0], [0.0, 0.0], [0.0], [1.0, 1.0], [0.0, 0.0]]
    x = normal((1, 2, 3, 4), 9)
    got = every_blob(net, {"data": x})[net.layer("kyle").tops[0]]
    assert_close(got, (x + np.float32(0.001)) / np.sqrt(np.float32(0.25)), "kyle")
