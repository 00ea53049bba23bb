"""The Python API: the steps of a conversion, each usable on its own.

``read`` (files -> checked, shaped IR with every weight) -> ``apply_passes`` (folding, fusion,
preprocessing) -> ``build_model`` (IR -> keras.Model) -> ``write_output`` (a Keras file, a
SavedModel, or an artifact for a runtime, checked in that runtime). ``prepare`` is the first
two; ``convert`` and ``convert_file`` run them all.
"""

from __future__ import annotations

import time
import warnings

from .build import build_model
from .export import export_saved_model, output_size
from .fillers import fill_missing_weights
from .fold import fold_batchnorm as fold_batchnorm_pass
from .formats import for_output
from .formats.check import DEFAULT_TOLERANCE
from .ir import Net
from .passes import fuse_batchnorm_scale
from .preprocess import Preprocess, add_preprocessing, read_mean
from .progress import Progress
from .reader.loader import load_net
from .save import save_model  # noqa: F401  (caffe2keras.api.save_model: .h5/.keras only)
from .registry import check_supported
from .shapes import infer_shapes
from .summary import ConversionReport


def read(prototxt: str, caffemodel: str | None = None,
         input_shapes: dict[str, tuple[int, ...]] | None = None,
         outputs: list[str] | None = None) -> Net:
    """Read, check and shape the net; fill weights the caffemodel lacks from the fillers."""
    net = load_net(prototxt, caffemodel, input_shapes=input_shapes, outputs=outputs)
    check_supported(net)  # before shapes: a type without a shape rule is unsupported too
    infer_shapes(net)
    filled = fill_missing_weights(net)
    if filled and caffemodel:
        net.warn(f"{len(filled)} layer(s) have no weights in {caffemodel} and keep the prototxt's "
                 f"fillers, as in Caffe: {', '.join(filled)}")
    elif filled:
        net.warn("no caffemodel given: weights come from the prototxt's fillers")
    return net


def apply_passes(net: Net, fuse_batchnorm: bool = True, fold_batchnorm: bool = False,
                 preprocess: Preprocess | None = None, mean=None) -> dict[str, int]:
    """The optional IR passes, in order: fold, fuse, preprocess (``mean``: ``read_mean``'s
    result when already read). Returns how many layers folding and fusion absorbed."""
    count = len(net.layers)
    if fold_batchnorm:
        fold_batchnorm_pass(net)
    folded = count - len(net.layers)
    if fuse_batchnorm:
        fuse_batchnorm_scale(net)
    fused = count - folded - len(net.layers)
    if preprocess is not None:
        add_preprocessing(net, preprocess, mean)
    return {"folded": folded, "fused": fused}


def prepare(prototxt: str, caffemodel: str | None = None,
            input_shapes: dict[str, tuple[int, ...]] | None = None,
            fuse_batchnorm: bool = True, outputs: list[str] | None = None, *,
            fold_batchnorm: bool = False, preprocess: Preprocess | None = None) -> Net:
    """Read, check and shape the net, fill missing weights, apply the passes. No Keras yet."""
    mean = read_mean(preprocess.mean) if preprocess is not None else None  # fail before reading
    net = read(prototxt, caffemodel, input_shapes, outputs)
    apply_passes(net, fuse_batchnorm, fold_batchnorm, preprocess, mean)
    return net


def convert(prototxt: str, caffemodel: str | None = None,
            input_shapes: dict[str, tuple[int, ...]] | None = None,
            fuse_batchnorm: bool = True, outputs: list[str] | None = None, *,
            fold_batchnorm: bool = False, preprocess: Preprocess | None = None):
    """Convert a Caffe net into a ``keras.Model`` that computes what Caffe computes.

    ``caffemodel``: the weights; without them, the prototxt's fillers (with a warning).
    ``input_shapes`` maps input names to Caffe-order shapes (N, C, H, W) and overrides
    the prototxt's; the Keras batch size stays free. Each 4-D blob is NHWC in Keras.
    ``outputs`` names Caffe layers whose tops the model returns (e.g. ``["fc7"]``): only
    the layers needed for them are built, and only their weights are read.
    ``fuse_batchnorm``: a BatchNorm followed by its Scale becomes one Keras
    BatchNormalization named after the Scale layer (fine-tunes like Caffe's pair).
    ``fold_batchnorm``: a BatchNorm and Scale after a convolution are folded into it (for
    inference; see :mod:`caffe2keras.fold`). ``preprocess``: a :class:`Preprocess` to embed
    Caffe's input transform as the model's first layer (see :mod:`caffe2keras.preprocess`).
    Warnings (unknown fork fields, filler weights) are issued with :func:`warnings.warn`.
    Errors are :class:`caffe2keras.CaffeToKerasError` subclasses.
    """
    net = prepare(prototxt, caffemodel, input_shapes, fuse_batchnorm, outputs,
                  fold_batchnorm=fold_batchnorm, preprocess=preprocess)
    model = build_model(net)  # converters may add warnings while building
    for message in net.warnings:
        warnings.warn(message, stacklevel=2)
    return model


def write_output(model, output: str, format: str | None = None, check: bool = True,
                 tolerance: float = DEFAULT_TOLERANCE, stage=None):
    """Write ``model`` to ``output`` in ``format`` (a name from ``formats.format_names()``; by
    default the output's extension), atomically. A runtime format (ONNX, LiteRT, OpenVINO,
    torch) is first run in its runtime on a probe input and compared with the model (unless
    ``check`` is false): beyond ``tolerance`` of an output's largest value, ExportCheckError
    and nothing written. Returns the format and the checks (None when not checked).
    ``stage(label)``: a context manager timing each stage (``Progress.stage``)."""
    from contextlib import nullcontext
    from .formats.write import write_artifact
    from .save import save_model

    fmt = for_output(output, format)
    stage = stage or (lambda label: nullcontext())
    if fmt.name == "savedmodel":
        with stage("write"):
            export_saved_model(model, output)
        return fmt, None
    if not fmt.checked:
        with stage("write"):
            save_model(model, output)
        return fmt, None
    return fmt, write_artifact(model, output, fmt, check=check, tolerance=tolerance, stage=stage)


def convert_file(prototxt: str, caffemodel: str | None, output: str,
                 input_shapes: dict[str, tuple[int, ...]] | None = None,
                 fuse_batchnorm: bool = True, outputs: list[str] | None = None, *,
                 fold_batchnorm: bool = False,
                 preprocess: Preprocess | None = None,
                 format: str | None = None, check: bool = True,
                 progress: Progress | None = None) -> ConversionReport:
    """Convert and write to ``output``, atomically: a ``.keras`` or ``.h5`` file, a TensorFlow
    SavedModel folder (a path ending in ``/``), or an artifact for a runtime: ``.onnx`` (ONNX
    Runtime), ``.tflite`` (LiteRT), ``.xml`` (OpenVINO IR, with its ``.bin``), ``.pt2``
    (torch.export). ``format`` names the format instead of the extension. Runtime artifacts
    are checked in their runtime against the Keras model unless ``check`` is false (see
    :func:`write_output`). Options as in :func:`convert`; ``progress`` shows the stages (see
    :mod:`caffe2keras.progress`). Returns a :class:`~caffe2keras.summary.ConversionReport`
    (its warnings and the check included)."""
    start = time.perf_counter()
    fmt = for_output(output, format)  # refuse a bad output before the slow part
    progress = progress or Progress(enabled=False)
    mean = read_mean(preprocess.mean) if preprocess is not None else None
    with progress.stage("read"):
        net = read(prototxt, caffemodel, input_shapes, outputs)
        caffe_layers = len(net.layers)
        changes = apply_passes(net, fuse_batchnorm, fold_batchnorm, preprocess, mean)
    weighted = [layer for layer in net.layers if layer.blobs]
    with progress.stage("build", done=lambda: sum(not layer.blobs for layer in weighted),
                        total=len(weighted)):
        model = build_model(net)
    _, checks = write_output(model, output, fmt.name, check=check, stage=progress.stage)
    transform = None
    if preprocess is not None:
        from .layers import CaffePreprocess
        transform = next(layer for layer in model.layers
                         if isinstance(layer, CaffePreprocess)).describe()
    return ConversionReport(
        output=output, kind=fmt.name, description=fmt.description, caffe_layers=caffe_layers,
        keras_layers=sum(1 for layer in model.layers if type(layer).__name__ != "InputLayer"),
        parameters=model.count_params(),
        inputs=[(tensor.name, tuple(tensor.shape)) for tensor in model.inputs],
        outputs=[(net.blob_name(value), tuple(tensor.shape))
                 for value, tensor in zip(net.outputs, model.outputs)],
        silenced=[net.blob_name(value) for value in net.silenced_outputs()],
        notes=list(net.notes),
        size_bytes=sum(output_size(path) for path in fmt.files(output)),
        seconds=time.perf_counter() - start,
        stage_seconds=dict(progress.timings), warnings=list(net.warnings),
        folded=changes["folded"], fused=changes["fused"], preprocess=transform,
        check=None if not fmt.checked else _check_summary(fmt, checks))


def _check_summary(fmt, checks) -> str:
    if checks is None:
        return "skipped (--no-check)"
    worst = max(checks, key=lambda check: check.relative_error)
    return (f"{fmt.runtime}: {len(checks)} output(s) match Keras, largest error "
            f"{worst.relative_error:.2g} of max |value| ({worst.name})")
