"""Which values a converted model returns: Caffe's net outputs, plus the blobs that only
Silence layers read (colorization ends with ``Silence`` on ``class8_ab``, its result); a net
that still returns nothing is refused with the layers to pass to ``--outputs``."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras import Step, converter, registry, shape_rule
from caffe2keras.api import prepare, read
from caffe2keras.errors import StructureError
from numpy_forward import forward, normal, write_net

COLORIZATION = Path(__file__).resolve().parent / "data" / "colorization_deploy_v2.prototxt"

# colorization's ending on a 2x3x7x5 input: conv -> Scale -> Softmax -> 1x1 conv -> Silence.
ENDING = """name: "LtoAB tail"
layer { name: "data_l" type: "Input" top: "data_l" input_param { shape { dim: 2 dim: 3 dim: 7 dim: 5 } } }
layer { name: "conv8_313" type: "Convolution" bottom: "data_l" top: "conv8_313"
        convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "conv8_313_rh" type: "Scale" bottom: "conv8_313" top: "conv8_313_rh"
        scale_param { bias_term: false } }
layer { name: "class8_313_rh" type: "Softmax" bottom: "conv8_313_rh" top: "class8_313_rh" }
layer { name: "class8_ab" type: "Convolution" bottom: "class8_313_rh" top: "class8_ab"
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "Silence" type: "Silence" bottom: "class8_ab" }
"""
BLOBS = {"conv8_313": [normal((6, 3, 1, 1), seed=1), normal((6,), seed=2)],
         "conv8_313_rh": [np.linspace(0.5, 2.606, 6, dtype=np.float32)],
         "class8_ab": [normal((2, 6, 1, 1), seed=3), normal((2,), seed=4)]}


def test_a_blob_only_silence_reads_is_an_output(tmp_path):
    prototxt, caffemodel = write_net(tmp_path, ENDING, BLOBS)
    x = normal((2, 3, 7, 5), seed=5)
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    expected = forward(net, {"data_l": x})["class8_ab"]
    model = caffe2keras.convert(prototxt, caffemodel)
    assert [tensor.name for tensor in model.outputs] == [model.get_layer("class8_ab").output.name]
    got = model.predict(x.transpose(0, 2, 3, 1), verbose=0).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_the_summary_says_a_silenced_blob_was_made_an_output(tmp_path, run_cli):
    prototxt, caffemodel = write_net(tmp_path, ENDING, BLOBS)
    code, _, err = run_cli("convert", prototxt, caffemodel, tmp_path / "tail.keras")
    assert code == 0, err
    assert "class8_ab: read only by Silence, made an output" in err
    assert "class8_ab (N, 7, 5, 2)" in err


def test_a_silenced_blob_read_elsewhere_too_stays_inside(tmp_path):
    """Silence beside a real reader: the blob is not an output, the reader's top is."""
    text = ENDING.replace('layer { name: "Silence" type: "Silence" bottom: "class8_ab" }',
                          'layer { name: "Silence" type: "Silence" bottom: "class8_313_rh" }')
    prototxt, caffemodel = write_net(tmp_path, text, BLOBS)
    net = read(prototxt, caffemodel)
    assert net.outputs == ["class8_ab"] and net.silenced_outputs() == []


def test_the_published_colorization_net_returns_class8_ab():
    """richzhang/colorization's deploy prototxt as published (see tests/data/SOURCE.md): at
    224x224 class8_ab is its one output; built from its fillers on a 1x1x32x32 input (all of
    its 32M parameters, a small image), the model returns class8_ab."""
    net = read(str(COLORIZATION))
    assert [net.blob_name(value) for value in net.outputs] == ["class8_ab"]
    assert [net.blob_name(value) for value in net.silenced_outputs()] == ["class8_ab"]
    assert net.shapes[net.outputs[0]] == (1, 2, 56, 56)
    model = caffe2keras.convert(str(COLORIZATION), input_shapes={"data_l": (1, 1, 32, 32)})
    assert model.name == "LtoAB"
    assert len(model.outputs) == 1 and model.outputs[0].shape == (None, 8, 8, 2)
    assert model.outputs[0].name == model.get_layer("class8_ab").output.name
    assert model.predict(np.ones((1, 32, 32, 1), np.float32), verbose=0).shape == (1, 8, 8, 2)


@pytest.fixture
def sink_layer():
    """A user's layer type that reads a blob and writes none (like a custom logger)."""
    @converter("Sink")
    def sink(layer, ctx):
        return []

    @shape_rule("Sink")
    def no_tops(layer, bottom_shapes):
        return []

    yield
    registry.unregister("Sink")
    from caffe2keras.shapes import registry as shape_registry
    shape_registry.unregister("Sink")


def test_no_outputs_names_the_layers_to_pass_to_outputs(tmp_path, sink_layer, run_cli):
    text = ENDING.replace('type: "Silence"', 'type: "Sink"')
    prototxt, caffemodel = write_net(tmp_path, text, BLOBS)
    with pytest.raises(StructureError) as error:
        caffe2keras.convert(prototxt, caffemodel)
    message = str(error.value)
    assert "the net has no outputs" in message and "'Silence' (Sink)" in message
    assert message.endswith("pass --outputs class8_ab")
    code, _, err = run_cli("convert", prototxt, caffemodel, tmp_path / "tail.keras")
    assert code == StructureError.exit_code and "--outputs class8_ab" in err
    assert not (tmp_path / "tail.keras").exists()
    code, _, err = run_cli("convert", prototxt, caffemodel, tmp_path / "tail.keras",
                           "--outputs", "class8_ab")
    assert code == 0, err
    assert keras.saving.load_model(tmp_path / "tail.keras").output.shape == (None, 7, 5, 2)


def test_no_layer_computing_anything_says_so(tmp_path):
    text = """name: "mute"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "mute" type: "Silence" bottom: "data" }
"""
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match="the net has no outputs: no layer computes a blob"):
        caffe2keras.convert(prototxt)
