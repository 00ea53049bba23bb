"""Caffe's input transform inside the model: the layer, the mean rules, the API, the CLI and the
``mean`` command."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2keras
from caffe2keras.errors import OutputError, ParseError, StructureError
from caffe2keras.ir import Net
from caffe2keras.layers import CaffePreprocess
from caffe2keras.preprocess import Preprocess, read_mean, resolve
from caffe2keras.proto import caffe_pb2
from caffe2keras.verify import load_activations, to_caffe_layout
from numpy_forward import write_net

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CAFFENET = (str(FIXTURES / "caffenet" / "deploy.prototxt"),
            str(FIXTURES / "caffenet" / "weights.caffemodel"))


def caffe_transform(images_nhwc, channel_swap=(2, 1, 0), raw_scale=1.0, mean=None, scale=1.0):
    """pycaffe's Transformer.preprocess / DataTransformer on a batch, float32, NCHW out."""
    x = np.asarray(images_nhwc, np.float32).transpose(0, 3, 1, 2)
    if channel_swap is not None:
        x = x[:, list(channel_swap)]
    x = x * np.float32(raw_scale)
    if mean is not None:
        x = x - (mean[:, None, None] if mean.ndim == 1 else mean)  # (C,) or (C, H, W)
    return x * np.float32(scale)


def write_mean(path: Path, array: np.ndarray) -> str:
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(array.shape)
    blob.data.extend(np.asarray(array, np.float32).ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return str(path)


def uniform(shape, seed, low=0.0, high=255.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


# --- the layer ----------------------------------------------------------------------------------

LAYER_CASES = {
    "rgb_to_bgr_pixel_mean_raw_scale_scale": dict(channel_swap=(2, 1, 0), raw_scale=255.0,
                                                  mean="pixel", scale=0.017),
    "channel_mean": dict(channel_swap=(2, 1, 0), raw_scale=1.0, mean="channel", scale=1.0),
    "no_mean_other_order": dict(channel_swap=(1, 2, 0), raw_scale=1.0, mean=None, scale=0.5),
    "no_swap": dict(channel_swap=None, raw_scale=2.0, mean="channel", scale=3.0),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_is_caffes_transform_bit_for_bit(case):
    options = LAYER_CASES[case]
    images = uniform((2, 5, 4, 3), 1, high=1.0 if options["raw_scale"] == 255.0 else 255.0)
    mean = {"pixel": uniform((3, 5, 4), 2, 80, 140), "channel": np.float32([104, 117, 123]),
            None: None}[options["mean"]]
    layer = CaffePreprocess(channel_swap=options["channel_swap"], raw_scale=options["raw_scale"],
                            scale=options["scale"],
                            mean_shape=None if mean is None else (mean.shape if mean.ndim == 1
                                                                  else (5, 4, 3)))
    layer.build((None, 5, 4, 3))
    if mean is not None:
        layer.set_weights([mean if mean.ndim == 1 else mean.transpose(1, 2, 0)])
    got = to_caffe_layout(keras.ops.convert_to_numpy(layer(images)))
    want = caffe_transform(images, options["channel_swap"], options["raw_scale"], mean,
                           options["scale"])
    assert np.array_equal(got, want)


def test_layer_config_round_trip_and_record():
    layer = CaffePreprocess(channel_swap=[2, 1, 0], raw_scale=255, mean_shape=(5, 4, 3),
                            scale=0.5, mean_source="mean.binaryproto, 7x6 center-cropped to 5x4",
                            name="data_preprocess")
    config = layer.get_config()
    assert config["channel_swap"] == [2, 1, 0] and config["mean_shape"] == [5, 4, 3]
    assert config["raw_scale"] == 255.0 and config["scale"] == 0.5 and not config["trainable"]
    again = CaffePreprocess.from_config(config)
    assert again.get_config() == config
    assert again.describe() == ("channels reordered [2, 1, 0] (RGB -> BGR), then times 255, then "
                                "minus the mean (per pixel, mean.binaryproto, 7x6 center-cropped "
                                "to 5x4), then times 0.5")
    assert CaffePreprocess(channel_swap=None).describe() == "identity"
    assert layer.compute_output_shape((None, 5, 4, 3)) == (None, 5, 4, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(channel_swap=[0, 0, 1]), "permutation"),
    (dict(channel_swap=[2, 1, 0.0]), "permutation"),
    (dict(mean_shape=(3, 2)), "mean_shape"),
    (dict(mean_shape=(0,)), "mean_shape"),
    (dict(raw_scale=float("nan")), "raw_scale"),
    (dict(scale="1"), "scale"),
])
def test_layer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CaffePreprocess(**kwargs)


@pytest.mark.parametrize("kwargs, shape", [
    (dict(channel_swap=[1, 0]), (None, 5, 4, 3)),
    (dict(mean_shape=(4,)), (None, 5, 4, 3)),
    (dict(mean_shape=(5, 5, 3)), (None, 5, 4, 3)),
    (dict(), (None, 12)),
])
def test_layer_rejects_inputs_it_does_not_fit(kwargs, shape):
    with pytest.raises(ValueError, match="CaffePreprocess"):
        CaffePreprocess(**kwargs).build(shape)


# --- the mean ------------------------------------------------------------------------------------

def image_net(shape=(2, 3, 5, 6)) -> Net:
    return Net(name="n", inputs={"data": shape}, layers=[])


def test_mean_sources(tmp_path):
    image = uniform((1, 3, 8, 9), 3, 90, 130)
    array, source = read_mean(write_mean(tmp_path / "m.binaryproto", image))
    assert array.shape == (3, 8, 9) and source == "m.binaryproto"
    assert np.array_equal(array, image[0])
    np.save(tmp_path / "m.npy", image[0].astype(np.float64))
    array, source = read_mean(str(tmp_path / "m.npy"))
    assert array.dtype == np.float32 and np.array_equal(array, image[0]) and source == "m.npy"
    array, source = read_mean((104, 117, 123.5))
    assert np.array_equal(array, np.float32([104, 117, 123.5])) and source == "values"
    assert read_mean(None) == (None, "")


def test_mean_image_is_center_cropped_like_caffes_data_layer(tmp_path):
    """DataTransformer at test time: h_off = (H_mean - H) / 2, w_off = (W_mean - W) / 2."""
    image = uniform((1, 3, 8, 9), 4, 90, 130)
    spec = Preprocess(mean=write_mean(tmp_path / "m.binaryproto", image))
    name, transform = resolve(spec, image_net((2, 3, 5, 6)))
    assert name == "data"
    assert np.array_equal(transform.mean, image[0, :, 1:6, 1:7].transpose(1, 2, 0))
    assert transform.mean_source == "m.binaryproto, 8x9 center-cropped to 5x6"
    _, same_size = resolve(spec, image_net((2, 3, 8, 9)))
    assert np.array_equal(same_size.mean, image[0].transpose(1, 2, 0))
    assert same_size.mean_source == "m.binaryproto, 8x9"


def test_single_value_and_one_by_one_image_are_per_channel():
    _, transform = resolve(Preprocess(mean=(128,)), image_net())
    assert np.array_equal(transform.mean, np.float32([128, 128, 128]))
    _, transform = resolve(Preprocess(mean=np.float32([1, 2, 3]).reshape(1, 3, 1, 1)), image_net())
    assert np.array_equal(transform.mean, np.float32([1, 2, 3]))


@pytest.mark.parametrize("mean, message", [
    (np.zeros((3, 4, 6), np.float32), "smaller than the input's 5x6"),
    (np.zeros((3, 5, 5), np.float32), "smaller"),
    (np.zeros((4, 5, 6), np.float32), "4 channels, the input 3"),
    ((1.0, 2.0), "2 values for an input of 3 channels"),
    (np.zeros((2, 3, 5, 6), np.float32), "shape"),
    (np.float32([1, np.nan, 2]), "finite"),
])
def test_means_that_do_not_fit_are_refused(mean, message):
    with pytest.raises(StructureError, match=message):
        resolve(Preprocess(mean=mean), image_net())


def test_unreadable_mean_files(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ParseError, match="bad.npy"):
        read_mean(str(tmp_path / "bad.npy"))
    (tmp_path / "text.binaryproto").write_text('name: "a prototxt"\nlayer {}\n')
    with pytest.raises(ParseError, match="text file"):
        read_mean(str(tmp_path / "text.binaryproto"))
    with pytest.raises(ParseError, match="cannot read"):
        read_mean(str(tmp_path / "missing.binaryproto"))


@pytest.mark.parametrize("kwargs", [dict(scale=0), dict(raw_scale=float("inf")),
                                    dict(channel_swap=(0, 2)), dict(scale=True)])
def test_preprocess_options_are_checked(kwargs):
    with pytest.raises(ValueError):
        Preprocess(**kwargs)


# --- which input ---------------------------------------------------------------------------------

TWO_INPUTS = """
name: "two"
input: "side"
input_shape { dim: 2 dim: 4 }
input: "data"
input_shape { dim: 2 dim: 1 dim: 5 dim: 6 }
layer { name: "data_preprocess" type: "ReLU" bottom: "data" top: "r" }
layer { name: "fc" type: "InnerProduct" bottom: "side" top: "fc"
        inner_product_param { num_output: 2 } }
"""


def test_the_first_image_input_is_transformed_and_names_do_not_clash(tmp_path):
    prototxt, caffemodel = write_net(tmp_path, TWO_INPUTS,
                                     {"fc": [np.ones((2, 4), np.float32), np.zeros(2, np.float32)]})
    with pytest.raises(StructureError, match="1 channel.*none"):
        caffe2keras.convert(prototxt, caffemodel, preprocess=Preprocess())
    model = caffe2keras.convert(prototxt, caffemodel,
                                preprocess=Preprocess(mean=(0.5,), scale=2.0, channel_swap=None))
    assert [t.name for t in model.inputs] == ["side", "data"]
    layer = model.get_layer("data_preprocess_2")
    assert isinstance(layer, CaffePreprocess)
    x = uniform((3, 5, 6, 1), 5, -1, 1)
    _, relu = model.predict([np.zeros((3, 4), np.float32), x], verbose=0)  # outputs: fc, r
    assert np.array_equal(relu, np.maximum((x - np.float32(0.5)) * np.float32(2), 0))
    with pytest.raises(StructureError, match="'side' is \\(2, 4\\)"):
        caffe2keras.convert(prototxt, caffemodel, preprocess=Preprocess(input="side"))
    with pytest.raises(StructureError, match="'image' is not one of"):
        caffe2keras.convert(prototxt, caffemodel, preprocess=Preprocess(input="image"))


# --- against real Caffe -------------------------------------------------------------------------

def test_rgb_images_through_the_model_give_caffes_blobs(tmp_path):
    """RGB images that Caffe's transform (swap, minus a center-cropped 110x100 mean, times
    0.5) turns into the golden input give the golden blobs."""
    manifest, arrays = load_activations(str(FIXTURES / "caffenet" / "golden.npz"))
    caffe_input = arrays[manifest["inputs"][0]["key"]]  # (2, 3, 103, 87), BGR
    mean = uniform((1, 3, 110, 100), 6, 90, 130)
    cropped = mean[0, :, 3:106, 6:93]
    bgr = caffe_input / np.float32(0.5) + cropped
    rgb = bgr[:, ::-1].transpose(0, 2, 3, 1)
    assert np.allclose(caffe_transform(rgb, mean=cropped, scale=0.5), caffe_input, atol=1e-5)
    spec = Preprocess(mean=write_mean(tmp_path / "mean.binaryproto", mean), scale=0.5)
    model = caffe2keras.convert(*CAFFENET, preprocess=spec)
    probe = keras.Model(model.input, [model.get_layer("conv1").output, model.output])
    conv1, prob = probe.predict(rgb, verbose=0)
    blobs = {entry["layer"]: arrays[entry["key"]] for entry in manifest["blobs"]}
    for name, got in (("conv1", to_caffe_layout(conv1)), ("prob", prob)):
        want = blobs[name]
        assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)), name


# --- the command line ----------------------------------------------------------------------------

def test_cli_embeds_the_transform_and_saves_its_record(tmp_path, run_cli):
    mean_file = write_mean(tmp_path / "mean.binaryproto", uniform((1, 3, 110, 100), 7, 90, 130))
    output = tmp_path / "model.keras"
    code, out, err = run_cli("convert", *CAFFENET, output, "--preprocess", "--mean", mean_file,
                             "--scale", "0.5", "--raw-scale", "255")
    assert code == 0, err
    assert "preprocess  channels reordered [2, 1, 0] (RGB -> BGR), then times 255" in err
    loaded = keras.models.load_model(output, safe_mode=True)
    layer = loaded.get_layer("data_preprocess")
    config = layer.get_config()
    assert (config["channel_swap"], config["raw_scale"], config["scale"]) == ([2, 1, 0], 255, 0.5)
    assert config["mean_shape"] == [103, 87, 3]
    assert config["mean_source"] == "mean.binaryproto, 110x100 center-cropped to 103x87"
    in_process = caffe2keras.convert(*CAFFENET, preprocess=Preprocess(
        mean=mean_file, scale=0.5, raw_scale=255))
    images = uniform((2, 103, 87, 3), 8, 0, 1)
    assert np.array_equal(loaded.predict(images, verbose=0), in_process.predict(images, verbose=0))


def test_cli_values_and_no_channel_swap(tmp_path, run_cli):
    output = tmp_path / "model.h5"
    code, _, err = run_cli("convert", *CAFFENET, output, "--preprocess", "--mean", "104,117,123",
                           "--channel-swap", "none")
    assert code == 0, err
    layer = keras.models.load_model(output, safe_mode=True).get_layer("data_preprocess")
    assert layer.channel_swap is None and layer.mean_shape == (3,)
    assert np.array_equal(layer.get_weights()[0], np.float32([104, 117, 123]))


@pytest.mark.parametrize("arguments, message", [
    (["--mean", "104,117,123"], "--mean need(s) --preprocess"),
    (["--scale", "2", "--channel-swap", "none"], "--scale, --channel-swap need(s) --preprocess"),
    (["--preprocess", "--channel-swap", "0,0,1"], "permutation"),
    (["--preprocess", "--scale", "0"], "nonzero"),
    (["--preprocess", "--raw-scale", "x"], "nonzero"),
])
def test_cli_preprocess_usage_errors(tmp_path, run_cli, arguments, message):
    code, out, err = run_cli("convert", *CAFFENET, tmp_path / "m.keras", *arguments)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and err.startswith("caffe2keras convert: error:")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("arguments, code, message", [
    (["--channel-swap", "1,0"], StructureError.exit_code, "does not fit input 'data'"),
    (["--mean", "MEAN_SMALL"], StructureError.exit_code, "smaller than the input's 103x87"),
    (["--mean", "missing.binaryproto"], ParseError.exit_code, "cannot read"),
])
def test_cli_preprocess_errors_write_nothing(tmp_path, run_cli, arguments, code, message):
    (tmp_path / "in").mkdir()
    small = write_mean(tmp_path / "in" / "small.binaryproto", uniform((1, 3, 100, 100), 9))
    arguments = [small if a == "MEAN_SMALL" else a for a in arguments]
    got, _, err = run_cli("convert", *CAFFENET, tmp_path / "m.keras", "--preprocess", *arguments)
    assert got == code and message in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == ["in"]


# --- caffe2keras mean ----------------------------------------------------------------------------

def test_mean_command_prints_and_writes_npy(tmp_path, run_cli):
    image = uniform((1, 3, 6, 5), 10, 90, 130)
    source = write_mean(tmp_path / "mean.binaryproto", image)
    code, out, err = run_cli("mean", source, tmp_path / "mean.npy")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{source}: 3x6x5 (C, H, W)"
    values = [float(v) for v in lines[1].rpartition(": ")[2].split(",")]
    assert np.allclose(values, image[0].mean(axis=(1, 2)), rtol=1e-5)
    saved = np.load(tmp_path / "mean.npy")
    assert saved.dtype == np.float32 and np.array_equal(saved, image[0])
    # The printed values are accepted by --mean.
    code, _, err = run_cli("convert", *CAFFENET, tmp_path / "m.keras", "--preprocess", "--mean",
                           lines[1].rpartition(": ")[2])
    assert code == 0, err


def test_mean_command_errors(tmp_path, run_cli):
    source = write_mean(tmp_path / "mean.binaryproto", uniform((1, 3, 6, 5), 11))
    code, _, err = run_cli("mean", source, tmp_path / "mean.txt")
    assert code == OutputError.exit_code and ".npy" in err
    code, _, err = run_cli("mean", CAFFENET[0])
    assert code == ParseError.exit_code and "text file" in err
    assert sorted(os.listdir(tmp_path)) == ["mean.binaryproto"]
