"""The README's generated parts stay current."""

from __future__ import annotations

from pathlib import Path

from caffe2keras.cli import main
from caffe2keras.formats import BATCH_END, BATCH_START, formats_markdown, get_format
from caffe2keras.layer_table import (FORMATS_END, FORMATS_START, README_END, README_START,
                                     RUNTIME_FORMATS, formats_table_markdown,
                                     layer_table_markdown)

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


def test_formats_table_is_current():
    text = README.read_text()
    table = text[text.index(FORMATS_START) + len(FORMATS_START):text.index(FORMATS_END)].strip()
    assert table == formats_table_markdown(), (
        "the README's formats table is stale: paste the output of "
        "`caffe2keras layers --formats --markdown`")


def test_layers_command_shows_the_formats(capsys):
    assert main(["layers", "--formats"]) == 0
    out = capsys.readouterr().out
    families = len(formats_table_markdown().splitlines()) - 2  # minus the header rows
    for name in RUNTIME_FORMATS:
        assert out.count(f"\n    {get_format(name).description}: ") == families


def test_formats_batch_table_is_current():
    text = README.read_text()
    table = text[text.index(BATCH_START) + len(BATCH_START):text.index(BATCH_END)].strip()
    assert table == formats_markdown(), (
        "the README's formats table is stale: paste the output of `python -c \"from "
        "caffe2keras.formats import formats_markdown; print(formats_markdown())\"`")
