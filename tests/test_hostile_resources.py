"""Resource guards: a small file cannot make the converter allocate gigabytes or work for
minutes. Sizes, counts and shapes are checked against the file and fixed limits before
anything is allocated; files past protobuf's 2 GiB are streamed or refused with the reason."""

from __future__ import annotations

import os
import time
import tracemalloc

import pytest

import netbuild as nb
from caffe2keras import errors, load_net
from caffe2keras.api import prepare
from caffe2keras.proto import caffe_pb2
from caffe2keras.reader import prototxt as prototxt_reader
from caffe2keras.reader import upgrade

HEAD = 'input: "data" input_dim: 2 input_dim: 3 input_dim: 11 input_dim: 7\n'


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_field(number: int, length: int) -> bytes:
    return _varint(number << 3 | 2) + _varint(length)


def peak_bytes(function, *args):
    """(what ``function`` raised or returned, the peak of Python allocations meanwhile)."""
    tracemalloc.start()
    try:
        try:
            result = function(*args)
        except errors.CaffeToKerasError as error:
            result = error
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ weights made up from fillers

def test_a_tiny_prototxt_cannot_make_fillers_allocate_gigabytes(tmp_path):
    # 231 inputs x 9,000,000 outputs: 2.08e9 weights, inside Caffe's 2**31 - 1 per blob (7.7 GiB)
    text = HEAD + ('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
                   'inner_product_param { num_output: 9000000 } }')
    path = nb.write(tmp_path, "tiny.prototxt", text)
    assert os.path.getsize(path) < 1024
    error, peak = peak_bytes(prepare, path)
    assert isinstance(error, errors.StructureError)
    assert "'fc'" in str(error) and "give the caffemodel" in str(error).lower()
    assert peak < 16 * 2**20


def test_fillers_within_the_budget_are_drawn_in_float32_without_big_temporaries(tmp_path):
    # 231 x 200,000 = 46.2M weights (176 MiB as float32); a float64 draw would peak at twice that.
    text = HEAD + ('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
                   'inner_product_param { num_output: 200000 weight_filler { type: "gaussian" '
                   'std: 0.01 sparse: 3 } bias_filler { type: "xavier" } } }')
    path = nb.write(tmp_path, "ok.prototxt", text)
    net, peak = peak_bytes(prepare, path)
    weights = net.layer("fc").blobs[0]
    assert weights.dtype == "float32" and weights.shape == (200000, 231)
    assert peak < weights.nbytes * 1.25


# ------------------------------------------------------------------ constants precomputed by layers

def test_priors_of_an_absurd_feature_map_are_refused_before_they_are_computed(tmp_path):
    text = ('input: "data" input_dim: 1 input_dim: 1 input_dim: 9000 input_dim: 9000\n'
            'layer { name: "pb" type: "PriorBox" bottom: "data" bottom: "data" top: "pb" '
            'prior_box_param { min_size: 4 } }')
    path = nb.write(tmp_path, "priors.prototxt", text)
    import keras  # noqa: F401  (imported outside the measurement)
    from caffe2keras.api import convert
    error, peak = peak_bytes(convert, path)
    assert isinstance(error, errors.StructureError), error
    assert "'pb' (PriorBox)" in str(error) and "precompute" in str(error)
    assert peak < 64 * 2**20


# ------------------------------------------------------------------ enormous or deeply nested text

def test_a_prototxt_beyond_the_size_limit_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.prototxt"
    with open(path, "wb") as handle:
        handle.truncate(prototxt_reader.MAX_TEXT_BYTES + 1)  # sparse: no disk, no time
    error, peak = peak_bytes(load_net, str(path))
    assert isinstance(error, errors.ParseError) and str(path) in str(error)
    assert f"more than the {prototxt_reader.MAX_TEXT_BYTES}" in str(error)
    assert peak < 2**20


def test_parsing_keeps_one_token_at_a_time(tmp_path):
    # 180,000 tokens: a list of them would take ~30 MB; the streaming parser a few KB.
    text = "name: 'n'\n" + "input: 'x'\n" * 60_000
    path = nb.write(tmp_path, "long.prototxt", text)
    message = caffe_pb2.NetParameter()
    result, peak = peak_bytes(prototxt_reader.read_text_file, path, message)
    assert len(message.input) == 60_000
    assert peak < 8 * 2**20


def test_too_many_messages_are_refused_with_the_line(tmp_path, monkeypatch):
    monkeypatch.setattr(prototxt_reader, "MAX_MESSAGES", 1000)
    path = nb.write(tmp_path, "many.prototxt", "layer {}\n" * 1001)
    with pytest.raises(errors.ParseError) as info:
        load_net(path)
    assert (info.value.path, info.value.line) == (path, 1001)
    assert "more than 1000 messages" in str(info.value)


def test_the_message_limit_leaves_room_for_the_largest_real_nets():
    # ResNet-152's deploy.prototxt: ~ 900 layers with 2-4 sub-messages each.
    assert prototxt_reader.MAX_MESSAGES >= 50 * 900 * 4
    assert upgrade.MAX_LAYERS >= 10 * 2000


def test_a_caffemodel_with_too_many_layers_is_refused(tmp_path):
    count = upgrade.MAX_LAYERS + 1
    layer = _length_field(100, 0)  # an empty `layer {}`: 3 bytes each
    path = nb.write(tmp_path, "many.caffemodel", layer * count)
    prototxt = nb.write(tmp_path, "deploy.prototxt", nb.v2_net())
    with pytest.raises(errors.StructureError, match=f"{count} layers, more than"):
        load_net(prototxt, path)


# ------------------------------------------------------------------ beyond protobuf's 2 GiB

def test_a_caffemodel_over_2gib_that_is_valid_is_streamed_not_loaded(tmp_path):
    """A sparse 2 GiB + 4 KiB caffemodel: one Bias layer whose blob is a packed run of
    zeros. It reads without protobuf ever seeing the values, and without reading them."""
    count = (2**31 + 4096) // 4
    blob_head = caffe_pb2.BlobProto()
    blob_head.shape.dim.append(count)
    blob = blob_head.SerializeToString() + _length_field(5, 4 * count)  # BlobProto.data
    layer = (caffe_pb2.LayerParameter(name="big", type="Bias").SerializeToString()
             + _length_field(7, len(blob) + 4 * count) + blob)  # LayerParameter.blobs
    head = _length_field(100, len(layer) + 4 * count) + layer  # NetParameter.layer
    path = tmp_path / "big.caffemodel"
    path.write_bytes(head)
    os.truncate(path, len(head) + 4 * count)
    assert os.path.getsize(path) > 2**31
    text = (f'input: "data" input_shape {{ dim: 1 dim: {count} }}\n'
            'layer { name: "big" type: "Bias" bottom: "data" top: "b" bias_param { axis: 1 } }')
    prototxt = nb.write(tmp_path, "big.prototxt", text)
    start = time.perf_counter()
    net, peak = peak_bytes(load_net, prototxt, str(path))
    assert not isinstance(net, Exception), net
    assert net.layer("big").blobs[0].shape == (count,)
    assert peak < 16 * 2**20 and time.perf_counter() - start < 10


def test_a_caffemodel_over_2gib_that_protobuf_would_have_to_read_is_refused_saying_why(tmp_path):
    """A valid small caffemodel followed by zeros up to 2 GiB + 10 bytes (sparse): the fast
    walk stops at the zeros and protobuf cannot take a message that large."""
    model = nb.with_blobs(nb.v2_net(), nb.seeded_blobs(nb.V2_BLOB_SHAPES)).SerializeToString()
    path = tmp_path / "big.caffemodel"
    path.write_bytes(model)
    os.truncate(path, 2**31 + 10)
    prototxt = nb.write(tmp_path, "deploy.prototxt", nb.v2_net())
    error, peak = peak_bytes(load_net, prototxt, str(path))
    assert isinstance(error, errors.ParseError), error
    assert str(path) in str(error) and "2 GiB" in str(error)
    assert peak < 16 * 2**20


def test_a_prototxt_that_is_a_link_to_an_endless_device_is_refused(tmp_path):
    """A downloaded archive can hold a symlink to /dev/zero: its size says 0, reading never ends."""
    link = tmp_path / "deploy.prototxt"
    link.symlink_to("/dev/zero")
    error, peak = peak_bytes(load_net, str(link))
    assert isinstance(error, errors.ParseError) and str(link) in str(error)
    assert peak < 2 * prototxt_reader.MAX_TEXT_BYTES + 2**20


@pytest.mark.parametrize("command", [["inspect", "{deploy}", "/dev/zero"],
                                     ["mean", "/dev/zero"]], ids=["caffemodel", "mean_file"])
def test_weights_that_link_to_an_endless_device_are_refused(tmp_path, command):
    """Run with a 1 GiB address-space limit, so that the unbounded read fails fast with a
    MemoryError instead of taking the machine's memory."""
    import subprocess
    import sys
    deploy = nb.write(tmp_path, "deploy.prototxt", nb.v2_net())
    argv = [arg.format(deploy=deploy) for arg in command]
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30)); "
              "from caffe2keras.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == errors.ParseError.exit_code, done.stderr[-500:]
    assert "/dev/zero" in done.stderr
