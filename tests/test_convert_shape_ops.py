"""Crop, Slice, Reshape, Permute, Tile, ShuffleChannel, ArgMax and Reduction converted and compared
with tests/caffe_ref.py, one parameter variant at a time, plus the configurations that must be
refused (they would move, cut or reduce the batch axis).

Shapes are asymmetric (N != C != H != W) so that an axis mixed up between NCHW and NHWC changes
the numbers or the shape.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import caffe2keras
import caffe_ref as ref
from caffe2keras.errors import StructureError
from caffe2keras.layers import ArgMax, Crop, Reduction, Slice, Tile
from numpy_forward import assert_close, check_conversion, normal, to_caffe, to_keras, write_net

SHAPE = (2, 6, 5, 4)  # N, C, H, W


def one_layer(layer: str, **inputs: tuple[int, ...]) -> str:
    """A net with the given inputs (name -> Caffe shape) and one layer, written in prototxt."""
    lines = ['name: "one"']
    for name, shape in inputs.items():
        dims = " ".join(f"dim: {d}" for d in shape)
        lines.append(f'input: "{name}"\ninput_shape {{ {dims} }}')
    return "\n".join(lines) + "\n" + layer + "\n"


def run_tops(tmp_path, text: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Convert ``text`` (no weights) and return the model's outputs in Caffe's layout."""
    prototxt, _ = write_net(tmp_path, text)
    model = caffe2keras.convert(prototxt)
    feeds = [to_keras(inputs[t.name]) for t in model.inputs]
    outputs = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return [to_caffe(o) for o in outputs]


def refused(tmp_path, text: str, match: str) -> None:
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=match):
        caffe2keras.convert(prototxt)


# --- Reshape ------------------------------------------------------------------------------------

RESHAPES = {
    # id: (reshape_param, input shape, the reference's (shape, axis, num_axes))
    "zero_and_infer": ("shape { dim: 0 dim: 3 dim: -1 dim: 4 }", SHAPE, ((0, 3, -1, 4), 0, -1)),
    "to_2d": ("shape { dim: 0 dim: -1 }", SHAPE, ((0, -1), 0, -1)),
    "to_3d": ("shape { dim: 0 dim: -1 dim: 2 }", SHAPE, ((0, -1, 2), 0, -1)),
    "to_5d": ("shape { dim: 0 dim: 2 dim: 3 dim: 5 dim: 4 }", SHAPE, ((0, 2, 3, 5, 4), 0, -1)),
    "axis_num_axes": ("shape { dim: 30 } axis: 1 num_axes: 2", SHAPE, ((30,), 1, 2)),
    "negative_axis": ("shape { dim: 2 dim: 2 } axis: -2 num_axes: 1", SHAPE, ((2, 2), 3, 1)),
    "insert_axes": ("shape { dim: 1 dim: 1 } axis: 2 num_axes: 0", SHAPE, ((1, 1), 2, 0)),
    "from_2d_to_4d": ("shape { dim: 0 dim: 3 dim: 5 dim: 4 }", (2, 60), ((0, 3, 5, 4), 0, -1)),
    "from_3d_to_4d": ("shape { dim: 0 dim: 0 dim: 2 dim: -1 }", (2, 3, 10), ((0, 0, 2, -1), 0, -1)),
    "squeeze_to_2d": ("shape { dim: -1 } axis: 1", (2, 1, 1, 1), ((-1,), 1, -1)),
    "to_1d": ("shape { dim: 0 }", (2, 1, 1, 1), ((0,), 0, -1)),
}


@pytest.mark.parametrize("case", RESHAPES.values(), ids=RESHAPES.keys())
def test_reshape_matches_caffe(tmp_path, case):
    param, shape, (dims, axis, num_axes) = case
    x = normal(shape, seed=1)
    # the reference wants -1 resolved: numpy does it
    start = axis
    end = len(shape) if num_axes == -1 else start + num_axes
    replaced = [shape[start + i] if d == 0 else d for i, d in enumerate(dims)]
    want = x.reshape(shape[:start] + tuple(replaced) + shape[end:])
    text = one_layer(f'layer {{ name: "r" type: "Reshape" bottom: "data" top: "r" '
                     f'reshape_param {{ {param} }} }}', data=shape)
    check_conversion(tmp_path, text, None, {"data": x}, {"r": want})


def test_reshape_matches_the_caffe_reference_function(tmp_path):
    x = normal(SHAPE, seed=2)
    text = one_layer('layer { name: "r" type: "Reshape" bottom: "data" top: "r" '
                     'reshape_param { shape { dim: 0 dim: -1 dim: 10 } } }', data=SHAPE)
    check_conversion(tmp_path, text, None, {"data": x}, {"r": ref.reshape(x, (0, 12, 10))})


def test_reshape_to_the_same_shape_is_an_identity(tmp_path):
    x = normal(SHAPE, seed=3)
    text = one_layer('layer { name: "r" type: "Reshape" bottom: "data" top: "r" '
                     'reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: -1 } } }', data=SHAPE)
    model = check_conversion(tmp_path, text, None, {"data": x}, {"r": x})
    assert isinstance(model.get_layer("r"), keras.layers.Identity)


@pytest.mark.parametrize("param", ["shape { dim: -1 dim: 3 dim: 5 dim: 4 }",
                                   "shape { dim: 1 dim: -1 }",
                                   "shape { dim: 4 dim: 60 }"])
def test_reshape_moving_the_batch_axis_is_refused(tmp_path, param):
    text = one_layer(f'layer {{ name: "r" type: "Reshape" bottom: "data" top: "r" '
                     f'reshape_param {{ {param} }} }}', data=SHAPE)
    refused(tmp_path, text, "'r'.*batch")


# --- Permute ------------------------------------------------------------------------------------

PERMUTES = {
    "ssd_nhwc": ((0, 2, 3, 1), SHAPE),
    "nwch": ((0, 3, 1, 2), SHAPE),
    "swap_hw": ((0, 1, 3, 2), SHAPE),
    "hcw": ((0, 2, 1, 3), SHAPE),
    "hwc_reversed": ((0, 3, 2, 1), SHAPE),
    "partial": ((0, 3), SHAPE),
    "only_batch": ((0,), SHAPE),
    "identity": ((0, 1, 2, 3), SHAPE),
    "3d": ((0, 2, 1), (2, 3, 7)),
    "5d": ((0, 2, 1, 4, 3), (2, 2, 3, 5, 4)),
    "2d_identity": ((0, 1), (2, 7)),
}


@pytest.mark.parametrize("case", PERMUTES.values(), ids=PERMUTES.keys())
def test_permute_matches_caffe(tmp_path, case):
    order, shape = case
    x = normal(shape, seed=4)
    param = " ".join(f"order: {o}" for o in order)
    text = one_layer(f'layer {{ name: "p" type: "Permute" bottom: "data" top: "p" '
                     f'permute_param {{ {param} }} }}', data=shape)
    check_conversion(tmp_path, text, None, {"data": x}, {"p": ref.permute(x, order)})


@pytest.mark.parametrize("order", [(1, 0, 2, 3), (2, 0), (3, 2, 1, 0)])
def test_permute_moving_the_batch_axis_is_refused(tmp_path, order):
    param = " ".join(f"order: {o}" for o in order)
    text = one_layer(f'layer {{ name: "p" type: "Permute" bottom: "data" top: "p" '
                     f'permute_param {{ {param} }} }}', data=SHAPE)
    refused(tmp_path, text, "'p'.*batch")


def test_permute_then_flatten_keeps_caffes_order(tmp_path):
    """SSD's mbox heads: Permute(0, 2, 3, 1) then Flatten must give the H, W, C order."""
    x = normal(SHAPE, seed=5)
    text = one_layer("""
layer { name: "p" type: "Permute" bottom: "data" top: "p"
        permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "f" type: "Flatten" bottom: "p" top: "f" }""", data=SHAPE)
    check_conversion(tmp_path, text, None, {"data": x},
                     {"f": x.transpose(0, 2, 3, 1).reshape(2, -1)})


# --- Slice --------------------------------------------------------------------------------------

SLICES = {
    # id: (slice_param, number of tops, input shape, reference axis, reference points)
    "channels_points": ("axis: 1 slice_point: 1 slice_point: 4", 3, SHAPE, 1, [1, 4]),
    "legacy_slice_dim": ("slice_dim: 2 slice_point: 2", 2, SHAPE, 2, [2]),
    "legacy_default": ("slice_point: 2", 2, SHAPE, 1, [2]),
    "width_equal": ("axis: -1", 2, SHAPE, 3, None),
    "channels_equal_3": ("", 3, SHAPE, 1, None),
    "3d_last": ("axis: 2 slice_point: 1 slice_point: 3", 3, (2, 3, 5), 2, [1, 3]),
    "2d": ("axis: 1 slice_point: 4", 2, (2, 7), 1, [4]),
}


@pytest.mark.parametrize("case", SLICES.values(), ids=SLICES.keys())
def test_slice_matches_caffe(tmp_path, case):
    param, n_tops, shape, axis, points = case
    x = normal(shape, seed=6)
    tops = " ".join(f'top: "s{i}"' for i in range(n_tops))
    text = one_layer(f'layer {{ name: "s" type: "Slice" bottom: "data" {tops} '
                     f'slice_param {{ {param} }} }}', data=shape)
    got = run_tops(tmp_path, text, {"data": x})
    want = ref.slice(x, axis=axis, slice_points=points, num_tops=n_tops)
    assert len(got) == n_tops
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, f"top {i}")


def test_slice_with_one_top_is_an_identity(tmp_path):
    x = normal(SHAPE, seed=7)
    text = one_layer('layer { name: "s" type: "Slice" bottom: "data" top: "s0" }', data=SHAPE)
    model = check_conversion(tmp_path, text, None, {"data": x}, {"s": x})
    assert isinstance(model.get_layer("s"), keras.layers.Identity)


def test_slice_tops_feed_other_layers(tmp_path):
    x = normal(SHAPE, seed=8)
    text = one_layer("""
layer { name: "s" type: "Slice" bottom: "data" top: "a" top: "b" slice_param { slice_point: 2 } }
layer { name: "abs" type: "AbsVal" bottom: "b" top: "abs" }
layer { name: "cat" type: "Concat" bottom: "abs" bottom: "a" top: "cat" }""", data=SHAPE)
    a, b = x[:, :2], x[:, 2:]
    check_conversion(tmp_path, text, None, {"data": x},
                     {"abs": ref.absval(b), "cat": ref.concat([ref.absval(b), a])})


@pytest.mark.parametrize("param", ["axis: 0", "slice_dim: 0 slice_point: 1"])
def test_slice_of_the_batch_axis_is_refused(tmp_path, param):
    text = one_layer(f'layer {{ name: "s" type: "Slice" bottom: "data" top: "a" top: "b" '
                     f'slice_param {{ {param} }} }}', data=SHAPE)
    refused(tmp_path, text, "'s'.*batch")


# --- Crop ---------------------------------------------------------------------------------------

CROPS = {
    # id: (crop_param, input shape, reference shape, reference's axis and offsets)
    "default_axis_two_offsets": ("offset: 0 offset: 1", SHAPE, (2, 5, 4, 3), 2, (0, 1)),
    "default_axis_one_offset": ("offset: 1", SHAPE, (2, 5, 3, 2), 2, (1,)),
    "no_offset": ("", SHAPE, (2, 1, 3, 2), 2, ()),
    "axis_1_one_offset": ("axis: 1 offset: 1", SHAPE, (2, 5, 4, 3), 1, (1,)),
    "axis_1_per_axis": ("axis: 1 offset: 2 offset: 0 offset: 1", SHAPE, (2, 3, 5, 2), 1, (2, 0, 1)),
    "axis_3": ("axis: 3 offset: 2", SHAPE, (2, 1, 7, 2), 3, (2,)),
    "axis_-1": ("axis: -1 offset: 1", SHAPE, (2, 6, 5, 3), 3, (1,)),
    "reference_2d_channels": ("axis: 1 offset: 3", (2, 6), (2, 3), 1, (3,)),
    "3d": ("axis: 1 offset: 1 offset: 2", (2, 6, 5), (2, 4, 3), 1, (1, 2)),
    "fcn_style": ("axis: 2 offset: 19", (2, 3, 60, 50), (2, 5, 22, 31), 2, (19,)),
}


@pytest.mark.parametrize("case", CROPS.values(), ids=CROPS.keys())
def test_crop_matches_caffe(tmp_path, case):
    param, shape, ref_shape, axis, offsets = case
    x, r = normal(shape, seed=9), normal(ref_shape, seed=10)
    text = one_layer(f'layer {{ name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "c" '
                     f'crop_param {{ {param} }} }}', data=shape, ref=ref_shape)
    check_conversion(tmp_path, text, None, {"data": x, "ref": r},
                     {"c": ref.crop(x, ref_shape, axis=axis, offset=offsets)})


def test_crop_that_cuts_nothing_passes_the_input(tmp_path):
    x, r = normal(SHAPE, seed=11), normal(SHAPE, seed=12)
    text = one_layer('layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "c" }',
                     data=SHAPE, ref=SHAPE)
    check_conversion(tmp_path, text, None, {"data": x, "ref": r}, {"c": x})


def test_crop_of_the_batch_axis_is_refused(tmp_path):
    text = one_layer('layer { name: "c" type: "Crop" bottom: "data" bottom: "ref" top: "c" '
                     'crop_param { axis: 0 offset: 1 offset: 0 offset: 0 offset: 0 } }',
                     data=SHAPE, ref=(1, 6, 5, 4))
    refused(tmp_path, text, "'c'.*batch")


# --- Tile ---------------------------------------------------------------------------------------

TILES = {
    "channels_default_axis": ("tiles: 2", SHAPE, 1, 2),
    "height": ("axis: 2 tiles: 3", SHAPE, 2, 3),
    "width_negative": ("axis: -1 tiles: 2", SHAPE, 3, 2),
    "one_tile": ("axis: 3 tiles: 1", SHAPE, 3, 1),
    "batch": ("axis: 0 tiles: 2", SHAPE, 0, 2),
    "3d": ("axis: 2 tiles: 4", (2, 3, 5), 2, 4),
    "2d": ("tiles: 3", (2, 7), 1, 3),
}


@pytest.mark.parametrize("case", TILES.values(), ids=TILES.keys())
def test_tile_matches_caffe(tmp_path, case):
    param, shape, axis, tiles = case
    x = normal(shape, seed=13)
    text = one_layer(f'layer {{ name: "t" type: "Tile" bottom: "data" top: "t" '
                     f'tile_param {{ {param} }} }}', data=shape)
    check_conversion(tmp_path, text, None, {"data": x}, {"t": ref.tile(x, axis, tiles)})


# --- ShuffleChannel -----------------------------------------------------------------------------

SHUFFLES = {"g2": (2, SHAPE), "g3": (3, SHAPE), "g1": (1, SHAPE), "g_equals_c": (6, SHAPE),
            "2d": (3, (2, 6)), "3d": (2, (2, 6, 5))}


@pytest.mark.parametrize("case", SHUFFLES.values(), ids=SHUFFLES.keys())
def test_shuffle_channel_matches_shufflenet(tmp_path, case):
    group, shape = case
    x = normal(shape, seed=14)
    text = one_layer(f'layer {{ name: "sh" type: "ShuffleChannel" bottom: "data" top: "sh" '
                     f'shuffle_channel_param {{ group: {group} }} }}', data=shape)
    check_conversion(tmp_path, text, None, {"data": x}, {"sh": ref.shuffle_channel(x, group)})


def test_shuffle_channel_equals_shufflenets_reshape_permute_reshape(tmp_path):
    """The layer stands for Reshape(N, g, C/g, H, W) -> Permute(0, 2, 1, 3, 4) -> Reshape; the
    golden fixture shape_ops checks those three against real Caffe (which has no
    ShuffleChannel)."""
    x = normal(SHAPE, seed=15)
    text = one_layer("""
layer { name: "split" type: "Reshape" bottom: "data" top: "split"
        reshape_param { shape { dim: 0 dim: 3 dim: 2 dim: 5 dim: 4 } } }
layer { name: "swap" type: "Permute" bottom: "split" top: "swap"
        permute_param { order: 0 order: 2 order: 1 order: 3 order: 4 } }
layer { name: "merge" type: "Reshape" bottom: "swap" top: "merge"
        reshape_param { shape { dim: 0 dim: -1 dim: 5 dim: 4 } } }
layer { name: "sh" type: "ShuffleChannel" bottom: "data" top: "sh"
        shuffle_channel_param { group: 3 } }""", data=SHAPE)
    want = ref.shuffle_channel(x, 3)
    check_conversion(tmp_path, text, None, {"data": x}, {"merge": want, "sh": want})


# --- ArgMax -------------------------------------------------------------------------------------

def ties(shape, seed):
    """Values from {-1, 0, 1, 2}: many equal values, so the tie order is tested."""
    return np.random.default_rng(seed).integers(-1, 3, shape).astype(np.float32)


ARGMAXES = {
    # id: (argmax_param, input shape, top_k, out_max_val, axis)
    "defaults": ("", SHAPE, 1, False, None),
    "flat_top3_values": ("top_k: 3 out_max_val: true", SHAPE, 3, True, None),
    "flat_top5": ("top_k: 5", SHAPE, 5, False, None),
    "channels": ("axis: 1", SHAPE, 1, False, 1),
    "channels_top2_values": ("axis: 1 top_k: 2 out_max_val: true", SHAPE, 2, True, 1),
    "height_top3": ("axis: 2 top_k: 3", SHAPE, 3, False, 2),
    "width_negative": ("axis: -1 top_k: 2", SHAPE, 2, False, 3),
    "2d_flat": ("top_k: 2 out_max_val: true", (2, 7), 2, True, None),
    "2d_axis": ("axis: 1 top_k: 4", (2, 7), 4, False, 1),
    "3d_flat": ("top_k: 4", (2, 3, 5), 4, False, None),
    "3d_axis": ("axis: 2 top_k: 2 out_max_val: true", (2, 3, 5), 2, True, 2),
    "1d": ("", (3,), 1, False, None),
    "5d_flat": ("top_k: 2", (2, 2, 3, 2, 2), 2, False, None),
}


@pytest.mark.parametrize("with_ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("case", ARGMAXES.values(), ids=ARGMAXES.keys())
def test_argmax_matches_caffe(tmp_path, case, with_ties):
    param, shape, top_k, out_max_val, axis = case
    x = ties(shape, seed=16) if with_ties else normal(shape, seed=16)
    text = one_layer(f'layer {{ name: "a" type: "ArgMax" bottom: "data" top: "a" '
                     f'argmax_param {{ {param} }} }}', data=shape)
    check_conversion(tmp_path, text, None, {"data": x},
                     {"a": ref.argmax(x, top_k, out_max_val, axis)})


def test_argmax_along_the_batch_axis_is_refused(tmp_path):
    text = one_layer('layer { name: "a" type: "ArgMax" bottom: "data" top: "a" '
                     'argmax_param { axis: 0 } }', data=SHAPE)
    refused(tmp_path, text, "'a'.*batch")


# --- Reduction ----------------------------------------------------------------------------------

@pytest.mark.parametrize("operation", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis,coeff,shape", [(1, 1.0, SHAPE), (2, -0.5, SHAPE), (3, 2.0, SHAPE),
                                              (-2, 1.0, SHAPE), (1, 3.0, (2, 7)),
                                              (2, 0.25, (2, 3, 5)), (1, 1.0, (2, 3, 5))])
def test_reduction_matches_caffe(tmp_path, operation, axis, coeff, shape):
    x = normal(shape, seed=17)
    text = one_layer(f'layer {{ name: "r" type: "Reduction" bottom: "data" top: "r" '
                     f'reduction_param {{ operation: {operation} axis: {axis} '
                     f'coeff: {coeff} }} }}', data=shape)
    check_conversion(tmp_path, text, None, {"data": x},
                     {"r": ref.reduction(x, operation, axis, coeff)})


@pytest.mark.parametrize("param", ["", "axis: 0 operation: MEAN", "axis: -4"])
def test_reduction_over_the_batch_axis_is_refused(tmp_path, param):
    """Caffe's default axis is 0: one number for the whole batch."""
    text = one_layer(f'layer {{ name: "r" type: "Reduction" bottom: "data" top: "r" '
                     f'reduction_param {{ {param} }} }}', data=SHAPE)
    refused(tmp_path, text, "'r'.*batch")


# --- the custom layers on their own -------------------------------------------------------------

def _model_with_every_shape_layer():
    x = keras.Input((5, 4, 6), name="x")
    r = keras.Input((3, 2, 6), name="r")
    crop = Crop(axes=[1, 2], offsets=[1, 2], sizes=[3, 2], name="crop")([x, r])
    a, b = Slice(axis=-1, points=[2], name="slice")(crop)
    tiled = Tile(axis=1, tiles=2, name="tile")(b)
    top = ArgMax(top_k=2, axis=3, name="argmax")(tiled)
    flat = ArgMax(top_k=3, out_max_val=True, name="argmax_flat")(a)
    total = Reduction("MEAN", axes=[1, 2], coeff=-2.0, name="reduce")(tiled)
    return keras.Model([x, r], [top, flat, total])


@pytest.mark.parametrize("layer", [
    Crop(axes=[1, 3], offsets=[0, 2], sizes=[3, 1]),
    Slice(axis=2, points=[1, 3]),
    Tile(axis=-1, tiles=3),
    ArgMax(),
    ArgMax(top_k=3, out_max_val=True, axis=2),
    Reduction("SUMSQ", axes=[2, 3], coeff=0.5),
], ids=lambda layer: type(layer).__name__)
def test_shape_layer_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_shape_layers_save_and_load_in_safe_mode(tmp_path, suffix):
    model = _model_with_every_shape_layer()
    feeds = [normal((2, 5, 4, 6), seed=18), normal((2, 3, 2, 6), seed=19)]
    want = model.predict(feeds, verbose=0)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    for got, expected in zip(loaded.predict(feeds, verbose=0), want):
        np.testing.assert_array_equal(got, expected)


def test_shape_layers_compute_what_they_declare():
    model = _model_with_every_shape_layer()
    assert [tuple(o.shape) for o in model.outputs] == [(None, 6, 2, 2), (None, 2, 3),
                                                         (None, 4)]
    x = normal((2, 5, 4, 6), seed=20)
    top, flat, total = model.predict([x, normal((2, 3, 2, 6), seed=21)], verbose=0)
    crop = x[:, 1:4, 2:4, :]
    tiled = np.concatenate([crop[..., 2:]] * 2, axis=1)
    assert_close(top, ref.argmax(tiled, 2, False, 3))
    assert_close(flat, ref.argmax(crop[..., :2], 3, True).reshape(2, 2, 3))
    assert_close(total, -2.0 * tiled.mean(axis=(1, 2)))


@pytest.mark.parametrize("make,message", [
    (lambda: Crop(axes=[1], offsets=[0, 1], sizes=[2]), "one offset and one size"),
    (lambda: Crop(axes=[0], offsets=[0], sizes=[2]), "axes must be ints >= 1"),
    (lambda: Slice(axis=1, points=[3, 2]), "strictly increasing"),
    (lambda: Slice(axis=1, points=[]), "strictly increasing"),
    (lambda: Tile(axis=1, tiles=0), "positive"),
    (lambda: ArgMax(top_k=0), "top_k"),
    (lambda: Reduction("PROD"), "operation"),
    (lambda: Reduction("SUM", axes=[0]), "axes must be ints >= 1"),
])
def test_shape_layers_reject_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("layer,shape,message", [
    (Slice(axis=1, points=[5]), (2, 5, 3), "inside axis"),
    (Slice(axis=0, points=[1]), (2, 5, 3), "non-batch"),
    (Crop(axes=[1], offsets=[3], sizes=[3]), (2, 5, 3), "does not fit"),
    (ArgMax(top_k=4, axis=2), (2, 5, 3), "exceeds"),
    (ArgMax(top_k=16), (2, 5, 3), "exceeds"),
])
def test_shape_layers_reject_inputs_that_do_not_fit(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(keras.Input(shape[1:]))


def test_reduction_of_a_5d_blob_to_4d_comes_out_nhwc(tmp_path):
    """Found by fuzzing: Reduction over the last axis of a 5-D blob gives a 4-D blob, which the
    next layer expects in NHWC like every 4-D blob."""
    import caffe2keras
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(
        'input: "data" input_shape { dim: 2 dim: 3 dim: 4 dim: 5 dim: 6 }\n'
        'layer { name: "sum" type: "Reduction" bottom: "data" top: "sum" '
        'reduction_param { operation: SUM axis: 4 coeff: -1.5 } }\n'
        'layer { name: "act" type: "PReLU" bottom: "sum" top: "act" }\n')
    model = caffe2keras.convert(str(prototxt))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    reduced = model.get_layer("sum").output
    assert tuple(reduced.shape) == (None, 4, 5, 3)
    from keras import Model
    got = Model(model.inputs, reduced).predict(x, verbose=0)
    np.testing.assert_allclose(got, (-1.5 * x.sum(axis=4)).transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
