"""prototxt + caffemodel -> IR (caffe2keras.load_net): format generations, inputs, phases,
in-place renaming, weight binding and blob formats."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netbuild as nb
from caffe2keras import load_net, read_mean_file
from caffe2keras.errors import StructureError
from caffe2keras.shapes import infer_shapes


def write_net(tmp_path, net, weights=None, **blob_format):
    """Write ``net`` as a prototxt and, with ``weights``, as a caffemodel; return the paths."""
    prototxt = nb.write(tmp_path, "net.prototxt", net)
    if weights is None:
        return prototxt, None
    return prototxt, nb.write(tmp_path, "net.caffemodel", nb.with_blobs(net, weights, **blob_format))


def graph(net):
    return [(layer.name, layer.type, layer.bottoms, layer.top_blobs) for layer in net.layers]


V2_GRAPH = [("conv1", "Convolution", ["data"], ["conv1"]),
            ("relu1", "ReLU", ["conv1"], ["conv1"]),
            ("pool1", "Pooling", [None], ["pool1"]),  # None: the renamed in-place value
            ("fc", "InnerProduct", ["pool1"], ["fc"]),
            ("prob", "Softmax", ["fc"], ["prob"])]


def assert_v2_graph(net):
    relu_top = net.layer("relu1").tops[0]
    expected = [(n, t, [relu_top if b is None else b for b in bs], tb) for n, t, bs, tb in V2_GRAPH]
    assert graph(net) == expected


# ------------------------------------------------------------------ format generations

@pytest.mark.parametrize("build", [nb.v2_net, nb.v1_net], ids=["V2", "V1"])
def test_v2_and_v1_prototxts_read_alike(tmp_path, build):
    net = load_net(write_net(tmp_path, build())[0])
    assert net.inputs == {"data": nb.INPUT_SHAPE}
    assert_v2_graph(net)
    conv = net.layer("conv1").param.convolution_param
    assert (conv.num_output, conv.kernel_h, conv.kernel_w, conv.pad_h, conv.pad_w,
            conv.stride_h, conv.stride_w) == (4, 3, 2, 0, 1, 2, 1)
    infer_shapes(net)
    assert net.shapes[net.layer("pool1").tops[0]] == nb.POOL_TOP


def test_v0_prototxt_folds_its_padding_layer(tmp_path):
    net = load_net(write_net(tmp_path, nb.v0_net())[0])
    assert [(layer.name, layer.type) for layer in net.layers] == [
        ("conv1", "Convolution"), ("relu1", "ReLU"), ("fc", "InnerProduct"), ("prob", "Softmax")]
    conv = net.layer("conv1")
    assert conv.bottoms == ["data"]
    param = conv.param.convolution_param
    assert (list(param.pad), list(param.kernel_size), list(param.stride)) == ([1], [3], [2])
    infer_shapes(net)
    assert net.shapes["conv1"] == nb.V0_CONV_TOP


@pytest.mark.parametrize("proto_build, model_build, shapes", [
    (nb.v2_net, nb.v2_net, nb.V2_BLOB_SHAPES),
    (nb.v2_net, nb.v1_net, nb.V2_BLOB_SHAPES),
    (nb.v1_net, nb.v2_net, nb.V2_BLOB_SHAPES),
    (nb.v1_net, nb.v1_net, nb.V2_BLOB_SHAPES),
    (nb.v0_net, nb.v0_net, nb.V0_BLOB_SHAPES),
], ids=["V2+V2", "V2+V1", "V1+V2", "V1+V1", "V0+V0"])
def test_caffemodel_of_any_generation_binds_its_blobs(tmp_path, proto_build, model_build, shapes):
    weights = nb.seeded_blobs(shapes, seed=7)
    prototxt = nb.write(tmp_path, "net.prototxt", proto_build())
    caffemodel = nb.write(tmp_path, "net.caffemodel", nb.with_blobs(model_build(), weights))
    net = load_net(prototxt, caffemodel)
    for layer in net.layers:
        expected = weights.get(layer.name, [])
        assert len(layer.blobs) == len(expected), layer.name
        for got, want in zip(layer.blobs, expected):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)
    infer_shapes(net)  # the bound blobs fit the layers


# ------------------------------------------------------------------ inputs

@pytest.mark.parametrize("form", ["input_dim", "input_shape", "Input"])
def test_each_input_form(tmp_path, form):
    net = load_net(write_net(tmp_path, nb.v2_net(input_form=form))[0])
    assert net.inputs == {"data": nb.INPUT_SHAPE}
    assert "Input" not in [layer.type for layer in net.layers]
    assert_v2_graph(net)


def test_several_inputs_keep_their_order(tmp_path):
    text = """
        input: "image" input: "rois"
        input_dim: 2 input_dim: 3 input_dim: 11 input_dim: 7
        input_dim: 5 input_dim: 4 input_dim: 1 input_dim: 1
        layer { name: "extra" type: "Input" top: "scale" top: "mask"
                input_param { shape { dim: 2 dim: 1 } shape { dim: 2 dim: 6 dim: 3 } } }
        layer { name: "cat" type: "Concat" bottom: "scale" bottom: "rois" bottom: "image"
                bottom: "mask" top: "cat" }
    """
    net = load_net(nb.write(tmp_path, "multi.prototxt", text))
    assert list(net.inputs.items()) == [("image", (2, 3, 11, 7)), ("rois", (5, 4, 1, 1)),
                                        ("scale", (2, 1)), ("mask", (2, 6, 3))]


def test_input_shapes_override_the_file(tmp_path):
    net = load_net(write_net(tmp_path, nb.v2_net())[0], input_shapes={"data": (1, 3, 13, 9)})
    assert net.inputs == {"data": (1, 3, 13, 9)}


@pytest.mark.parametrize("form", ["input", "Input"])
def test_input_without_a_shape_takes_it_from_input_shapes(tmp_path, form):
    net = nb.v2_net(input_form="Input" if form == "Input" else "input_shape")
    if form == "Input":
        del net.layer[0].input_param.shape[:]
    else:
        del net.input_shape[:]
    prototxt = write_net(tmp_path, net)[0]
    assert load_net(prototxt, input_shapes={"data": (1, 3, 13, 9)}).inputs == {"data": (1, 3, 13, 9)}
    with pytest.raises(StructureError, match=r"input 'data' is not declared.*--input-shape data="):
        load_net(prototxt)


@pytest.mark.parametrize("means", [[104, 117, 123], [104, 117, 123, 50]], ids=["BGR", "BGRD"])
def test_data_layer_shape_from_crop_size_and_mean_values(tmp_path, means):
    net = nb.train_val_net()
    for layer in net.layer[:2]:
        del layer.transform_param.mean_value[:]
        layer.transform_param.mean_value.extend(means)
    net = load_net(write_net(tmp_path, net)[0])
    assert net.inputs == {"data": (2, len(means), 9, 9)}  # the TEST layer's batch of 2


def _without_means(net):
    for layer in net.layer:
        del layer.transform_param.mean_value[:]
    return net


def test_data_layer_channels_from_the_first_convolution_weights(tmp_path):
    weights = {"conv1": [nb.seeded((4, 5, 3, 3), 1), nb.seeded((4,), 2)]}
    net = load_net(*write_net(tmp_path, _without_means(nb.train_val_net()), weights))
    assert net.inputs == {"data": (2, 5, 9, 9)}


def test_data_layer_shape_from_input_shapes(tmp_path):
    prototxt = write_net(tmp_path, _without_means(nb.train_val_net()))[0]
    net = load_net(prototxt, input_shapes={"data": (4, 1, 13, 8)})
    assert net.inputs == {"data": (4, 1, 13, 8)}


def test_data_layer_without_any_shape_says_how_to_give_one(tmp_path):
    prototxt = write_net(tmp_path, _without_means(nb.train_val_net()))[0]
    with pytest.raises(StructureError, match=r"input 'data' is not declared.*--input-shape data="):
        load_net(prototxt)


# ------------------------------------------------------------------ phases

PHASED = """
state { level: 2 stage: "deploy" }
input: "data" input_shape { dim: 2 dim: 3 dim: 11 dim: 7 }
layer { name: "two_rules" type: "ReLU" bottom: "data" top: "data"
        include { phase: TRAIN } include { phase: TEST stage: "deploy" } }
layer { name: "other_stage" type: "ReLU" bottom: "data" top: "data"
        include { phase: TEST stage: "tune" } }
layer { name: "below_min_level" type: "ReLU" bottom: "data" top: "data"
        exclude { phase: TEST min_level: 3 } }
layer { name: "within_max_level" type: "ReLU" bottom: "data" top: "data"
        exclude { phase: TEST max_level: 2 } }
layer { name: "level_window" type: "ReLU" bottom: "data" top: "data"
        include { min_level: 1 max_level: 2 not_stage: "fast" } }
layer { name: "not_deploy" type: "ReLU" bottom: "data" top: "data"
        include { not_stage: "deploy" } }
layer { name: "train_only" type: "ReLU" bottom: "data" top: "data" include { phase: TRAIN } }
layer { name: "not_in_test" type: "ReLU" bottom: "data" top: "data" exclude { phase: TEST } }
layer { name: "always" type: "ReLU" bottom: "data" top: "data" }
"""


def test_phase_rules_levels_and_stages(tmp_path):
    net = load_net(nb.write(tmp_path, "phased.prototxt", PHASED))
    assert [layer.name for layer in net.layers] == [
        "two_rules", "below_min_level", "level_window", "always"]


def test_train_phase_on_request(tmp_path):
    net = load_net(nb.write(tmp_path, "phased.prototxt", PHASED), phase="TRAIN")
    assert [layer.name for layer in net.layers] == [
        "two_rules", "below_min_level", "within_max_level", "level_window", "train_only",
        "not_in_test", "always"]


def test_include_and_exclude_together_is_refused(tmp_path):
    text = PHASED + 'layer { name: "both" type: "ReLU" bottom: "data" top: "data" ' \
                    "include { phase: TEST } exclude { phase: TRAIN } }"
    with pytest.raises(StructureError, match="'both'"):
        load_net(nb.write(tmp_path, "both.prototxt", text))


def test_train_net_reduces_to_the_deploy_graph(tmp_path):
    net = load_net(write_net(tmp_path, nb.train_val_net())[0])
    assert [(layer.name, layer.type) for layer in net.layers] == [
        ("conv1", "Convolution"), ("relu1", "ReLU"), ("fc", "InnerProduct"),
        ("prob", "Softmax")]  # SoftmaxWithLoss -> Softmax, as in deploy nets
    assert list(net.inputs) == ["data"]  # the label is read only by the dropped layers
    assert net.outputs == ["prob"]


# ------------------------------------------------------------------ in-place renaming

def test_in_place_tops_get_fresh_value_ids(tmp_path):
    text = """
        input: "data" input_shape { dim: 2 dim: 3 dim: 11 dim: 7 }
        layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
                convolution_param { num_output: 4 kernel_size: 1 } }
        layer { name: "bn" type: "BatchNorm" bottom: "conv1" top: "conv1" }
        layer { name: "scale" type: "Scale" bottom: "conv1" top: "conv1" }
        layer { name: "relu" type: "ReLU" bottom: "conv1" top: "conv1" }
        layer { name: "side" type: "Convolution" bottom: "data" top: "side"
                convolution_param { num_output: 4 kernel_size: 1 } }
        layer { name: "sum" type: "Eltwise" bottom: "conv1" bottom: "side" top: "out" }
    """
    net = load_net(nb.write(tmp_path, "inplace.prototxt", text))
    tops = [top for layer in net.layers for top in layer.tops]
    assert len(tops) == len(set(tops)) and not set(tops) & set(net.inputs)
    chain = [net.layer(name) for name in ("conv1", "bn", "scale", "relu")]
    for before, after in zip(chain, chain[1:]):
        assert after.bottoms == before.tops  # each reads the previous version
        assert after.top_blobs == ["conv1"]
    assert net.layer("sum").bottoms == [net.layer("relu").tops[0], "side"]
    assert [net.blob_name(layer.tops[0]) for layer in chain] == ["conv1"] * 4
    assert net.outputs == ["out"]


# ------------------------------------------------------------------ weights

def test_weights_bind_by_name_not_by_position(tmp_path):
    weights = nb.seeded_blobs(nb.V2_BLOB_SHAPES, seed=3)
    model = nb.with_blobs(nb.v2_net(), weights)
    model.layer.reverse()  # another order than the prototxt's
    unused = model.layer.add(name="fc_old", type="InnerProduct", bottom=["pool1"], top=["fc_old"])
    unused.blobs.add().CopyFrom(nb.blob(nb.seeded((1000, 48), 9)))
    model.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["fc_old", "label"], top=["loss"])
    del model.layer[[layer.name for layer in model.layer].index("fc")].blobs[:]
    net = load_net(nb.write(tmp_path, "deploy.prototxt", nb.v2_net()),
                   nb.write(tmp_path, "shuffled.caffemodel", model))
    np.testing.assert_array_equal(net.layer("conv1").blobs[0], weights["conv1"][0])
    np.testing.assert_array_equal(net.layer("conv1").blobs[1], weights["conv1"][1])
    assert net.layer("fc").blobs == []  # absent from the caffemodel: keeps its fillers later
    assert "fc_old" not in [layer.name for layer in net.layers]


def test_caffemodel_holding_a_whole_train_net(tmp_path):
    weights = {"conv1": [nb.seeded((4, 3, 3, 3), 1), nb.seeded((4,), 2)],
               "fc": [nb.seeded((nb.FC_OUT, 4 * 7 * 7), 3), nb.seeded((nb.FC_OUT,), 4)]}
    caffemodel = nb.write(tmp_path, "train.caffemodel", nb.with_blobs(nb.train_val_net(), weights))
    deploy = nb.train_val_net()
    for name in ("accuracy", "loss", "data", "data"):
        del deploy.layer[[layer.name for layer in deploy.layer].index(name)]
    deploy.input.append("data")
    deploy.input_shape.add().dim.extend([1, 3, 9, 9])
    net = load_net(nb.write(tmp_path, "deploy.prototxt", deploy), caffemodel)
    assert [layer.name for layer in net.layers] == ["conv1", "relu1", "fc"]
    np.testing.assert_array_equal(net.layer("fc").blobs[0], weights["fc"][0])
    infer_shapes(net)
    assert net.shapes["fc"] == (1, nb.FC_OUT)


def test_legacy_four_axis_blobs(tmp_path):
    weights = nb.seeded_blobs(nb.V2_BLOB_SHAPES, seed=5)
    net = load_net(*write_net(tmp_path, nb.v2_net(), weights, legacy=True))
    assert [b.shape for b in net.layer("fc").blobs] == [(1, 1, nb.FC_OUT, 48), (1, 1, 1, nb.FC_OUT)]
    infer_shapes(net)  # Caffe accepts these for (N, K) and (N,) blobs
    assert [b.shape for b in net.layer("fc").blobs] == [(nb.FC_OUT, 48), (nb.FC_OUT,)]
    np.testing.assert_array_equal(net.layer("fc").blobs[0], weights["fc"][0])
    np.testing.assert_array_equal(net.layer("conv1").blobs[0], weights["conv1"][0])


def test_double_data_blobs(tmp_path):
    weights = {name: [a.astype(np.float64) / 3 for a in arrays]
               for name, arrays in nb.seeded_blobs(nb.V2_BLOB_SHAPES, seed=6).items()}
    net = load_net(*write_net(tmp_path, nb.v2_net(), weights, double=True))
    got = net.layer("conv1").blobs[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, weights["conv1"][0].astype(np.float32))


def test_double_data_wins_over_data_as_in_caffe(tmp_path):
    model = nb.v2_net()
    blob = model.layer[0].blobs.add()
    blob.shape.dim.extend([4, 3, 3, 2])
    blob.data.extend([7.0] * 72)
    blob.double_data.extend(np.arange(72, dtype=np.float64).tolist())
    net = load_net(nb.write(tmp_path, "a.prototxt", nb.v2_net()),
                   nb.write(tmp_path, "a.caffemodel", model))
    np.testing.assert_array_equal(net.layer("conv1").blobs[0].ravel(), np.arange(72))


# ------------------------------------------------------------------ mean files

@pytest.mark.parametrize("legacy", [True, False], ids=["num-channels-height-width", "shape"])
def test_mean_binaryproto(tmp_path, legacy):
    mean = nb.seeded((1, 3, 5, 4), 11) + 100
    path = nb.write(tmp_path, "mean.binaryproto", nb.blob(mean, legacy=legacy))
    got = read_mean_file(path)
    assert got.dtype == np.float32 and got.shape == (1, 3, 5, 4)
    np.testing.assert_array_equal(got, mean)



def test_pure_python_protobuf_backend_is_warned_about():
    """The pure-Python protobuf backend is ~100x slower on big caffemodels: say so."""
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "caffenet"
    script = ("import caffe2keras, sys; net = caffe2keras.load_net(sys.argv[1], sys.argv[2]); "
              "print('\\n'.join(net.warnings))")
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    out = subprocess.run([sys.executable, "-c", script, str(fixture / "deploy.prototxt"),
                          str(fixture / "weights.caffemodel")], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert "pure-Python backend" in out
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION")
    out = subprocess.run([sys.executable, "-c", script, str(fixture / "deploy.prototxt"),
                          str(fixture / "weights.caffemodel")], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert "pure-Python backend" not in out
