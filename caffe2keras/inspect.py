"""The ``inspect`` report: a net's layers with Caffe's shapes, parameter counts and converters."""

from __future__ import annotations

from .ir import Net
from .registry import has_converter, refused_types
from .shapes import infer_shapes


def _shape_text(shape) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


def _converter_cell(type_: str) -> str:
    if has_converter(type_):
        return "yes"
    return "refused" if type_ in refused_types() else "NO"


def inspect_rows(net: Net) -> list[tuple[str, ...]]:
    rows = []
    names = net.blob_names()
    for name, shape in net.inputs.items():
        rows.append((name, "Input", "", name, _shape_text(shape), "0", "yes"))
    for layer in net.layers:
        shapes = ", ".join(_shape_text(net.shapes.get(t)) for t in layer.tops) or "-"
        params = sum(blob.size for blob in layer.blobs)
        rows.append((layer.name, layer.type, ", ".join(names.get(b, b) for b in layer.bottoms),
                     ", ".join(layer.top_blobs), shapes,
                     f"{params:,}" if layer.blobs else "-",
                     _converter_cell(layer.type)))
    return rows


def format_report(net: Net) -> str:
    infer_shapes(net, strict=False)
    header = ("layer", "type", "bottoms", "tops", "top shape (NCHW)", "params", "converter")
    rows = inspect_rows(net)
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    total = sum(blob.size for layer in net.layers for blob in layer.blobs)
    refused = refused_types()
    missing = sorted({layer.type for layer in net.layers
                      if not has_converter(layer.type) and layer.type not in refused})
    by_design = sorted({layer.type for layer in net.layers if layer.type in refused})
    lines.append("")
    lines.append(f"{len(net.layers)} layers, {len(net.inputs)} input(s), outputs: "
                 f"{', '.join(net.blob_names().get(v, v) for v in net.outputs) or '-'}")
    lines.append(f"{total:,} parameters ({total * 4 / 2**20:.1f} MiB as float32)")
    if missing:
        lines.append(f"no converter for: {', '.join(missing)}")
    for type_ in by_design:
        lines.append(f"refused: {type_} ({refused[type_]})")
    unknown = [layer.name for layer in net.layers if any(t not in net.shapes for t in layer.tops)]
    if unknown:
        lines.append(f"shapes unknown from layer {unknown[0]!r} on (no shape rule upstream)")
    for warning in net.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
