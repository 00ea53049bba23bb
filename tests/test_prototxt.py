"""The prototxt text parser (caffe2keras.reader.prototxt): quirks of real files, fields from
Caffe forks, and syntax errors reported with file, line and column."""

from __future__ import annotations

import math

import pytest
from google.protobuf import text_format

from caffe2keras.errors import ParseError
from caffe2keras.proto import caffe_pb2
from caffe2keras.reader import prototxt
from caffe2keras.reader.loader import load_net
from caffe2keras.reader.prototxt import parse_text, read_text_file

PATH = "nets/deploy.prototxt"


def parse(text: str) -> tuple[caffe_pb2.NetParameter, list[str]]:
    net = caffe_pb2.NetParameter()
    result = parse_text(text, net, PATH)
    return net, result.unknown_fields


def parse_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(text)
    return info.value


PLAIN = """
name: "plain"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 11 input_dim: 7
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 0 pad_w: 1 }
}
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 2 stride_h: 2 stride_w: 1 } }
"""


def test_plain_text_reads_as_protobuf_reads_it():
    net, unknown = parse(PLAIN)
    assert unknown == []
    assert net == text_format.Parse(PLAIN, caffe_pb2.NetParameter())
    assert net.layer[1].pooling_param.pool == caffe_pb2.PoolingParameter.AVE


def test_quirks_of_hand_written_files():
    quirky = ("# a comment line\r\n"
              "name: 'plain';  # single quotes, a ';' separator\r\n"
              "input: \"data\",\tinput_dim: [2, 3, 11, 7]\n"
              "layer < name: 'conv1'; type: \"Convolution\"; bottom: 'data'; top: 'conv1'\n"
              "\tconvolution_param: { num_output: 4, kernel_h: 3 kernel_w: 2 pad_h: 0 pad_w: 1 } >\n"
              "layer { name: \"pool1\" type: 'Pooling' bottom: 'conv1' top: 'pool1' ;\n"
              "  pooling_param { pool: AVE kernel_size: 2 stride_h: 2 stride_w: 1 } }\n")
    net, unknown = parse(quirky)
    assert unknown == []
    assert net == text_format.Parse(PLAIN, caffe_pb2.NetParameter())


def test_hash_inside_a_string_is_not_a_comment():
    net, _ = parse('name: "a # b" input: "x"')
    assert (net.name, list(net.input)) == ("a # b", ["x"])


@pytest.mark.parametrize("text, dims", [
    ("input_dim: [2, 3, 11, 7]", [2, 3, 11, 7]),
    ("input_dim: []", []),
    ("input_dim: 5 input_dim: [6, 8] input_dim: 9", [5, 6, 8, 9]),
])
def test_short_repeated_form(text, dims):
    net, _ = parse(text)
    assert list(net.input_dim) == dims


def test_short_repeated_form_of_messages():
    net, _ = parse("layer [ { name: 'a' }, { name: 'b' } ] layer { name: 'c' }")
    assert [layer.name for layer in net.layer] == ["a", "b", "c"]


def test_numbers_in_every_spelling():
    net, _ = parse("""
        input_dim: 0x1F input_dim: -4 input_dim: +6
        layer { relu_param { negative_slope: 2.5e-1 } }
        layer { relu_param { negative_slope: .5f } }
        layer { relu_param { negative_slope: -inf } }
        layer { relu_param { negative_slope: nan } }
        force_backward: t debug_info: 0
    """)
    assert list(net.input_dim) == [31, -4, 6]
    slopes = [layer.relu_param.negative_slope for layer in net.layer]
    assert slopes[:3] == [0.25, 0.5, -math.inf] and math.isnan(slopes[3])
    assert net.force_backward is True and net.debug_info is False


def test_string_escapes_and_concatenation():
    net, _ = parse(r"""name: "tab\there \"q\" 'x' \\ \x41\101\n" 'it\'s' " end" """)
    assert net.name == "tab\there \"q\" 'x' \\ AA\nit's end"


def test_enum_by_name_and_by_number():
    net, _ = parse("layer { pooling_param { pool: 1 } } layer { pooling_param { pool: STOCHASTIC } }")
    assert [layer.pooling_param.pool for layer in net.layer] == [
        caffe_pb2.PoolingParameter.AVE, caffe_pb2.PoolingParameter.STOCHASTIC]


@pytest.mark.parametrize("value", ["MAXX", "max", "7"])
def test_unknown_enum_value_names_the_known_ones(value):
    error = parse_error(f"layer {{\n  pooling_param {{ pool: {value} }}\n}}")
    assert (error.line, error.column) == (2, 25)
    assert repr(value) in str(error) and "MAX, AVE, STOCHASTIC" in str(error)


# ------------------------------------------------------------------ fork fields

FORK = """name: "forked"
layer {
  name: "conv1"
  type: "Convolution"
  engine_hint: "fast"
  convolution_param { num_output: 4 kernel_size: 3 quantize { bits: 8 mode { x: 1 } } }
  tags: [1, 2, 3]
  engine_hint: 'again'
}
layer {
  name: "bn"
  engine_hint: "third time"
  batch_norm_param { scale_bias: true }
  type: "BatchNorm"
}
"""


def test_fork_fields_are_skipped_and_each_reported_once_with_its_first_line():
    net, unknown = parse(FORK)
    assert unknown == ["LayerParameter.engine_hint (line 5)",
                       "ConvolutionParameter.quantize (line 6)",
                       "LayerParameter.tags (line 7)",
                       "BatchNormParameter.scale_bias (line 13)"]
    # What follows a skipped field, at every level, is still read.
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("conv1", "Convolution"), ("bn", "BatchNorm")]
    assert net.layer[0].convolution_param.num_output == 4
    assert list(net.layer[0].convolution_param.kernel_size) == [3]


def test_fork_fields_become_one_warning_of_the_loaded_net(tmp_path):
    path = tmp_path / "forked.prototxt"
    path.write_text("input: 'data' input_shape { dim: 2 dim: 3 dim: 11 dim: 7 }\n"
                    "layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'c'\n"
                    "  engine_hint: 'fast' convolution_param { num_output: 4 kernel_size: 3 }\n"
                    "  tags: [1, 2] }\n"
                    "layer { name: 'relu' type: 'ReLU' bottom: 'c' top: 'c' engine_hint: 'x'\n"
                    "  relu_param { fused: true } }\n")
    net = load_net(str(path))
    assert [layer.name for layer in net.layers] == ["conv1", "relu"]
    assert len(net.warnings) == 1
    warning = net.warnings[0]
    assert warning.startswith(f"{path}: ")
    for field in ("LayerParameter.engine_hint (line 3)", "LayerParameter.tags (line 4)",
                  "ReLUParameter.fused (line 6)"):
        assert warning.count(field) == 1, field
    assert warning.count("engine_hint") == 1


# ------------------------------------------------------------------ syntax errors

@pytest.mark.parametrize("text, line, column, words", [
    ("name: 'a'\nlayer {\n  name: 'b' type:\n}\n", 4, 1, "invalid value '}' for field 'type'"),
    ("layer {\n  name: 'b'\n", 2, 12, "unexpected end of file, expected '}'"),
    ("layer { name: 'b' }\n}", 2, 1, "expected a field name, found '}'"),
    ("name 'a'", 1, 6, "expected ':'"),
    ("input_dim: [1 2]", 1, 15, "expected ','"),
    ("input_dim: 1.5", 1, 12, "invalid value '1.5'"),
    ("input_dim: 99999999999", 1, 12, "out of range"),
    ("name: 3", 1, 7, "invalid value '3' for field 'name'"),
    ("force_backward: yes", 1, 17, "invalid value 'yes'"),
    ("name: 'a'\nname: 'b'", 2, 1, "'name' is set twice"),
    ("name: 'unterminated\n", 1, 7, "unexpected character"),
    ("layer {\n\tname: 'a' @ }", 2, 12, "unexpected character '@'"),
    ("name: 'bad \\q escape'", 1, 7, "unknown escape \\q"),
    ("layer < name: 'a' }", 1, 19, "expected a field name, found '}'"),
    ("layer { fork { a: 1 > }", 1, 21, "expected '}', found '>'"),
    ("layer { fork: }", 1, 15, "expected a value, found '}'"),
    ("layer { fork: [1, 2 }", 1, 22, "expected ']'"),
])
def test_syntax_error_names_file_line_and_column(text, line, column, words):
    error = parse_error(text)
    assert (error.path, error.line, error.column) == (PATH, line, column)
    assert str(error).startswith(f"{PATH}:{line}:{column}: ")
    assert words in str(error)


def test_columns_count_tabs_as_one_character():
    error = parse_error("layer {\n\t\tname: 'a' $\n}")
    assert (error.line, error.column) == (2, 13)


# ------------------------------------------------------------------ nesting limit

def _nested(depth: int) -> str:
    return "layer { fork " + "{ a: 1 " * depth + "}" * depth + " name: 'after' }"


def test_deep_but_reasonable_nesting_is_read():
    net, unknown = parse(_nested(prototxt.MAX_DEPTH - 2))
    assert net.layer[0].name == "after" and unknown == ["LayerParameter.fork (line 1)"]


def test_nesting_beyond_the_limit_is_refused_without_recursion():
    error = parse_error(_nested(100_000))
    assert f"nested deeper than {prototxt.MAX_DEPTH}" in str(error)
    assert error.line == 1 and error.column > 0


# ------------------------------------------------------------------ files

def test_read_text_file_reports_the_path(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text("name: 'n'\n\nlayer { name: 'a' type: }\n")
    with pytest.raises(ParseError) as info:
        read_text_file(str(path), caffe_pb2.NetParameter())
    assert str(info.value).startswith(f"{path}:3:25: ")


def test_binary_file_given_as_prototxt(tmp_path):
    path = tmp_path / "model.caffemodel"
    path.write_bytes(caffe_pb2.NetParameter(name="x", layer=[{"name": "a"}]).SerializeToString()
                     + b"\x00\x01")
    with pytest.raises(ParseError, match="binary file, not a text prototxt"):
        read_text_file(str(path), caffe_pb2.NetParameter())


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.prototxt"
    path.write_bytes("name: 'a'\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ParseError) as info:
        read_text_file(str(path), caffe_pb2.NetParameter())
    assert info.value.line == 2 and "UTF-8" in str(info.value)


def test_oversized_text_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(prototxt, "MAX_TEXT_BYTES", 16)
    with pytest.raises(ParseError, match="more than the 16"):
        parse("name: 'a rather long name'")
    parse("name: 'short'")
