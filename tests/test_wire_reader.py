"""The fast caffemodel reader (reader/wire.py + reader/binary.py): it reads every file the
way protobuf does, hands out views of the file, reads only the layers asked for, and hands
anything it does not expect to protobuf."""

from __future__ import annotations

import gc
import mmap
import os
from pathlib import Path

import numpy as np
import pytest

import netbuild as nb
from caffe2keras import load_net
from caffe2keras.errors import ParseError
from caffe2keras.proto import caffe_pb2
from caffe2keras.reader import binary, wire
from caffe2keras.reader.binary import blob_to_array, read_binary_message
from caffe2keras.reader.loader import read_weights
from caffe2keras.reader.upgrade import upgrade_net

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE_MODELS = sorted(FIXTURES.glob("*/weights.caffemodel"))
FIXTURE_NETS = [path.parent for path in FIXTURE_MODELS]


def protobuf_weights(path) -> dict[str, list[np.ndarray]]:
    """What the reader must give: protobuf parses the whole file, np.array(blob.data)."""
    net = read_binary_message(str(path), caffe_pb2.NetParameter(), "caffemodel")
    if not net.layer and not net.layers:
        raise ParseError("caffemodel holds no layers", str(path))
    net = upgrade_net(net, str(path))
    weights = {}
    for layer in net.layer:
        if layer.blobs and layer.name not in weights:
            weights[layer.name] = [blob_to_array(blob, layer.name) for blob in layer.blobs]
    return weights


def fast_weights(path) -> dict[str, list[np.ndarray]]:
    weights = read_weights(str(path))
    assert weights.model.fallback is None, weights.model.fallback
    return {name: weights.arrays(name) for name in weights.blobs}


def assert_same_weights(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for a, b in zip(got[name], want[name]):
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.fixture
def protobuf_only(monkeypatch):
    """Make the fast reader hand every file to protobuf, as it does with unusual ones."""
    def refuse(buffer):
        raise wire.WireError("refused by the test")
    monkeypatch.setattr(binary, "split_payloads", refuse)


def write_model(tmp_path, net, weights, name="net.caffemodel", **blob_format) -> str:
    return nb.write(tmp_path, name, nb.with_blobs(net, weights, **blob_format))


# ------------------------------------------------------------------ agreement with protobuf

@pytest.mark.parametrize("path", FIXTURE_MODELS, ids=[p.parent.name for p in FIXTURE_MODELS])
def test_every_fixture_reads_as_protobuf_reads_it(path):
    assert_same_weights(fast_weights(path), protobuf_weights(path))


def test_nsfw_reads_as_protobuf_reads_it(nsfw_model):
    _, caffemodel = nsfw_model
    weights = fast_weights(caffemodel)
    assert sum(a.size for arrays in weights.values() for a in arrays) == 5_944_567
    assert_same_weights(weights, protobuf_weights(caffemodel))


def net_summary(net):
    return ([(layer.name, layer.type, layer.bottoms, layer.tops, layer.top_blobs,
              layer.param.SerializeToString()) for layer in net.layers],
            net.inputs, net.outputs, net.warnings)


@pytest.mark.parametrize("folder", FIXTURE_NETS, ids=[p.name for p in FIXTURE_NETS])
def test_load_net_gives_the_same_net_either_way(folder, monkeypatch):
    args = (str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"))
    fast = load_net(*args)
    monkeypatch.setattr(binary, "split_payloads", lambda buffer: (_ for _ in ()).throw(
        wire.WireError("refused by the test")))
    slow = load_net(*args)
    assert any("read by protobuf" in warning for warning in slow.warnings)
    slow.warnings = [w for w in slow.warnings if "read by protobuf" not in w]
    assert net_summary(fast) == net_summary(slow)
    for a, b in zip(fast.layers, slow.layers):
        assert_same_weights({a.name: a.blobs}, {b.name: b.blobs})


def test_nsfw_load_net_gives_the_same_net_either_way(nsfw_model, monkeypatch):
    fast = load_net(*nsfw_model)
    monkeypatch.setattr(binary, "split_payloads", lambda buffer: (_ for _ in ()).throw(
        wire.WireError("refused by the test")))
    slow = load_net(*nsfw_model)
    slow.warnings = [w for w in slow.warnings if "read by protobuf" not in w]
    assert net_summary(fast) == net_summary(slow)
    for a, b in zip(fast.layers, slow.layers):
        assert_same_weights({a.name: a.blobs}, {b.name: b.blobs})


@pytest.mark.parametrize("build, shapes, blob_format", [
    (nb.v2_net, nb.V2_BLOB_SHAPES, {}),
    (nb.v2_net, nb.V2_BLOB_SHAPES, {"legacy": True}),
    (nb.v2_net, nb.V2_BLOB_SHAPES, {"double": True}),
    (nb.v1_net, nb.V2_BLOB_SHAPES, {"legacy": True}),
    (nb.v0_net, nb.V0_BLOB_SHAPES, {}),
    (nb.train_val_net, {"conv1": [(4, 3, 3, 3), (4,)], "fc": [(nb.FC_OUT, 196), (nb.FC_OUT,)]}, {}),
], ids=["V2", "V2-legacy-dims", "V2-double", "V1", "V0", "train-val"])
def test_each_generation_and_blob_format(tmp_path, build, shapes, blob_format):
    path = write_model(tmp_path, build(), nb.seeded_blobs(shapes, seed=4), **blob_format)
    assert_same_weights(fast_weights(path), protobuf_weights(path))


# ------------------------------------------------------------------ values written unusually

def unpacked(values: np.ndarray, number: int, dtype: str) -> bytes:
    """``values`` as protobuf writes a non-packed repeated field: a tag before each value."""
    wire_type = wire.I32 if dtype == "<f4" else wire.I64
    tag = wire.encode_varint(number << 3 | wire_type)
    records = np.empty(values.size, [("tag", "u1", len(tag)), ("value", dtype)])
    records["tag"] = np.frombuffer(tag, np.uint8)
    records["value"] = values.ravel()
    return records.tobytes()


def packed(values: np.ndarray, number: int, dtype: str) -> bytes:
    return wire.length_delimited(number, np.ascontiguousarray(values.ravel(), dtype).tobytes())


def blob_bytes(shape, *chunks: bytes) -> bytes:
    header = caffe_pb2.BlobProto()
    header.shape.dim.extend(shape)
    return header.SerializeToString() + b"".join(chunks)


def model_with_blob(tmp_path, blob: bytes, name="conv1.caffemodel") -> str:
    layer = caffe_pb2.LayerParameter(name="conv1", type="Convolution").SerializeToString()
    layer += wire.length_delimited(7, blob)
    return nb.write(tmp_path, name, wire.length_delimited(100, layer))


DATA, DOUBLE_DATA = 5, 8


@pytest.mark.parametrize("layout", ["unpacked", "packed+unpacked+packed", "two packed",
                                    "unpacked double", "packed then unpacked double"])
def test_values_written_unpacked_or_in_pieces(tmp_path, layout):
    """Parsers must accept a repeated scalar field packed, unpacked, or in several pieces
    (older Caffe writers did not pack ``data``); protobuf concatenates the pieces."""
    shape = (4, 3, 3, 2)
    values = nb.seeded(shape, 8)
    flat = values.ravel()
    pieces = {
        "unpacked": [unpacked(flat, DATA, "<f4")],
        "packed+unpacked+packed": [packed(flat[:10], DATA, "<f4"),
                                   unpacked(flat[10:40], DATA, "<f4"),
                                   packed(flat[40:], DATA, "<f4")],
        "two packed": [packed(flat[:1], DATA, "<f4"), packed(flat[1:], DATA, "<f4")],
        "unpacked double": [unpacked(flat.astype("<f8"), DOUBLE_DATA, "<f8")],
        "packed then unpacked double": [packed(flat[:5], DOUBLE_DATA, "<f8"),
                                        unpacked(flat[5:].astype("<f8"), DOUBLE_DATA, "<f8")],
    }[layout]
    path = model_with_blob(tmp_path, blob_bytes(shape, *pieces))
    got = fast_weights(path)
    assert_same_weights(got, protobuf_weights(path))
    np.testing.assert_array_equal(got["conv1"][0], values)


def test_unpacked_run_stops_at_the_next_field(tmp_path):
    """A run of unpacked values ends where another field starts, even mid-chunk."""
    values = np.arange(12, dtype=np.float32)
    extra = caffe_pb2.BlobProto(num=1).SerializeToString()  # a field after the run
    blob = unpacked(values, DATA, "<f4") + extra
    path = model_with_blob(tmp_path, b"".join([caffe_pb2.BlobProto(
        channels=1, height=3, width=4).SerializeToString(), blob]))
    got = fast_weights(path)
    assert_same_weights(got, protobuf_weights(path))
    assert got["conv1"][0].shape == (1, 1, 3, 4)


def test_double_data_wins_over_data(tmp_path):
    flat = np.arange(6, dtype=np.float32)
    path = model_with_blob(tmp_path, blob_bytes((2, 3), packed(flat + 7, DATA, "<f4"),
                                                packed(flat, DOUBLE_DATA, "<f8")))
    got = fast_weights(path)
    assert_same_weights(got, protobuf_weights(path))
    np.testing.assert_array_equal(got["conv1"][0].ravel(), flat)


def test_diffs_are_skipped(tmp_path):
    flat = np.arange(6, dtype=np.float32)
    path = model_with_blob(tmp_path, blob_bytes((2, 3), packed(flat, DATA, "<f4"),
                                                packed(flat * 0, 6, "<f4"),
                                                packed(flat * 0, 9, "<f8")))
    assert_same_weights(fast_weights(path), protobuf_weights(path))


def test_a_field_the_walk_does_not_expect_goes_to_protobuf(tmp_path):
    """``data`` as a varint is nothing Caffe writes; protobuf keeps it as an unknown field
    and the blob then has no values. The reader says it used protobuf."""
    flat = np.arange(6, dtype=np.float32)
    odd = wire.encode_varint(DATA << 3 | wire.VARINT) + wire.encode_varint(3)
    path = model_with_blob(tmp_path, blob_bytes((2, 3), odd, packed(flat, DATA, "<f4")))
    weights = read_weights(path)
    assert weights.model.fallback and "wire type" in weights.model.fallback
    assert_same_weights({name: weights.arrays(name) for name in weights.blobs},
                        protobuf_weights(path))


# ------------------------------------------------------------------ damaged files

def small_model(tmp_path) -> str:
    return write_model(tmp_path, nb.v2_net(), nb.seeded_blobs(nb.V2_BLOB_SHAPES, seed=2))


def all_arrays(path) -> dict[str, list[np.ndarray]]:
    weights = read_weights(path)
    return {name: weights.arrays(name) for name in weights.blobs}


def outcome(read, path):
    try:
        return read(path)
    except ParseError:
        return ParseError


def test_truncated_anywhere_reads_as_protobuf_reads_it(tmp_path):
    """Cut the file after every byte: each cut fails or succeeds the same way either way."""
    data = Path(small_model(tmp_path)).read_bytes()
    for cut in range(1, len(data)):
        path = nb.write(tmp_path, "cut.caffemodel", data[:cut])
        want, got = outcome(protobuf_weights, path), outcome(all_arrays, path)
        if want is ParseError:
            assert got is ParseError, cut
        else:
            assert got is not ParseError, cut
            assert_same_weights(got, want)


@pytest.mark.parametrize("seed", range(20))
def test_damaged_bytes_read_as_protobuf_reads_them(tmp_path, seed):
    """Random byte changes: the reader fails exactly when protobuf fails, else agrees."""
    rng = np.random.default_rng(seed)
    data = bytearray(Path(small_model(tmp_path)).read_bytes())
    header_end = 120  # damage mostly the structure, not only float payloads
    for _ in range(3):
        data[int(rng.integers(0, min(len(data), header_end)))] = int(rng.integers(0, 256))
    path = nb.write(tmp_path, "damaged.caffemodel", bytes(data))
    want, got = outcome(protobuf_weights, path), outcome(all_arrays, path)
    if want is ParseError:
        assert got is ParseError
    else:
        assert got is not ParseError
        assert_same_weights(got, want)


def test_errors_name_the_file(tmp_path):
    path = small_model(tmp_path)
    data = Path(path).read_bytes()
    short = nb.write(tmp_path, "short.caffemodel", data[: len(data) // 2])
    with pytest.raises(ParseError, match="truncated or corrupt") as info:
        read_weights(short)
    assert info.value.path == short
    empty = nb.write(tmp_path, "empty.caffemodel", b"")
    with pytest.raises(ParseError, match="empty"):
        read_weights(empty)


# ------------------------------------------------------------------ views, laziness, pages

def test_blobs_are_writable_views_of_the_mapped_file(tmp_path):
    path = small_model(tmp_path)
    before = Path(path).read_bytes()
    weights = read_weights(path)
    kernel = weights.arrays("conv1")[0]
    assert isinstance(weights.model.buffer, mmap.mmap)
    assert not kernel.flags.owndata and kernel.dtype == np.float32
    kernel[...] = 0  # copy-on-write: the array changes, the file does not
    assert not kernel.any()
    assert Path(path).read_bytes() == before


def test_layers_dropped_by_outputs_are_never_read(tmp_path, monkeypatch):
    weights = nb.seeded_blobs(nb.V2_BLOB_SHAPES, seed=3)
    prototxt = nb.write(tmp_path, "net.prototxt", nb.v2_net())
    caffemodel = write_model(tmp_path, nb.v2_net(), weights)
    read = []
    original = binary.Caffemodel.array

    def recording(self, blob, where):
        read.append(where)
        return original(self, blob, where)
    monkeypatch.setattr(binary.Caffemodel, "array", recording)
    net = load_net(prototxt, caffemodel, outputs=["pool1"])
    assert [layer.name for layer in net.layers] == ["conv1", "relu1", "pool1"]
    assert read and all("'conv1'" in where for where in read)
    np.testing.assert_array_equal(net.layer("conv1").blobs[0], weights["conv1"][0])


def test_pages_are_handed_back_when_the_last_view_goes(tmp_path, monkeypatch):
    big = {"conv1": [nb.seeded((4, 3, 3, 2), 1), nb.seeded((4,), 2)],
           "fc": [nb.seeded((nb.FC_OUT, 48 * 1000), 3).reshape(nb.FC_OUT, -1), nb.seeded((5,), 4)]}
    path = write_model(tmp_path, nb.v2_net(), big)
    handed_back = []
    monkeypatch.setattr(binary, "_hand_back_pages",
                        lambda buffer, offset, size: handed_back.append((offset, size)))
    weights = read_weights(path)
    kernel, bias = weights.arrays("fc")
    size = kernel.nbytes
    transposed = kernel.T  # a view of the view keeps the pages
    del kernel
    gc.collect()
    assert [call for call in handed_back if call[1] == size] == []
    offset = transposed.__array_interface__["data"][0] - np.frombuffer(
        weights.model.buffer, np.uint8).__array_interface__["data"][0]
    del transposed
    gc.collect()
    assert [call for call in handed_back if call[1] == size] == [(offset, nb.FC_OUT * 48_000 * 4)]


def test_hand_back_pages_touches_only_whole_pages_of_the_blob():
    page = mmap.PAGESIZE
    buffer = mmap.mmap(-1, 8 * page)
    buffer[:] = bytes(range(256)) * (8 * page // 256)
    calls = []

    class Recorder:
        closed = False

        def madvise(self, option, start, length):
            calls.append((start, length))
    binary._hand_back_pages(Recorder(), page + 10, 3 * page)  # pages 2 and 3 wholly inside
    binary._hand_back_pages(Recorder(), 10, page)  # no whole page
    assert calls == [(2 * page, 2 * page)]
    binary._hand_back_pages(buffer, page + 10, 3 * page)  # really: the values stay
    assert buffer[:] == bytes(range(256)) * (8 * page // 256)


def test_a_caffemodel_over_2_gib_is_read_without_touching_its_values(tmp_path):
    """protobuf refuses messages of 2 GiB; the walk does not need to (the file is sparse)."""
    count = 600_000_000  # 2.4 GB of float32 zeros, never written to disk
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.append(count)
    blob_head = blob.SerializeToString() + wire.encode_varint(DATA << 3 | wire.LEN) \
        + wire.encode_varint(4 * count)
    blob_field = wire.encode_varint(7 << 3 | wire.LEN) \
        + wire.encode_varint(len(blob_head) + 4 * count)
    layer = caffe_pb2.LayerParameter(name="huge", type="Bias").SerializeToString()
    layer_head = wire.encode_varint(100 << 3 | wire.LEN) + wire.encode_varint(
        len(layer) + len(blob_field) + len(blob_head) + 4 * count)
    path = tmp_path / "huge.caffemodel"
    with open(path, "wb") as out:
        out.write(layer_head + layer + blob_field + blob_head)
        out.truncate(out.tell() + 4 * count)
    if os.stat(path).st_blocks * 512 > 2**20:
        pytest.skip("this file system does not keep files sparse")
    weights = read_weights(str(path))
    (array,) = weights.arrays("huge")
    assert array.shape == (count,) and array.dtype == np.float32
    assert array[-1] == 0


# ------------------------------------------------------------------ the writer

@pytest.mark.parametrize("build, legacy",
                         [(nb.v2_net, False), (nb.v2_net, True), (nb.v1_net, True)],
                         ids=["V2", "V2-legacy", "V1-legacy"])
def test_writer_matches_protobuf(tmp_path, build, legacy):
    weights = nb.seeded_blobs(nb.V2_BLOB_SHAPES, seed=9)
    ours = str(tmp_path / "ours.caffemodel")
    wire.write_caffemodel(ours, build(), weights, legacy=legacy)
    theirs = write_model(tmp_path, build(), weights, name="theirs.caffemodel", legacy=legacy)
    parsed = read_binary_message(ours, caffe_pb2.NetParameter(), "caffemodel")
    assert parsed == read_binary_message(theirs, caffe_pb2.NetParameter(), "caffemodel")
    assert_same_weights(fast_weights(ours), protobuf_weights(theirs))
