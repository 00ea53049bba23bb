"""A corpus of hostile inputs, every one made here by code from a real caffemodel or a small net.

Each case goes through ``caffe2keras convert`` to an output file and must give exactly one
``caffe2keras: error:`` line with its class's exit code and the expected words, no
traceback, and no output file (an existing one stays as it was); through the API, the same
error class. Inputs that Caffe itself would take (a cut exactly between two layers, NaN
weights) convert, with a warning that names what is wrong.
"""

from __future__ import annotations

import re
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import netbuild as nb
from caffe2keras import errors, load_net
from caffe2keras.api import convert, prepare
from caffe2keras.proto import caffe_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fuzz_cases import wire_fields  # noqa: E402  (the fuzz harness's protobuf wire walker)

CAFFENET = ROOT / "fixtures" / "caffenet"
OLD_OUTPUT = b"an earlier conversion"


def caffenet() -> tuple[str, bytes]:
    return str(CAFFENET / "deploy.prototxt"), (CAFFENET / "weights.caffemodel").read_bytes()


def top_level(data: bytes):
    """The top-level fields of a serialized message, in order."""
    fields, position = [], 0
    for field in wire_fields(data):
        if field.tag_at == position:
            fields.append(field)
            position = field.end
    assert position == len(data)
    return fields


def assert_refused(run_cli, tmp_path, prototxt, weights, error_class, *mentions, api=True):
    """One clean error line through the CLI, no output file, the old one intact; the same
    class through the API."""
    output = tmp_path / "out.keras"
    output.write_bytes(OLD_OUTPUT)
    argv = [prototxt] + ([weights] if weights else []) + [output]
    code, out, err = run_cli("convert", *argv)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("caffe2keras: error: "), err
    assert code == error_class.exit_code, err
    assert "Traceback" not in err and out == ""
    for mention in mentions:
        assert mention in lines[0], (mention, lines[0])
    assert output.read_bytes() == OLD_OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    if api:
        with pytest.raises(error_class), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            convert(str(prototxt), str(weights) if weights else None)
    return lines[0]


def assert_converts(run_cli, tmp_path, prototxt, weights, *warned):
    output = tmp_path / "out.h5"
    code, _, err = run_cli("convert", prototxt, weights, output)
    assert code == 0 and output.is_file(), err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    for words in warned:
        assert any(all(w in line for w in words) for line in warnings), (words, err)
    output.unlink()
    return warnings


# ------------------------------------------------------------------ truncated caffemodels

def _cut_points(data: bytes) -> tuple[list[int], set[int]]:
    boundaries = {field.end for field in top_level(data)}
    spread = set(np.linspace(1, len(data) - 1, 120).astype(int).tolist())
    near = {b + d for b in boundaries for d in (-1, 1)}
    cuts = sorted(c for c in spread | near | boundaries | {0, 1, 5, 11, 12} if 0 <= c < len(data))
    return cuts, boundaries


def test_every_prefix_of_a_real_caffemodel_is_refused_or_read_as_far_as_it_goes(tmp_path):
    prototxt, data = caffenet()
    cuts, boundaries = _cut_points(data)
    assert len(cuts) > 150
    path = tmp_path / "cut.caffemodel"
    for cut in cuts:
        path.write_bytes(data[:cut])
        if cut == 0:
            with pytest.raises(errors.ParseError, match="caffemodel is empty"):
                prepare(prototxt, str(path))
        elif cut not in boundaries:
            with pytest.raises(errors.ParseError, match="truncated or corrupt") as info:
                prepare(prototxt, str(path))
            assert str(path) in str(info.value)
        elif not caffe_pb2.NetParameter.FromString(data[:cut]).layer:
            with pytest.raises(errors.ParseError, match="holds no layers"):
                prepare(prototxt, str(path))
        else:
            # Cut between two layers: a valid, shorter file. Caffe keeps the fillers of the
            # layers it lacks, and so do we, naming them in a warning.
            net = prepare(prototxt, str(path))
            kept = {layer.name for layer in caffe_pb2.NetParameter.FromString(data[:cut]).layer}
            missing = [layer.name for layer in net.layers if layer.name not in kept
                       and layer.type in ("Convolution", "InnerProduct")]
            if missing:
                assert any("keep the prototxt's fillers" in w and missing[-1] in w
                           for w in net.warnings), net.warnings


@pytest.mark.parametrize("where", ["inside_a_blob", "inside_a_name", "one_byte_short"])
def test_a_truncated_caffemodel_gives_one_line_and_no_file(tmp_path, run_cli, where):
    prototxt, data = caffenet()
    conv1 = top_level(data)[2]
    cut = {"inside_a_blob": conv1.start + 500, "inside_a_name": conv1.start + 3,
           "one_byte_short": len(data) - 1}[where]
    path = nb.write(tmp_path, "cut.caffemodel", data[:cut])
    assert_refused(run_cli, tmp_path, prototxt, path, errors.ParseError, path,
                   "truncated or corrupt")


def test_a_cut_between_layers_converts_with_a_warning_naming_the_missing_ones(tmp_path, run_cli):
    prototxt, data = caffenet()
    fields = top_level(data)
    fc6 = next(f for f in fields if b"fc6" in data[f.start:f.start + 8])
    path = nb.write(tmp_path, "cut.caffemodel", data[:fc6.tag_at])
    assert_converts(run_cli, tmp_path, prototxt, path, ("fillers", "fc6", "fc7", "fc8"))


# ------------------------------------------------------------------ bit flips

def _blob_fields(data: bytes, layer_name: bytes):
    """(the layer's field, its first blob's fields) in a V2 caffemodel."""
    layer = next(f for f in top_level(data) if data[f.start + 2:f.start + 2 + len(layer_name)]
                 == layer_name)
    inside = [f for f in wire_fields(data) if layer.start <= f.tag_at and f.end <= layer.end]
    blob = next(f for f in inside if f.number == 7)  # LayerParameter.blobs
    return layer, [f for f in inside if blob.start <= f.tag_at and f.end <= blob.end]


@pytest.mark.parametrize("value, words", [(float("nan"), "1 NaN and 0 infinite"),
                                          (float("-inf"), "0 NaN and 1 infinite")])
def test_nan_or_inf_weights_convert_with_a_warning_naming_the_layer(tmp_path, run_cli, value, words):
    prototxt, data = caffenet()
    _, blob = _blob_fields(data, b"conv2")
    payload = next(f for f in blob if f.number == 5)  # BlobProto.data, packed
    buffer = bytearray(data)
    buffer[payload.start + 40:payload.start + 44] = struct.pack("<f", value)
    path = nb.write(tmp_path, "nan.caffemodel", bytes(buffer))
    net = prepare(prototxt, path)
    assert any("'conv2' (Convolution): blob 0" in w and words in w for w in net.warnings)
    assert_converts(run_cli, tmp_path, prototxt, path, ("'conv2'", "blob 0", words))


def test_a_flipped_bit_in_a_layer_length_is_refused(tmp_path, run_cli):
    prototxt, data = caffenet()
    layer, _ = _blob_fields(data, b"conv2")
    buffer = bytearray(data)
    buffer[layer.length_at] ^= 0x10
    path = nb.write(tmp_path, "flip.caffemodel", bytes(buffer))
    assert_refused(run_cli, tmp_path, prototxt, path, errors.ParseError, path)


def test_a_flipped_bit_in_a_blob_dimension_is_refused(tmp_path, run_cli):
    prototxt, data = caffenet()
    _, blob = _blob_fields(data, b"conv2")
    shape = next(f for f in blob if f.number == 7)  # BlobProto.shape
    dims = next(f for f in wire_fields(data) if f.tag_at == shape.start)  # BlobShape.dim, packed
    buffer = bytearray(data)
    buffer[dims.start] ^= 0x01  # the first dimension (num_output) changes by one
    path = nb.write(tmp_path, "flip.caffemodel", bytes(buffer))
    assert_refused(run_cli, tmp_path, prototxt, path, errors.ParseError, "'conv2'", "blob 0",
                   "needs")


@pytest.mark.parametrize("seed", range(6))
def test_random_bit_flips_give_a_model_or_one_of_our_errors(tmp_path, seed):
    """Every flip ends in a Keras model that runs (same output shape as the intact one) or in
    one of our errors; never another exception. Half the flips hit the protobuf structure
    (tags and lengths), half anywhere (mostly float payloads), so both outcomes happen."""
    prototxt, data = caffenet()
    structure = sorted({f.tag_at for f in wire_fields(data)}
                       | {f.length_at for f in wire_fields(data) if f.length_at is not None})
    intact = convert(prototxt, str(CAFFENET / "weights.caffemodel"))
    x = np.random.default_rng(seed).standard_normal((2, *intact.input_shape[1:]), np.float32)
    want_shape = np.asarray(intact(x)).shape
    rng = np.random.default_rng(seed)
    path = tmp_path / "flips.caffemodel"
    outcomes = {"model": 0, "error": 0}
    for i in range(25):
        buffer = bytearray(data)
        pool = structure if i % 2 else range(len(data))
        for position in rng.choice(pool, size=rng.integers(1, 4)):
            buffer[position] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(buffer))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NaN weights, filler fallbacks: warned, fine
                model = convert(prototxt, str(path))
        except errors.CaffeToKerasError:
            outcomes["error"] += 1
            continue
        assert np.asarray(model(x)).shape == want_shape
        outcomes["model"] += 1
    assert outcomes["model"] and outcomes["error"], outcomes


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100, 65536])
def test_random_bytes_of_any_size_are_refused(tmp_path, run_cli, size):
    prototxt, _ = caffenet()
    path = nb.write(tmp_path, "random.caffemodel", np.random.default_rng(size).bytes(size))
    assert_refused(run_cli, tmp_path, prototxt, path, errors.ParseError, path)


# ------------------------------------------------------------------ files in the wrong place

def test_files_swapped(tmp_path, run_cli):
    prototxt, data = caffenet()
    weights = nb.write(tmp_path, "w.caffemodel", data)
    assert_refused(run_cli, tmp_path, weights, prototxt, errors.ParseError, weights, "binary file")
    assert_refused(run_cli, tmp_path, prototxt, prototxt, errors.ParseError, prototxt,
                   "not a binary caffemodel")
    empty = nb.write(tmp_path, "empty.caffemodel", b"")
    assert_refused(run_cli, tmp_path, prototxt, empty, errors.ParseError, "empty")
    empty_text = nb.write(tmp_path, "empty.prototxt", "")
    assert_refused(run_cli, tmp_path, empty_text, None, errors.StructureError, empty_text,
                   "no layers and no inputs")


def test_weights_of_another_net_with_the_same_layer_names(tmp_path, run_cli):
    prototxt, _ = caffenet()
    other = str(ROOT / "fixtures" / "vgg_cnn_s" / "weights.caffemodel")
    assert_refused(run_cli, tmp_path, prototxt, other, errors.WeightsMismatchError, "'conv1'",
                   "blob 0 has shape")


def test_weights_of_a_net_sharing_no_layer_name_keep_every_filler_with_a_warning(tmp_path, run_cli):
    prototxt, _ = caffenet()
    other = str(ROOT / "fixtures" / "googlenet" / "weights.caffemodel")
    assert_converts(run_cli, tmp_path, prototxt, other, ("8 layer(s) have no weights", "conv1"))


# ------------------------------------------------------------------ nets that do not hold together

def _weights_with(tmp_path, change) -> tuple[str, str]:
    net = nb.v2_net()
    model = nb.with_blobs(net, nb.seeded_blobs(nb.V2_BLOB_SHAPES))
    change(model)
    return (nb.write(tmp_path, "deploy.prototxt", net),
            nb.write(tmp_path, "model.caffemodel", model))


def _text(tmp_path, text: str) -> str:
    return nb.write(tmp_path, "bad.prototxt", text)


HEAD = 'input: "data" input_dim: 2 input_dim: 3 input_dim: 11 input_dim: 7\n'


def _layer(name, type_, bottoms, tops, extra=""):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{type_}" {b} {t} {extra} }}\n'


STRUCTURE_CASES = {
    "cyclic_bottoms": (HEAD + _layer("a", "ReLU", ["b"], ["a"]) + _layer("b", "ReLU", ["a"], ["b"]),
                       errors.StructureError, ["'a'", "'b'", "no earlier layer"]),
    "dangling_bottom": (HEAD + _layer("a", "ReLU", ["nowhere"], ["a"]),
                        errors.StructureError, ["'a'", "'nowhere'"]),
    "duplicate_top": (HEAD + _layer("a", "ReLU", ["data"], ["x"]) + _layer("b", "TanH", ["data"], ["x"]),
                      errors.StructureError, ["'x'", "more than one layer", "'b'"]),
    "same_top_twice": (HEAD + _layer("a", "Split", ["data"], ["x", "x"]),
                       errors.StructureError, ["'x'", "more than one layer", "'a'"]),
    "duplicate_layer_name": (HEAD + _layer("a", "ReLU", ["data"], ["x"]) + _layer("a", "TanH", ["x"], ["y"]),
                             errors.StructureError, ["two layers are named 'a'"]),
    "unknown_enum_name": (HEAD + _layer("p", "Pooling", ["data"], ["p"], "pooling_param { pool: MEDIAN }"),
                          errors.ParseError, [":2:", "unknown value 'MEDIAN' for 'pool'"]),
    "unknown_enum_number": (HEAD + _layer("p", "Pooling", ["data"], ["p"], "pooling_param { pool: 7 }"),
                            errors.ParseError, ["unknown value '7' for 'pool'"]),
    "unknown_v1_type": ('input: "data"\nlayers { name: "c" type: CONVOLUTIONAL bottom: "data" top: "c" }',
                        errors.ParseError, [":2:", "CONVOLUTIONAL"]),
    "unknown_layer_type": (HEAD + _layer("s", "Sparkle", ["data"], ["s"]),
                           errors.UnsupportedLayerError, ["'s' (Sparkle)"]),
    "python_layer": (HEAD + _layer("py", "Python", ["data"], ["py"],
                                   "python_param { module: 'os' layer: 'system' }"),
                     errors.UnsupportedLayerError, ["'py' (Python: it runs the Python class",
                                                    "not in the model files"]),
    "absurd_input": ('input: "data" input_dim: 100000 input_dim: 3 input_dim: 100000 input_dim: 100000\n'
                     + _layer("r", "ReLU", ["data"], ["r"]),
                     errors.StructureError, ["'data'", "more than Caffe's limit"]),
    "input_beyond_int32": ('input: "data" input_dim: 1 input_dim: 3 input_dim: 4294967296 input_dim: 2\n',
                           errors.ParseError, ["out of range"]),
    "negative_dim": (HEAD.replace("input_dim: 3", "input_dim: -3") + _layer("r", "ReLU", ["data"], ["r"]),
                     errors.StructureError, ["'data'", "negative"]),
    "zero_kernel": (HEAD + _layer("c", "Convolution", ["data"], ["c"],
                                  "convolution_param { num_output: 2 kernel_size: 0 }"),
                    errors.StructureError, ["'c' (Convolution)", "kernel size must be positive"]),
    "absurd_num_output": (HEAD + _layer("f", "InnerProduct", ["data"], ["f"],
                                        "inner_product_param { num_output: 2000000000 }"),
                          errors.StructureError, ["'f' (InnerProduct)", "2**31 - 1"]),
    "fillers_beyond_the_budget": (HEAD + _layer("f", "InnerProduct", ["data"], ["f"],
                                                "inner_product_param { num_output: 2000000 }"),
                                  errors.StructureError, ["464,000,000 values", "'f'", "caffemodel"]),
    "unknown_filler": (HEAD + _layer("f", "InnerProduct", ["data"], ["f"],
                                     "inner_product_param { num_output: 3 weight_filler { type: 'magic' } }"),
                       errors.StructureError, ["'f' (InnerProduct)", "unknown filler type 'magic'"]),
    "negative_std": (HEAD + _layer("f", "InnerProduct", ["data"], ["f"],
                                   "inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: -1 } }"),
                     errors.StructureError, ["'f' (InnerProduct)", "std must not be negative"]),
    "ave_divisors_beyond_the_budget": (
        'input: "data" input_dim: 1 input_dim: 1 input_dim: 20000 input_dim: 20000\n'
        + _layer("p", "Pooling", ["data"], ["p"], "pooling_param { pool: AVE kernel_size: 2 pad: 1 }"),
        errors.StructureError, ["'p' (Pooling)", "AVE divisors", "precompute"]),
    "infinite_power": (HEAD + _layer("p", "Power", ["data"], ["p"], "power_param { scale: inf }"),
                       errors.StructureError, ["'p' (Power)", "scale is inf"]),
    "nan_threshold": (HEAD + _layer("t", "Threshold", ["data"], ["t"], "threshold_param { threshold: nan }"),
                      errors.StructureError, ["'t' (Threshold)", "threshold is nan"]),
    "nan_reduction_coeff": (HEAD + _layer("r", "Reduction", ["data"], ["r"], "reduction_param { coeff: nan }"),
                            errors.StructureError, ["'r' (Reduction)", "coeff is nan"]),
    "exp_overflow": (HEAD + _layer("e", "Exp", ["data"], ["e"], "exp_param { base: 10 shift: 1e30 }"),
                     errors.StructureError, ["'e' (Exp)", "overflows"]),
    "log_base_one": (HEAD + _layer("l", "Log", ["data"], ["l"], "log_param { base: 1 }"),
                     errors.StructureError, ["'l' (Log)", "base 1"]),
    "negative_exp_base": (HEAD + _layer("e", "Exp", ["data"], ["e"], "exp_param { base: -2 }"),
                          errors.StructureError, ["'e' (Exp)", "base must be positive", "-2.0"]),
    "zero_aspect_ratio": (HEAD + _layer("pb", "PriorBox", ["data", "data"], ["pb"],
                                        "prior_box_param { min_size: 4 aspect_ratio: 0 }"),
                          errors.StructureError, ["'pb' (PriorBox)", "aspect_ratio must be positive"]),
    "nan_min_size": (HEAD + _layer("pb", "PriorBox", ["data", "data"], ["pb"],
                                   "prior_box_param { min_size: nan }"),
                     errors.StructureError, ["'pb' (PriorBox)", "min_size must be positive"]),
    "deep_nesting": ("layer { fork " + "{ a: 1 " * 5000 + "}" * 5000 + " }",
                     errors.ParseError, [":1:", "nested deeper than"]),
    "binary_zero_in_text": (HEAD + "\x00", errors.ParseError, ["binary file"]),
    "mixed_formats": (HEAD + _layer("a", "ReLU", ["data"], ["a"])
                      + 'layers { name: "b" type: RELU bottom: "a" top: "b" }',
                      errors.StructureError, ["'layer' and 'layers'"]),
    "include_and_exclude": (HEAD + _layer("a", "ReLU", ["data"], ["a"],
                                          "include { phase: TEST } exclude { phase: TRAIN }"),
                            errors.StructureError, ["'a'", "both include and exclude"]),
}


@pytest.mark.parametrize("name", STRUCTURE_CASES)
def test_structure_cases(tmp_path, run_cli, name):
    text, error_class, mentions = STRUCTURE_CASES[name]
    path = _text(tmp_path, text)
    line = assert_refused(run_cli, tmp_path, path, None, error_class, *mentions)
    assert path in line or re.search(r"(layer|input) '[^']+'|'[^']+' \(", line)  # file or culprit


WEIGHT_CASES = {
    "missing_blob": (lambda m: m.layer[0].blobs.pop(), errors.WeightsMismatchError,
                     ["'conv1' (Convolution)", "has 1 weight blob(s)", "expects 2"]),
    "extra_blob": (lambda m: m.layer[0].blobs.add().CopyFrom(nb.blob(np.ones(4, np.float32))),
                   errors.WeightsMismatchError, ["'conv1'", "has 3 weight blob(s)"]),
    "fewer_values": (lambda m: m.layer[3].blobs[0].data.pop(), errors.ParseError,
                     ["'fc'", "blob 0", "needs 240 values, the file has 239"]),
    "more_values": (lambda m: m.layer[3].blobs[0].data.append(1.0), errors.ParseError,
                    ["'fc'", "blob 0", "the file has 241"]),
    "swapped_kernel": (lambda m: m.layer[0].blobs[0].shape.dim.__setitem__(slice(None), [4, 3, 2, 3]),
                       errors.WeightsMismatchError, ["'conv1'", "(4, 3, 2, 3)", "(4, 3, 3, 2)"]),
    "absurd_blob_dims": (lambda m: m.layer[0].blobs[0].shape.dim.__setitem__(slice(None), [2**40, 3]),
                         errors.ParseError, ["'conv1'", "needs"]),
    "negative_blob_dim": (lambda m: m.layer[0].blobs[0].shape.dim.__setitem__(slice(None), [4, -3, 3, 2]),
                          errors.ParseError, ["'conv1'", "negative"]),
    "unknown_v1_type_number": (None, errors.StructureError, ["unknown V1 layer type enum value 999"]),
}


@pytest.mark.parametrize("name", WEIGHT_CASES)
def test_weight_cases(tmp_path, run_cli, name):
    change, error_class, mentions = WEIGHT_CASES[name]
    if change is None:  # a V1 caffemodel whose layer type number the schema does not know
        prototxt = nb.write(tmp_path, "deploy.prototxt", nb.v2_net())
        layer = caffe_pb2.V1LayerParameter(name="conv1", bottom=["data"], top=["conv1"])
        layer_bytes = layer.SerializeToString() + bytes([5 << 3, 0xE7, 0x07])  # type: 999
        data = bytes([2 << 3 | 2, len(layer_bytes)]) + layer_bytes  # NetParameter.layers
        weights = nb.write(tmp_path, "model.caffemodel", data)
    else:
        prototxt, weights = _weights_with(tmp_path, change)
    assert_refused(run_cli, tmp_path, prototxt, weights, error_class, *mentions)


def test_extra_blobs_a_fork_adds_to_batchnorm_are_ignored_with_a_warning(tmp_path, run_cli):
    text = HEAD + _layer("bn", "BatchNorm", ["data"], ["bn"])
    prototxt = _text(tmp_path, text)
    model = caffe_pb2.NetParameter()
    layer = model.layer.add(name="bn", type="BatchNorm")
    for array in (np.zeros(3), np.ones(3), np.ones(1), np.ones(3)):
        layer.blobs.add().CopyFrom(nb.blob(array.astype(np.float32)))
    weights = nb.write(tmp_path, "bn.caffemodel", model)
    assert_converts(run_cli, tmp_path, prototxt, weights, ("'bn'", "ignoring 1 weight blob"))


# ------------------------------------------------------------------ the library never exits

def test_the_library_never_calls_exit():
    """Only the command's ``if __name__ == "__main__"`` line may end the process."""
    import ast
    calls = []
    for path in sorted((ROOT / "caffe2keras").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        main_guards = [node for node in tree.body if isinstance(node, ast.If)
                       and "__main__" in ast.unparse(node.test)]
        allowed = {id(n) for guard in main_guards for n in ast.walk(guard)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and id(node) not in allowed:
                name = ast.unparse(node.func)
                if name in ("sys.exit", "exit", "quit", "os._exit", "os.abort"):
                    calls.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not calls, calls


def test_a_byte_order_mark_is_not_an_error(tmp_path):
    path = tmp_path / "bom.prototxt"
    path.write_bytes(b"\xef\xbb\xbf" + str(nb.v2_net()).encode())
    assert [layer.name for layer in load_net(str(path)).layers][:2] == ["conv1", "relu1"]


def test_a_data_layer_whose_first_convolution_has_flat_weights(tmp_path, run_cli):
    """train_val nets take the data layer's channels from the first convolution's weights."""
    net = nb.train_val_net()
    for layer in net.layer[:2]:  # no per-channel means: the channels come from conv1
        layer.transform_param.ClearField("mean_value")
    prototxt = nb.write(tmp_path, "train_val.prototxt", net)
    weights = nb.write(tmp_path, "flat.caffemodel",
                       nb.with_blobs(net, {"conv1": [np.ones(4, np.float32)]}))
    assert_refused(run_cli, tmp_path, prototxt, weights, errors.WeightsMismatchError,
                   "'conv1' (Convolution)", "(4,)", "'data'")


def test_a_negative_relu_slope_converts_as_caffe_computes_it(tmp_path):
    """Caffe takes any negative_slope; Keras' ReLU refuses a negative one (it was a crash)."""
    path = _text(tmp_path, HEAD + _layer("r", "ReLU", ["data"], ["r"], "relu_param { negative_slope: -0.5 }"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert(path)
    x = np.linspace(-3, 3, 2 * 3 * 11 * 7, dtype=np.float32).reshape(2, 11, 7, 3)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.where(x > 0, x, -0.5 * x), rtol=1e-6)


@pytest.mark.parametrize("clash", ["like_the_input", "after_slash_mapping"])
def test_keras_name_clashes_are_refused_with_both_names(tmp_path, clash):
    """Keras needs unique layer names: a layer named like the input, or two names that become
    equal once '/' is replaced, is refused naming both instead of failing inside Keras."""
    first, second = ("data", None) if clash == "like_the_input" else ("a/b", "a_b")
    layers = [f'layer {{ name: "{first}" type: "ReLU" bottom: "data" top: "r1" }}']
    if second:
        layers.append(f'layer {{ name: "{second}" type: "ReLU" bottom: "r1" top: "r2" }}')
    prototxt = tmp_path / "clash.prototxt"
    prototxt.write_text('input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 4 }\n'
                        + "\n".join(layers))
    with pytest.raises(errors.StructureError, match="already taken by") as error:
        convert(str(prototxt))
    assert ("input 'data'" if second is None else "layer 'a/b'") in str(error.value)
