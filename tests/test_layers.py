"""The custom Keras layers against tests/caffe_ref.py (Caffe's formulas in NCHW).

Inputs are made in Caffe's NCHW layout, transposed to NHWC for Keras, and the outputs transposed
back. Shapes are asymmetric on purpose (N != C != H != W, pad_h != pad_w, stride_h != stride_w).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import caffe_ref as ref
from caffe2keras.layers import (LRN, AbsVal, Bias, BiasByInput, CaffePooling2D, Exp, Log, Power,
                                Scale, ScaleByInput, Threshold, WeightedSum)


def to_nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def to_nchw(y):
    return np.transpose(np.asarray(y), (0, 3, 1, 2))


def assert_close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    err = np.max(np.abs(got[finite] - want[finite]), initial=0.0)
    bound = 1e-5 * max(1.0, np.max(np.abs(want[finite]), initial=0.0))
    assert err <= bound, f"max |err| {err:.3g} > {bound:.3g}"


def nchw_input(shape, seed=0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) + shift).astype(np.float32)


def run_nchw(layer, x):
    return to_nchw(layer(to_nhwc(x)))


def assert_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is type(layer)
    assert revived.get_config() == config


# --- LRN ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("region", ["across_channels", "within_channel"])
@pytest.mark.parametrize("channels,local_size", [(3, 5), (7, 3), (7, 5), (2, 1)])
def test_lrn_matches_caffe(region, channels, local_size):
    x = 2.0 * nchw_input((2, channels, 4, 6), seed=channels)
    layer = LRN(local_size=local_size, alpha=0.3, beta=0.6, k=2.0, norm_region=region)
    want = ref.lrn(x, local_size, 0.3, 0.6, 2.0, region)
    assert_close(run_nchw(layer, x), want)


def test_lrn_defaults_and_config():
    x = nchw_input((3, 6, 5, 2))
    layer = LRN()
    assert_close(run_nchw(layer, x), ref.lrn(x))
    assert_config_round_trip(LRN(local_size=3, alpha=1e-4, beta=0.75, k=2.0,
                                 norm_region="within_channel"))


@pytest.mark.parametrize("kwargs,message", [
    (dict(local_size=4), "odd"),
    (dict(local_size=0), "odd"),
    (dict(norm_region="ACROSS"), "norm_region"),
])
def test_lrn_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRN(**kwargs)


# --- pooling ------------------------------------------------------------------------------------

POOL_CASES = [
    # (H, W), kernel, stride, pad, round_mode
    ((7, 10), (3, 2), (2, 3), (1, 1), "ceil"),   # ceil overhang on both axes
    ((7, 10), (3, 3), (2, 2), (1, 0), "ceil"),
    ((7, 10), (2, 3), (3, 2), (0, 2), "ceil"),
    ((7, 10), (3, 2), (2, 3), (1, 1), "floor"),  # after-padding negative: crop
    ((7, 10), (4, 4), (3, 3), (2, 1), "ceil"),   # last-window clip rule fires
    ((6, 9), (5, 3), (4, 2), (2, 1), "ceil"),
    ((7, 10), (3, 3), (1, 1), (1, 1), "ceil"),   # 'same'-like
    ((6, 8), (2, 2), (2, 2), (0, 0), "ceil"),
    ((5, 9), (1, 1), (2, 3), (0, 0), "floor"),
    ((4, 5), (2, 1), (1, 3), (1, 0), "ceil"),    # pad_h alone clips the columns too: 5x2
]


def _pool(pool, hw, kernel, stride, pad, round_mode):
    out = ref.pooled_shape(hw, kernel, stride, pad, round_mode)
    return CaffePooling2D(pool=pool, kernel=kernel, stride=stride, pad=pad, output_size=out)


@pytest.mark.parametrize("pool", ["max", "ave"])
@pytest.mark.parametrize("hw,kernel,stride,pad,round_mode", POOL_CASES)
def test_pooling_matches_caffe(pool, hw, kernel, stride, pad, round_mode):
    # All-negative input: zero padding would win every border window of a MAX pool.
    x = nchw_input((2, 3, *hw), seed=sum(hw), shift=-4.0)
    layer = _pool(pool, hw, kernel, stride, pad, round_mode)
    want = ref.pooling(x, pool, kernel, stride, pad, round_mode)
    got = run_nchw(layer, x)
    assert_close(got, want)
    assert layer.compute_output_shape((None, *hw, 3)) == (None, *want.shape[2:], 3)


@pytest.mark.parametrize("pool", ["max", "ave"])
def test_global_pooling_matches_caffe(pool):
    x = nchw_input((2, 5, 3, 7), shift=-1.0)
    layer = CaffePooling2D(pool=pool, kernel=(3, 7), stride=1, pad=0, output_size=1)
    assert_close(run_nchw(layer, x), ref.pooling(x, pool, 0, global_pooling=True))


def test_pooling_inside_a_symbolic_model():
    inputs = keras.Input((7, 10, 3))
    layer = _pool("ave", (7, 10), (3, 2), (2, 3), (1, 1), "ceil")
    model = keras.Model(inputs, layer(inputs))
    x = nchw_input((2, 3, 7, 10))
    want = ref.pooling(x, "ave", (3, 2), (2, 3), (1, 1))
    assert model.output_shape == (None, *want.shape[2:], 3)
    assert_close(to_nchw(model.predict(to_nhwc(x), verbose=0)), want)


def test_pooling_config_round_trip():
    assert_config_round_trip(CaffePooling2D("ave", (3, 2), (2, 3), (1, 0), (4, 4)))
    assert_config_round_trip(CaffePooling2D("max", 3, 2, 1, 5))


@pytest.mark.parametrize("kwargs,message", [
    (dict(pool="AVE"), "pool"),
    (dict(kernel=(3, 0)), "kernel"),
    (dict(kernel=(2, 2), pad=(2, 0)), "pad_h"),
    (dict(stride="2"), "stride"),
    (dict(output_size=(1, 2, 3)), "output_size"),
])
def test_pooling_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CaffePooling2D(**kwargs)


@pytest.mark.parametrize("pool", ["max", "ave"])
def test_pooling_keeps_caffes_empty_windows(pool):
    # Ceil mode, no padding, stride 3 > kernel 1 on W = 9: a 4th column window starts at 9.
    # Caffe outputs -FLT_MAX (MAX) or 0 / 0 = NaN (AVE) there; so must we.
    x = nchw_input((2, 3, 5, 9), shift=-3.0)
    layer = _pool(pool, (5, 9), (1, 1), (2, 3), (0, 0), "ceil")
    want = ref.pooling(x, pool, 1, (2, 3), 0)
    assert want.shape == (2, 3, 3, 4)
    expected_edge = -np.finfo(np.float32).max if pool == "max" else np.nan
    np.testing.assert_array_equal(want[..., 3], np.full((2, 3, 3), expected_edge, np.float32))
    assert_close(run_nchw(layer, x), want)


# --- Scale and Bias -----------------------------------------------------------------------------

X4 = nchw_input((2, 3, 4, 5), seed=7)

# (Caffe axis, Caffe num_axes, Keras layer arguments, parameter transpose Caffe -> Keras)
AFFINE_CASES = [
    (1, 1, dict(axis=-1), None),                   # channels
    (1, 3, dict(axis=1, num_axes=3), (1, 2, 0)),   # (C, H, W) -> (H, W, C)
    (1, -1, dict(axis=1, num_axes=-1), (1, 2, 0)),
    (2, 2, dict(axis=1, num_axes=2), None),        # (H, W)
    (3, 1, dict(axis=2), None),                    # W
    (1, 0, dict(axis=-1, num_axes=0), None),       # scalar
    (1, 2, dict(axes=(3, 1)), None),               # (C, H): not contiguous in NHWC, kept as Caffe's
]


def _keras_param(p, transpose):
    return p if transpose is None else np.transpose(p, transpose)


@pytest.mark.parametrize("bias_term", [False, True])
@pytest.mark.parametrize("caffe_axis,caffe_num,where,transpose", AFFINE_CASES)
def test_scale_matches_caffe(caffe_axis, caffe_num, where, transpose, bias_term):
    end = X4.ndim if caffe_num == -1 else caffe_axis + caffe_num
    rng = np.random.default_rng(caffe_axis + end)
    gamma = rng.standard_normal(X4.shape[caffe_axis:end]).astype(np.float32)
    beta = rng.standard_normal(gamma.shape).astype(np.float32) if bias_term else None
    layer = Scale(**where, bias_term=bias_term)
    layer.build(to_nhwc(X4).shape)
    params = [gamma, beta] if bias_term else [gamma]
    layer.set_weights([_keras_param(p, transpose) for p in params])
    assert_close(run_nchw(layer, X4), ref.scale(X4, gamma, beta, caffe_axis, caffe_num))


@pytest.mark.parametrize("caffe_axis,caffe_num,where,transpose", AFFINE_CASES)
def test_bias_matches_caffe(caffe_axis, caffe_num, where, transpose):
    end = X4.ndim if caffe_num == -1 else caffe_axis + caffe_num
    b = nchw_input(X4.shape[caffe_axis:end], seed=end)
    layer = Bias(**where)
    layer.build(to_nhwc(X4).shape)
    layer.set_weights([_keras_param(b, transpose)])
    assert_close(run_nchw(layer, X4), ref.bias(X4, b, caffe_axis, caffe_num))


def test_scale_on_a_rank_2_tensor_keeps_caffes_axes():
    x = nchw_input((3, 5))
    gamma = nchw_input((5,), seed=1)
    layer = Scale(axis=1)
    layer.build(x.shape)
    layer.set_weights([gamma])
    assert_close(layer(x), ref.scale(x, gamma, None, 1))


def test_scale_by_input_se_block():
    # Caffe: Scale(axis 0) of x (N, C, H, W) by s (N, C) -> NHWC axes (0, 3).
    s = nchw_input((2, 3), seed=3)
    layer = ScaleByInput(axes=(0, 3))
    assert_close(to_nchw(layer([to_nhwc(X4), s])), ref.scale(X4, s, None, 0))
    bias_layer = BiasByInput(axes=(0, 3))
    assert_close(to_nchw(bias_layer([to_nhwc(X4), s])), ref.bias(X4, s, 0))


def test_scale_by_input_covering_every_axis():
    x, s = nchw_input((3, 5)), nchw_input((3, 5), seed=2)
    assert_close(ScaleByInput(axis=0, num_axes=-1)([x, s]), ref.scale(x, s, None, 0))


def test_scale_by_input_with_learned_bias():
    # Rank-3 blobs keep Caffe's axis order: Caffe axis 2 is Keras axis 2.
    x, s, beta = nchw_input((2, 3, 4)), nchw_input((4,), seed=1), nchw_input((4,), seed=2)
    layer = ScaleByInput(axis=2, bias_term=True)
    layer.build([x.shape, s.shape])
    layer.set_weights([beta])
    assert_close(layer([x, s]), ref.scale(x, s, beta, 2))


def test_scale_by_input_cannot_learn_a_bias_over_the_batch():
    x = nchw_input((2, 3, 4))
    with pytest.raises(ValueError, match="batch axis"):
        ScaleByInput(axes=(0, 1, 2), bias_term=True)([x, x])


def test_scale_by_input_in_a_model():
    x_in, s_in = keras.Input((4, 5, 3)), keras.Input((3,))
    model = keras.Model([x_in, s_in], ScaleByInput(axes=(0, 3))([x_in, s_in]))
    s = nchw_input((2, 3), seed=3)
    got = model.predict([to_nhwc(X4), s], verbose=0)
    assert_close(to_nchw(got), ref.scale(X4, s, None, 0))


def test_a_sequence_axis_means_axes():
    layer = Scale(axis=[3, 1], bias_term=True)
    assert (layer.axis, layer.num_axes, layer.axes) == (-1, None, (3, 1))
    assert layer.get_config()["axes"] == [3, 1] and layer.get_config()["axis"] == -1
    assert BiasByInput(axis=(0, 3), num_axes=2).axes == (0, 3)


def test_affine_output_shapes():
    assert Scale(axis=1, num_axes=2).compute_output_shape((None, 4, 5, 3)) == (None, 4, 5, 3)
    two = [(None, 4, 5, 3), (None, 3)]
    assert ScaleByInput(axes=(0, 3)).compute_output_shape(two) == (None, 4, 5, 3)
    assert BiasByInput(axes=(0, 3)).compute_output_shape(tuple(two)) == (None, 4, 5, 3)


def test_affine_config_round_trip():
    for layer in (Scale(), Scale(axes=(3, 1), bias_term=True), Scale(axis=1, num_axes=-1),
                  ScaleByInput(axes=(0, 3), bias_term=True), Bias(axis=2, num_axes=0),
                  BiasByInput(axis=0, num_axes=2)):
        assert_config_round_trip(layer)


@pytest.mark.parametrize("make,shape,message", [
    (lambda: Scale(axis=0), (2, 4, 5, 3), "batch axis"),
    (lambda: Bias(axis=3, num_axes=2), (2, 4, 5, 3), "runs past"),
    (lambda: Scale(axis=5), (2, 4, 5, 3), "out of range"),
    (lambda: Scale(axes=(1, 1)), (2, 4, 5, 3), "distinct"),
    (lambda: Scale(axes=(1, -3)), (2, 4, 5, 3), "distinct"),
])
def test_affine_rejects_bad_axes(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make().build(shape)


@pytest.mark.parametrize("kwargs,message", [
    (dict(axis="1"), "axis"),
    (dict(axis=(1, 2), num_axes=1), "num_axes"),
    (dict(axis=(1, "2")), "sequence of ints"),
    (dict(axis=(1, 2), axes=(1, 2)), "axis must be an int"),
    (dict(axes=(1, 2), num_axes=2), "either"),
    (dict(axes=(1, 2), axis=1), "either"),
    (dict(axes=3), "sequence"),
    (dict(axes=(1.0, 2)), "sequence"),
    (dict(axis=1, num_axes=-2), "num_axes"),
])
def test_affine_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Scale(**kwargs)


def test_scale_by_input_rejects_a_mismatched_scale():
    with pytest.raises(ValueError, match="second input"):
        ScaleByInput(axes=(0, 3))([to_nhwc(X4), np.ones((2, 4), np.float32)])


# --- element-wise -------------------------------------------------------------------------------

XE = 3.0 * nchw_input((3, 4, 2, 5), seed=11)

ELEMENTWISE_CASES = [
    (Power(power=2.5, scale=0.5, shift=3.0), lambda x: ref.power(x, 2.5, 0.5, 3.0)),
    (Power(power=0.5), lambda x: ref.power(x, 0.5)),          # NaN for x < 0, as in Caffe
    (Power(power=2.0, scale=-1.5), lambda x: ref.power(x, 2.0, -1.5)),
    (Power(power=-1.0, shift=20.0), lambda x: ref.power(x, -1.0, 1.0, 20.0)),
    (Power(power=3.0, scale=0.0, shift=-2.0), lambda x: ref.power(x, 3.0, 0.0, -2.0)),
    (Power(power=0.0, scale=2.0, shift=3.0), lambda x: ref.power(x, 0.0, 2.0, 3.0)),
    (Power(), lambda x: ref.power(x)),
    (Exp(), lambda x: ref.exp(x)),
    (Exp(base=2.0, scale=0.5, shift=1.5), lambda x: ref.exp(x, 2.0, 0.5, 1.5)),
    (Exp(base=-1, scale=0.3, shift=-1.0), lambda x: ref.exp(x, -1, 0.3, -1.0)),
    (Log(shift=10.0), lambda x: ref.log(x, -1, 1.0, 10.0)),
    (Log(base=10.0, scale=2.0, shift=20.0), lambda x: ref.log(x, 10.0, 2.0, 20.0)),
    (Log(base=0.5, scale=-1.0, shift=12.0), lambda x: ref.log(x, 0.5, -1.0, 12.0)),
    (AbsVal(), ref.absval),
    (Threshold(0.4), lambda x: ref.threshold(x, 0.4)),
    (Threshold(), ref.threshold),
]


@pytest.mark.parametrize("layer,want", ELEMENTWISE_CASES,
                         ids=[f"{type(c[0]).__name__}{i}" for i, c in enumerate(ELEMENTWISE_CASES)])
def test_elementwise_matches_caffe(layer, want):
    assert_close(run_nchw(layer, XE), want(XE))
    assert_config_round_trip(layer)


def test_softplus_is_caffes_bnll():
    # BNLL converts to Activation("softplus"); check it is exact, far tails included.
    x = np.concatenate([XE.ravel() * 5, np.array([-100, -30, -16, 0, 16, 30, 100], np.float32)])
    got = keras.layers.Activation("softplus")(x)
    assert_close(got, ref.bnll(x))


def test_weighted_sum_matches_caffe():
    xs = [nchw_input((2, 3, 4, 5), seed=s) for s in range(3)]
    coeff = [0.5, -1.0, 2.0]
    layer = WeightedSum(coeff)
    assert_close(to_nchw(layer([to_nhwc(x) for x in xs])), ref.eltwise(xs, "sum", coeff))
    assert layer.compute_output_shape([(None, 4, 5, 3)] * 3) == (None, 4, 5, 3)
    assert_config_round_trip(layer)


@pytest.mark.parametrize("make,message", [
    (lambda: Power(power="2"), "power"),
    (lambda: Power(scale=float("nan")), "scale"),
    (lambda: Exp(base=0.0), "base"),
    (lambda: Exp(base=-2.0), "base"),
    (lambda: Log(base=1.0), "base"),
    (lambda: Threshold(None), "threshold"),
    (lambda: WeightedSum([1.0]), "at least two"),
    (lambda: WeightedSum(3), "sequence"),
    (lambda: WeightedSum([1.0, "a"]), "coefficient"),
])
def test_elementwise_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_weighted_sum_rejects_wrong_input_count():
    with pytest.raises(ValueError, match="3 coefficients"):
        WeightedSum([1.0, 2.0, 3.0])([np.ones((1, 2), np.float32)] * 2)


# --- saving -------------------------------------------------------------------------------------

def _model_with_every_layer():
    x_in = keras.Input((7, 10, 3), name="x")
    s_in = keras.Input((3,), name="s")
    y = LRN(local_size=3, alpha=0.5, beta=0.7, k=1.5)(x_in)
    y = LRN(local_size=3, norm_region="within_channel")(y)
    y = CaffePooling2D("max", (3, 2), (2, 3), (1, 1), (4, 4))(y)
    y = Scale(axes=(3, 1), bias_term=True, name="scale")(y)
    y = Bias(axis=1, num_axes=2, name="bias")(y)
    y = ScaleByInput(axes=(0, 3))([y, s_in])
    y = BiasByInput(axes=(0, 3))([y, s_in])
    y = Power(power=2.0, scale=0.5, shift=1.0)(y)
    y = Log(base=2.0, shift=1.0)(y)
    y = Exp(base=3.0, scale=0.1)(y)
    z = AbsVal()(y)
    t = Threshold(1.2)(y)
    y = WeightedSum([0.5, -1.0, 2.0])([y, z, t])
    y = CaffePooling2D("ave", (3, 3), (2, 1), (1, 0), (2, 2))(y)
    model = keras.Model([x_in, s_in], y)
    rng = np.random.default_rng(5)
    for name in ("scale", "bias"):
        layer = model.get_layer(name)
        layer.set_weights([rng.standard_normal(w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_load_in_safe_mode(tmp_path, suffix):
    model = _model_with_every_layer()
    inputs = [to_nhwc(nchw_input((2, 3, 7, 10), seed=1)), nchw_input((2, 3), seed=2)]
    want = model.predict(inputs, verbose=0)
    assert np.all(np.isfinite(want))
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), want)
