"""Embed, LSTM and RNN against numpy transcriptions of Caffe (tests/caffe_ref_sequence.py),
with the batch-major contract: Caffe's (T, N, ...) blobs are (N, T, ...) in Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import caffe2keras
import caffe_ref_sequence as ref
from caffe2keras.errors import StructureError
from numpy_forward import assert_close, normal, write_net

T, N, D, H = 5, 3, 4, 6  # steps, batch, input width, hidden width: all different


def _run(model, feeds, names):
    """Keras outputs of the layers ``names`` on ``feeds`` (Keras layout)."""
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    results = probe.predict([feeds[t.name] for t in model.inputs], verbose=0)
    return dict(zip(names, results if len(names) > 1 else [results]))


def _cont(seed):
    """(T, N) in {0, 1}, a sequence start (0) at t = 0 and in the middle of one sequence."""
    cont = (np.random.default_rng(seed).random((T, N)) > 0.3).astype(np.float32)
    cont[0] = 0
    cont[2, 1] = 0
    return cont


def _recurrent_net(kind, static):
    inputs = (f"shape {{ dim: {T} dim: {N} dim: {D} }} shape {{ dim: {T} dim: {N} }}"
              + (f" shape {{ dim: {N} dim: 2 dim: 3 dim: 2 }}" if static else ""))
    tops = 'top: "x" top: "cont"' + (' top: "xs"' if static else "")
    bottoms = 'bottom: "x" bottom: "cont"' + (' bottom: "xs"' if static else "")
    return f"""name: "rec"
layer {{ name: "in" type: "Input" {tops} input_param {{ {inputs} }} }}
layer {{ name: "rec" type: "{kind}" {bottoms} top: "rec" recurrent_param {{ num_output: {H} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "rec" top: "ip"
        inner_product_param {{ num_output: 2 axis: 2 }} }}
"""


@pytest.mark.parametrize("static", [False, True], ids=["plain", "static_input"])
@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_recurrent_matches_caffe(tmp_path, kind, static):
    x, cont = normal((T, N, D), seed=1), _cont(2)
    xs = normal((N, 2, 3, 2), seed=3) if static else None
    width = 4 * H if kind == "LSTM" else H
    scale = 0.6
    w_x, b = normal((width, D), 4, scale=scale), normal((width,), 5, scale=scale)
    w_s = [normal((width, 12), 6, scale=scale)] if static else []
    w_h = normal((width, H), 7, scale=scale)
    extra = [normal((H, H), 8, scale=scale), normal((H,), 9)] if kind == "RNN" else []
    w_ip, b_ip = normal((2, H), 10), normal((2,), 11)
    blobs = {"rec": [w_x, b, *w_s, w_h, *extra], "ip": [w_ip, b_ip]}
    prototxt, caffemodel = write_net(tmp_path, _recurrent_net(kind, static), blobs)
    model = caffe2keras.convert(prototxt, caffemodel)
    assert [tuple(t.shape) for t in model.inputs][:2] == [(None, T, D), (None, T)]
    feeds = {"x": x.swapaxes(0, 1), "cont": cont.T}
    if static:
        feeds["xs"] = xs.transpose(0, 2, 3, 1)  # NHWC, as every 4-D input
    got = _run(model, feeds, ["rec", "ip"])
    static_args = {"x_static": xs, "w_static": w_s[0]} if static else {}
    if kind == "LSTM":
        want = ref.lstm(x, cont, w_x, b, w_h, **static_args)
    else:
        want = ref.rnn(x, cont, w_x, b, w_h, *extra, **static_args)
    assert_close(got["rec"].swapaxes(0, 1), want, kind)
    want_ip = want.astype(np.float64) @ w_ip.T + b_ip
    assert_close(got["ip"].swapaxes(0, 1), want_ip, "ip")


def test_cont_restarts_the_state(tmp_path):
    """With cont 0 at step t, step t of an item equals step 0 of a sequence that starts there."""
    x, cont = normal((T, N, D), seed=1), np.ones((T, N), np.float32)
    cont[0] = 0
    cont[3, 0] = 0
    blobs = {"rec": [normal((4 * H, D), 4), normal((4 * H,), 5), normal((4 * H, H), 7)],
             "ip": [normal((2, H), 10), normal((2,), 11)]}
    prototxt, caffemodel = write_net(tmp_path, _recurrent_net("LSTM", False), blobs)
    model = caffe2keras.convert(prototxt, caffemodel)
    full = _run(model, {"x": x.swapaxes(0, 1), "cont": cont.T}, ["rec"])["rec"]
    fresh_cont = np.ones((T - 3, 1), np.float32)
    fresh_cont[0] = 0
    fresh = ref.lstm(x[3:, :1], fresh_cont, *blobs["rec"])  # item 0 from step 3 on, alone
    assert_close(full[0, 3:], fresh[:, 0], "restart")
    assert not np.allclose(full[0, 3], ref.lstm(x[:, :1], np.ones((T, 1), np.float32),
                                                *blobs["rec"])[3, 0], atol=1e-3)


def test_embed_layouts(tmp_path):
    """Embed on a 2-D blob (3-D top), a 3-D blob (4-D top, NHWC in Keras) and a 4-D blob."""
    text = """name: "emb"
layer { name: "in" type: "Input" top: "a" top: "b" top: "c"
        input_param { shape { dim: 2 dim: 5 } shape { dim: 2 dim: 3 dim: 4 }
                      shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }
layer { name: "ea" type: "Embed" bottom: "a" top: "ea" embed_param { num_output: 6 input_dim: 9 } }
layer { name: "eb" type: "Embed" bottom: "b" top: "eb"
        embed_param { num_output: 7 input_dim: 9 bias_term: false } }
layer { name: "ec" type: "Embed" bottom: "c" top: "ec" embed_param { num_output: 2 input_dim: 9 } }
"""
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 9, shape).astype(np.float32)
               for shape in [(2, 5), (2, 3, 4), (2, 3, 4, 5)])
    blobs = {"ea": [normal((9, 6), 1), normal((6,), 2)], "eb": [normal((9, 7), 3)],
             "ec": [normal((9, 2), 4), normal((2,), 5)]}
    prototxt, caffemodel = write_net(tmp_path, text, blobs)
    model = caffe2keras.convert(prototxt, caffemodel)
    got = _run(model, {"a": a, "b": b, "c": c.transpose(0, 2, 3, 1)}, ["ea", "eb", "ec"])
    assert_close(got["ea"], ref.embed(a, *blobs["ea"]), "ea")
    assert_close(got["eb"].transpose(0, 3, 1, 2), ref.embed(b, *blobs["eb"]), "eb")
    assert_close(got["ec"], ref.embed(c, *blobs["ec"]), "ec")


def test_a_layer_reading_a_time_major_blob_across_time_is_refused(tmp_path):
    text = _recurrent_net("RNN", False) + """
layer { name: "cat" type: "Concat" bottom: "ip" bottom: "ip" top: "cat" concat_param { axis: 0 } }
"""
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=r"'cat' \(Concat\).*time-major blob 'ip'"):
        caffe2keras.convert(prototxt, None)


def test_too_many_steps_are_refused(tmp_path):
    text = _recurrent_net("RNN", False).replace(f"dim: {T} dim: {N}", f"dim: 5000 dim: {N}")
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=r"'rec' \(RNN\): 5000 time steps, more than the "
                                             r"4096"):
        caffe2keras.convert(prototxt, None)


def test_expose_hidden_is_refused(tmp_path):
    text = _recurrent_net("LSTM", False).replace("num_output: 6 }", "num_output: 6 expose_hidden: true }")
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=r"'rec' \(LSTM\).*expose_hidden"):
        caffe2keras.convert(prototxt, None)


@pytest.mark.parametrize("cls", ["CaffeLSTM", "CaffeRNN", "Embed"])
def test_config_round_trip(cls):
    from caffe2keras import layers
    kwargs = {"input_dim": 5, "num_output": 3} if cls == "Embed" else {"num_output": 3,
                                                                       "static_input": True}
    layer = getattr(layers, cls)(**kwargs, name="x")
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_recurrent_weights_from_the_fillers(tmp_path, kind):
    """Without a caffemodel every blob takes recurrent_param's weight or bias filler, as the
    InnerProducts of Caffe's unrolled net do."""
    text = _recurrent_net(kind, True).replace(
        f"num_output: {H} }}",
        f'num_output: {H} weight_filler {{ type: "constant" value: 0.25 }} '
        'bias_filler { type: "constant" value: -0.5 } }')
    prototxt, _ = write_net(tmp_path, text)
    with pytest.warns(UserWarning, match="fillers"):
        model = caffe2keras.convert(prototxt, None)
    weights = model.get_layer("rec").get_weights()
    expected = [0.25, -0.5, 0.25, 0.25] + ([0.25, -0.5] if kind == "RNN" else [])
    assert [float(np.unique(w).item()) for w in weights] == expected
