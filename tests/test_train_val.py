"""A train_val prototxt given instead of a deploy one: its TEST-phase inference net, compared
with the deploy file published beside it (BVLC Caffe's CaffeNet, GoogLeNet and LeNet, copied
as published into fixtures/train_val; see SOURCE.md there), and the reduction's rules on
small nets."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import netbuild as nb
from test_hostile_resources import _length_field, _varint

import caffe2keras
from caffe2keras.errors import StructureError
from caffe2keras.reader.loader import load_net

PUBLISHED = Path(__file__).resolve().parent.parent / "fixtures" / "train_val"


# --- a caffemodel written straight in the wire format (CaffeNet's 61M weights) --------------

def _field(number: int, payload: bytes) -> bytes:
    return _length_field(number, len(payload)) + payload


def fast_caffemodel(path: Path, weights: dict[str, list[np.ndarray]]) -> str:
    """NetParameter { layer (100) { name (1) blobs (7) { shape (7) { dim (1, packed) }
    data (5, packed float) } } }, without protobuf's per-value cost."""
    with open(path, "wb") as f:
        for name, arrays in weights.items():
            layer = _field(1, name.encode())
            for array in arrays:
                dims = b"".join(_varint(d) for d in array.shape)
                blob = _field(7, _field(1, dims))
                blob += _field(5, np.ascontiguousarray(array, "<f4").tobytes())
                layer += _field(7, blob)
            f.write(_field(100, layer))
    return str(path)


def seeded_weights(net) -> dict[str, list[np.ndarray]]:
    """Seeded weights of the shapes the deploy net's layers need, scaled to keep activations
    O(1)."""
    rng = np.random.default_rng(7)
    weights = {}
    for layer in net.layers:
        if layer.type not in ("Convolution", "InnerProduct"):
            continue
        from caffe2keras.shapes.registry import get_blob_rule
        shapes = get_blob_rule(layer.type)(layer, [net.shapes[b] for b in layer.bottoms])
        fan_in = int(np.prod(shapes[0][1:]))
        weights[layer.name] = [
            (rng.standard_normal(shapes[0], dtype=np.float32) / np.float32(np.sqrt(fan_in))),
            rng.uniform(-0.1, 0.1, shapes[1]).astype(np.float32)]
    return weights


def test_the_wire_writer_is_a_caffemodel(tmp_path):
    arrays = {"conv": [nb.seeded((2, 3, 1, 1), 1), nb.seeded((2,), 2)]}
    from caffe2keras.proto import caffe_pb2
    parsed = caffe_pb2.NetParameter()
    parsed.ParseFromString(Path(fast_caffemodel(tmp_path / "w.caffemodel", arrays)).read_bytes())
    assert [layer.name for layer in parsed.layer] == ["conv"]
    blob = parsed.layer[0].blobs[0]
    assert list(blob.shape.dim) == [2, 3, 1, 1]
    np.testing.assert_array_equal(np.array(blob.data, np.float32), arrays["conv"][0].ravel())
    assert struct.calcsize("<f") == 4


def _layers(net):
    return [(layer.name, layer.type, layer.bottoms, layer.tops) for layer in net.layers]


def _same_outputs(tmp_path, train_val, deploy, input_shape, weights_from=None):
    """Convert both files with one caffemodel; the models compute the same numbers."""
    from caffe2keras.api import read
    shapes = {"data": input_shape}
    reference = read(str(PUBLISHED / deploy), input_shapes=shapes)
    caffemodel = fast_caffemodel(tmp_path / "weights.caffemodel", seeded_weights(reference))
    del reference
    deployed = caffe2keras.convert(str(PUBLISHED / deploy), caffemodel, input_shapes=shapes)
    trained = caffe2keras.convert(str(PUBLISHED / train_val), caffemodel, input_shapes=shapes)
    assert [layer.name for layer in trained.layers] == [layer.name for layer in deployed.layers]
    x = np.random.default_rng(3).uniform(-1, 1, (2, *trained.input.shape[1:])).astype(np.float32)
    want, got = deployed.predict(x, verbose=0), trained.predict(x, verbose=0)
    assert want.shape == got.shape and np.abs(want).max() > 0
    # the same graph and weights; TensorFlow's threads may sum in another order between runs
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())
    return trained


def test_caffenet_train_val_is_the_deploy_net(tmp_path):
    train = load_net(str(PUBLISHED / "caffenet_train_val.prototxt"),
                     input_shapes={"data": (1, 3, 227, 227)})
    deploy = load_net(str(PUBLISHED / "caffenet_deploy.prototxt"))
    assert _layers(train) == _layers(deploy)
    assert train.outputs == deploy.outputs == ["prob"]
    assert train.notes == [
        "train/val net: built its inference net; dropped 'accuracy' (Accuracy), "
        "'loss' (SoftmaxWithLoss)",
        "train/val net: SoftmaxWithLoss 'loss' became Softmax 'prob', as in Caffe's deploy nets"]
    _same_outputs(tmp_path, "caffenet_train_val.prototxt", "caffenet_deploy.prototxt",
                  (1, 3, 227, 227))


def test_lenet_train_test_is_the_deploy_net(tmp_path):
    _same_outputs(tmp_path, "lenet_train_test.prototxt", "lenet.prototxt", (2, 1, 28, 28))


def test_googlenet_drops_its_auxiliary_classifiers():
    """loss1 and loss2 (loss_weight 0.3) go with every layer only they read, as in deploy."""
    train = load_net(str(PUBLISHED / "googlenet_train_val.prototxt"))
    deploy = load_net(str(PUBLISHED / "googlenet_deploy.prototxt"))
    assert _layers(train) == _layers(deploy)
    assert train.outputs == ["prob"]
    assert train.inputs == {"data": (50, 3, 224, 224)}  # TEST batch, crop_size, 3 mean values
    assert "'loss1/classifier', 'loss2/ave_pool'" in train.notes[-1]


def test_without_a_shape_the_error_says_what_to_give(run_cli):
    code, out, err = run_cli("inspect", PUBLISHED / "lenet_train_test.prototxt")
    assert code != 0 and "Traceback" not in err
    assert ("the shape of input 'data' is not declared (Data layer 'mnist' reads its images "
            "from a database") in err
    assert "--input-shape data=N,C,H,W" in err


def test_the_summary_notes_the_reduction(run_cli, tmp_path):
    code, _, err = run_cli("convert", PUBLISHED / "lenet_train_test.prototxt",
                           tmp_path / "lenet.keras", "--input-shape", "data=1,1,28,28")
    assert code == 0, err
    assert "note        train/val net: built its inference net; dropped 'accuracy' (Accuracy)" \
        in err
    assert "SoftmaxWithLoss 'loss' became Softmax 'prob'" in err


# --- the reduction's rules on small nets ----------------------------------------------------

HEAD = """
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 2 dim: 3 dim: 7 dim: 5 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 6 } }
"""


def _net(tmp_path, text):
    return load_net(nb.write(tmp_path, "train_val.prototxt", HEAD + text))


def test_label_only_layers_go_with_the_loss(tmp_path):
    net = _net(tmp_path, """
layer { name: "label_float" type: "Power" bottom: "label" top: "label_float" }
layer { name: "label_silence" type: "Silence" bottom: "label" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label_float" top: "loss"
        softmax_param { axis: 1 } }
""")
    assert [layer.name for layer in net.layers] == ["conv", "fc", "prob"]
    assert net.inputs == {"data": (2, 3, 7, 5)} and net.outputs == ["prob"]
    assert "'label_float', 'label_silence'" in net.notes[-1]


def test_other_losses_leave_their_prediction_as_the_output(tmp_path):
    net = _net(tmp_path, """
layer { name: "score" type: "InnerProduct" bottom: "conv" top: "score"
        inner_product_param { num_output: 1 } }
layer { name: "l2" type: "EuclideanLoss" bottom: "fc" bottom: "label" top: "l2" }
layer { name: "bce" type: "SigmoidCrossEntropyLoss" bottom: "score" bottom: "label" top: "bce" }
""")
    assert [(layer.name, layer.type) for layer in net.layers][-1] == ("prob", "Sigmoid")
    assert net.outputs == ["fc", "prob"]  # both main losses (loss_weight 1) keep a prediction


def test_a_loss_of_several_predictions_keeps_them_all(tmp_path):
    """SSD's MultiBoxLoss reads locations, confidences, priors and the labels."""
    net = _net(tmp_path, """
layer { name: "conf" type: "InnerProduct" bottom: "conv" top: "conf"
        inner_product_param { num_output: 3 } }
layer { name: "label_copy" type: "Power" bottom: "label" top: "label_copy" }
layer { name: "mbox_loss" type: "MultiBoxLoss" bottom: "fc" bottom: "conf" bottom: "label_copy"
        top: "mbox_loss" }
""")
    assert [layer.name for layer in net.layers] == ["conv", "fc", "conf"]
    assert net.outputs == ["conf", "fc"] and list(net.inputs) == ["data"]


def test_a_net_that_only_evaluates_keeps_what_it_evaluates(tmp_path):
    net = _net(tmp_path, 'layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" '
                         'top: "acc" }')
    assert [layer.name for layer in net.layers] == ["conv", "fc"] and net.outputs == ["fc"]


def test_a_deploy_net_is_left_alone(tmp_path):
    net = load_net(nb.write(tmp_path, "deploy.prototxt", nb.v2_net()))
    assert net.notes == []


# --- data layers as inputs ------------------------------------------------------------------

DATA_LAYERS = {
    "dummy_shape": ('type: "DummyData" dummy_data_param { shape { dim: 2 dim: 3 dim: 7 dim: 5 } }',
                    {}, (2, 3, 7, 5)),
    "dummy_legacy": ('type: "DummyData" dummy_data_param { num: 3 channels: 3 height: 6 '
                     'width: 5 }', {}, (3, 3, 6, 5)),
    "memory": ('type: "MemoryData" memory_data_param { batch_size: 4 channels: 3 height: 9 '
               'width: 6 }', {}, (4, 3, 9, 6)),
    "image_color": ('type: "ImageData" image_data_param { batch_size: 2 new_height: 8 '
                    'new_width: 6 }', {}, (2, 3, 8, 6)),
    "image_gray_cropped": ('type: "ImageData" transform_param { crop_size: 5 } '
                           'image_data_param { batch_size: 3 is_color: false new_height: 8 '
                           'new_width: 6 }', {}, (3, 1, 5, 5)),
    "data_force_gray": ('type: "Data" transform_param { crop_size: 7 force_gray: true } '
                        'data_param { batch_size: 5 }', {}, (5, 1, 7, 7)),
    "annotated_crop_h_w": ('type: "AnnotatedData" transform_param { crop_h: 6 crop_w: 9 '
                           'mean_value: 1 mean_value: 2 mean_value: 3 } data_param { batch_size: 2 }',
                           {}, (2, 3, 6, 9)),
    "annotated_given": ('type: "AnnotatedData" data_param { batch_size: 2 }',
                        {"data": (2, 3, 8, 7)}, (2, 3, 8, 7)),
    "hdf5_given": ('type: "HDF5Data" hdf5_data_param { source: "list.txt" batch_size: 2 }',
                   {"data": (2, 3, 6, 6)}, (2, 3, 6, 6)),
}


@pytest.mark.parametrize("case", DATA_LAYERS.values(), ids=DATA_LAYERS.keys())
def test_data_layers_become_inputs(tmp_path, case):
    fields, given, shape = case
    text = f"""
layer {{ name: "input" {fields} top: "data" top: "label" }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param {{ num_output: 2 kernel_size: 1 }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "conv" bottom: "label" top: "loss" }}
"""
    net = load_net(nb.write(tmp_path, "net.prototxt", text), input_shapes=given)
    assert net.inputs == {"data": shape}
    assert [layer.name for layer in net.layers] == ["conv", "prob"]


@pytest.mark.parametrize("fields, hint", [
    ('type: "HDF5Data" hdf5_data_param { source: "list.txt" batch_size: 2 }',
     "HDF5Data layer 'input' reads its blobs from files"),
    ('type: "AnnotatedData" data_param { batch_size: 2 }',
     "AnnotatedData layer 'input' reads its images from a database"),
])
def test_data_layers_without_a_shape_ask_for_one(tmp_path, fields, hint):
    text = f"""
layer {{ name: "input" {fields} top: "data" top: "label" }}
layer {{ name: "relu" type: "ReLU" bottom: "data" top: "relu" }}
"""
    with pytest.raises(StructureError, match=f"{hint}.*--input-shape data=N,C,H,W"):
        load_net(nb.write(tmp_path, "net.prototxt", text))


def test_a_data_layer_converts_and_runs(tmp_path):
    text = HEAD + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" ' \
                  'top: "loss" }'
    model = caffe2keras.convert(nb.write(tmp_path, "net.prototxt", text))
    assert model.input.shape[1:] == (7, 5, 3)
    probabilities = model.predict(np.ones((2, 7, 5, 3), np.float32), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
