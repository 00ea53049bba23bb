"""The README's generated parts stay current."""

from __future__ import annotations

from pathlib import Path

from caffe2keras.cli import main
from caffe2keras.layer_table import README_END, README_START, layer_table_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_supported_layers_table_is_current():
    text = README.read_text()
    table = text[text.index(README_START) + len(README_START):text.index(README_END)].strip()
    assert table == layer_table_markdown(), (
        "the README's layer table is stale: paste the output of `caffe2keras layers --markdown`")


def test_layers_command_lists_every_family(capsys):
    assert main(["layers", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == layer_table_markdown()
    for type_ in ("Convolution", "Pooling", "LRN", "BatchNorm", "Deconvolution", "PriorBox"):
        assert type_ in out
    assert "BatchNorm+Scale" not in out
