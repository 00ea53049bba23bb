"""What a conversion did, and the one-screen summary ``caffe2keras convert`` prints at the end."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ConversionReport:
    """Returned by :func:`caffe2keras.convert_file`."""

    output: str
    kind: str  # the format's name: "keras", "h5", "savedmodel", "onnx", "tflite", ...
    description: str  # the format in words
    caffe_layers: int  # in the net as read (after phase filtering and --outputs pruning)
    keras_layers: int  # in the model, inputs not counted
    parameters: int
    inputs: list[tuple[str, tuple]]  # Keras names and shapes (batch None)
    outputs: list[tuple[str, tuple]]  # Caffe blob names and Keras shapes
    size_bytes: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    folded: int = 0  # BatchNorm/Scale layers folded into convolutions
    fused: int = 0  # BatchNorm+Scale pairs made one BatchNormalization
    preprocess: str | None = None  # the transform in words, when embedded
    check: str | None = None  # the runtime check's result in words (runtime formats only)
    silenced: list[str] = field(default_factory=list)  # outputs that only Silence layers read
    notes: list[str] = field(default_factory=list)  # what reading changed (train/val nets)


def _shape(shape) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def format_summary(report: ConversionReport) -> str:
    rows = [("output", f"{report.output} ({report.description})"),
            ("layers", f"{report.caffe_layers} Caffe -> {report.keras_layers} Keras"),
            ("parameters", f"{report.parameters:,} ({_size(report.parameters * 4)} as float32)"),
            ("inputs", ", ".join(f"{name} {_shape(shape)}" for name, shape in report.inputs)),
            ("outputs", ", ".join(f"{name} {_shape(shape)}" for name, shape in report.outputs))]
    rows += [("note", f"{name}: read only by Silence, made an output") for name in report.silenced]
    rows += [("note", note) for note in report.notes]
    if report.preprocess:
        rows.append(("preprocess", report.preprocess))
    if report.folded:
        rows.append(("folded", f"{report.folded} BatchNorm/Scale layer(s) into convolutions"))
    if report.fused:
        rows.append(("fused", f"{report.fused} BatchNorm+Scale pair(s) into BatchNormalization"))
    if report.check:
        rows.append(("check", report.check))
    rows.append(("file size", _size(report.size_bytes)))
    stages = ", ".join(f"{label} {seconds:.1f}" for label, seconds in report.stage_seconds.items())
    rows.append(("time", f"{report.seconds:.1f} s" + (f" ({stages})" if stages else "")))
    rows.append(("warnings", f"{len(report.warnings)}" + (" (above)" if report.warnings else "")))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label.ljust(width)}  {text}" for label, text in rows)
