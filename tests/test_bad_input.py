"""Bad input gets one clear message: through the CLI a single ``caffe2keras: error:`` line
naming the file (and line/column) or the layer, a non-zero exit and no traceback; through
the API an exception from caffe2keras.errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import netbuild as nb
from caffe2keras import errors, load_net
from caffe2keras.shapes import infer_shapes


def deploy(tmp_path, net=None) -> str:
    return nb.write(tmp_path, "deploy.prototxt", nb.v2_net() if net is None else net)


def caffemodel(tmp_path, net=None, weights=None) -> str:
    weights = nb.seeded_blobs(nb.V2_BLOB_SHAPES) if weights is None else weights
    net = nb.v2_net() if net is None else net
    return nb.write(tmp_path, "model.caffemodel", nb.with_blobs(net, weights))


def bad_prototxt(tmp_path, replace: str, by: str) -> str:
    text = str(nb.v2_net())
    assert replace in text
    return nb.write(tmp_path, "bad.prototxt", text.replace(replace, by, 1))


def assert_one_clean_error(run_cli, argv, error_class, *mentions):
    code, out, err = run_cli("inspect", *argv)
    assert code == error_class.exit_code != 0
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("caffe2keras: error: ")
    assert "Traceback" not in err
    for mention in mentions:
        assert mention in lines[0], (mention, lines[0])


def api_error(error_class, prototxt, weights=None, shapes=False):
    """The exception the API raises (load_net, then infer_shapes with ``shapes``)."""
    with pytest.raises(error_class) as info:
        net = load_net(prototxt, weights)
        if shapes:
            infer_shapes(net)
    return info.value


# ------------------------------------------------------------------ unreadable files

def test_prototxt_syntax_error(tmp_path, run_cli):
    path = bad_prototxt(tmp_path, 'type: "Pooling"', 'type: "Pooling" pooling_param { pool: }')
    line = open(path).read().splitlines().index('  type: "Pooling" pooling_param { pool: }') + 1
    error = api_error(errors.ParseError, path)
    assert (error.path, error.line, error.column) == (path, line, 41)
    assert_one_clean_error(run_cli, [path], errors.ParseError, f"{path}:{line}:41:")


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_caffemodel(tmp_path, run_cli, cut):
    good = caffemodel(tmp_path)
    data = open(good, "rb").read()
    path = nb.write(tmp_path, "truncated.caffemodel", data[: int(len(data) * cut)])
    prototxt = deploy(tmp_path)
    api_error(errors.ParseError, prototxt, path)
    assert_one_clean_error(run_cli, [prototxt, path], errors.ParseError, path,
                           "truncated or corrupt")


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_as_caffemodel(tmp_path, run_cli, seed):
    path = nb.write(tmp_path, "random.caffemodel", np.random.default_rng(seed).bytes(4096))
    prototxt = deploy(tmp_path)
    api_error(errors.ParseError, prototxt, path)
    assert_one_clean_error(run_cli, [prototxt, path], errors.ParseError, path)


def test_prototxt_given_as_caffemodel(tmp_path, run_cli):
    path = deploy(tmp_path)
    error = api_error(errors.ParseError, path, path)
    assert "text file" in str(error)
    assert_one_clean_error(run_cli, [path, path], errors.ParseError, path, "not a binary caffemodel")


def test_caffemodel_given_as_prototxt(tmp_path, run_cli):
    path = caffemodel(tmp_path)
    api_error(errors.ParseError, path)
    assert_one_clean_error(run_cli, [path], errors.ParseError, path, "binary file")


def test_missing_file(tmp_path, run_cli):
    path = str(tmp_path / "nowhere.caffemodel")
    prototxt = deploy(tmp_path)
    api_error(errors.ParseError, prototxt, path)
    assert_one_clean_error(run_cli, [prototxt, path], errors.ParseError, path)


# ------------------------------------------------------------------ inconsistent nets

def test_bottom_that_no_layer_produces(tmp_path, run_cli):
    path = bad_prototxt(tmp_path, 'bottom: "pool1"', 'bottom: "pool_one"')
    error = api_error(errors.StructureError, path)
    assert "'fc'" in str(error) and "'pool_one'" in str(error)
    assert_one_clean_error(run_cli, [path], errors.StructureError, path, "'fc'", "'pool_one'")


def test_duplicate_layer_names(tmp_path, run_cli):
    path = bad_prototxt(tmp_path, 'name: "pool1"', 'name: "conv1"')
    api_error(errors.StructureError, path)
    assert_one_clean_error(run_cli, [path], errors.StructureError, path, "'conv1'")


def test_mixed_layer_and_layers(tmp_path, run_cli):
    text = str(nb.v2_net()) + 'layers { name: "old" type: SOFTMAX bottom: "fc" top: "p2" }\n'
    path = nb.write(tmp_path, "mixed.prototxt", text)
    api_error(errors.StructureError, path)
    assert_one_clean_error(run_cli, [path], errors.StructureError, path, "'layer' and 'layers'")


def test_weights_of_the_wrong_shape(tmp_path, run_cli):
    weights = nb.seeded_blobs(nb.V2_BLOB_SHAPES)
    weights["conv1"][0] = nb.seeded((4, 3, 2, 3), 1)  # kernel_w and kernel_h swapped
    path = caffemodel(tmp_path, weights=weights)
    prototxt = deploy(tmp_path)
    net = load_net(prototxt, path)  # reading is fine, the shapes are checked later
    with pytest.raises(errors.WeightsMismatchError) as info:
        infer_shapes(net)
    for mention in ("'conv1'", "(4, 3, 2, 3)", "(4, 3, 3, 2)"):
        assert mention in str(info.value)
    assert_one_clean_error(run_cli, [prototxt, path], errors.WeightsMismatchError,
                           "'conv1'", "(4, 3, 2, 3)", "(4, 3, 3, 2)")


def test_blob_with_fewer_values_than_its_shape(tmp_path, run_cli):
    model = nb.with_blobs(nb.v2_net(), nb.seeded_blobs(nb.V2_BLOB_SHAPES))
    del model.layer[3].blobs[1].data[-1]
    path = nb.write(tmp_path, "short.caffemodel", model)
    prototxt = deploy(tmp_path)
    api_error(errors.ParseError, prototxt, path)
    assert_one_clean_error(run_cli, [prototxt, path], errors.ParseError, "'fc'", "needs 5")


# ------------------------------------------------------------------ negative and absurd sizes

@pytest.mark.parametrize("form", ["input_dim", "input_shape", "Input"])
def test_negative_input_dimension(tmp_path, run_cli, form):
    path = deploy(tmp_path, nb.v2_net(input_form=form, shape=(2, -3, 11, 7)))
    api_error(errors.StructureError, path, shapes=True)
    assert_one_clean_error(run_cli, [path], errors.StructureError, "'data'", "-3")


@pytest.mark.parametrize("shape", [(2, 0, 11, 7), (2, 3, 10**6, 10**6)], ids=["zero", "huge"])
def test_empty_or_absurd_input(tmp_path, run_cli, shape):
    path = deploy(tmp_path, nb.v2_net(input_form="input_shape", shape=shape))
    api_error(errors.StructureError, path, shapes=True)
    assert_one_clean_error(run_cli, [path], errors.StructureError, "'data'", str(shape))


def test_input_dim_beyond_int32(tmp_path, run_cli):
    path = bad_prototxt(tmp_path, "input_dim: 11", "input_dim: 11000000000")
    api_error(errors.ParseError, path)
    assert_one_clean_error(run_cli, [path], errors.ParseError, f"{path}:", "out of range")


def _blob_claiming(tmp_path, dims) -> str:
    model = nb.with_blobs(nb.v2_net(), nb.seeded_blobs(nb.V2_BLOB_SHAPES))
    del model.layer[0].blobs[0].shape.dim[:]
    model.layer[0].blobs[0].shape.dim.extend(dims)
    return nb.write(tmp_path, "claims.caffemodel", model)


def test_negative_blob_dimension(tmp_path, run_cli):
    path = _blob_claiming(tmp_path, [4, -3, 3, 2])
    prototxt = deploy(tmp_path)
    api_error(errors.ParseError, prototxt, path)
    assert_one_clean_error(run_cli, [prototxt, path], errors.ParseError, "'conv1'", "negative")


@pytest.mark.parametrize("dims", [(4, 3, 3000, 2000), (4, 3, 30_000, 20_000)],
                         ids=["288MB", "29GB"])
def test_blob_shape_beyond_its_data_is_refused_before_allocating(tmp_path, run_cli, dims):
    prototxt, path = deploy(tmp_path), _blob_claiming(tmp_path, dims)
    tracemalloc.start()
    try:
        api_error(errors.ParseError, prototxt, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 128 * 2**20  # the claimed blob is 288 MB and more
    assert_one_clean_error(run_cli, [prototxt, path], errors.ParseError, "'conv1'",
                           str(dims))


def test_absurd_layer_parameters_are_refused(tmp_path, run_cli):
    net = nb.v2_net()
    net.layer[3].inner_product_param.num_output = 10**9  # weights (1e9, 48): 179 GiB
    path = deploy(tmp_path, net)
    api_error(errors.StructureError, path, shapes=True)
    assert_one_clean_error(run_cli, [path], errors.StructureError, "'fc'")
