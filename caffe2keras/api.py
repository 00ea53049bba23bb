"""The Python API: the steps of a conversion, each usable on its own."""

from __future__ import annotations

import warnings

from .build import build_model
from .fillers import fill_missing_weights
from .ir import Net
from .passes import fuse_batchnorm_scale
from .reader.loader import load_net
from .save import output_format, save_model
from .registry import check_supported
from .shapes import infer_shapes


def prepare(prototxt: str, caffemodel: str | None = None,
            input_shapes: dict[str, tuple[int, ...]] | None = None,
            fuse_batchnorm: bool = True, outputs: list[str] | None = None) -> Net:
    """Read, check and shape the net; fill missing weights; apply the passes. No Keras yet."""
    net = load_net(prototxt, caffemodel, input_shapes=input_shapes, outputs=outputs)
    check_supported(net)  # before shapes: a type without a shape rule is unsupported too
    infer_shapes(net)
    filled = fill_missing_weights(net)
    if filled and caffemodel:
        net.warn(f"{len(filled)} layer(s) have no weights in {caffemodel} and keep the prototxt's "
                 f"fillers, as in Caffe: {', '.join(filled)}")
    elif filled:
        net.warn("no caffemodel given: weights come from the prototxt's fillers")
    if fuse_batchnorm:
        fuse_batchnorm_scale(net)
    return net


def convert(prototxt: str, caffemodel: str | None = None,
            input_shapes: dict[str, tuple[int, ...]] | None = None,
            fuse_batchnorm: bool = True, outputs: list[str] | None = None):
    """Convert a Caffe net into a ``keras.Model`` that computes what Caffe computes.

    ``input_shapes`` maps input names to Caffe-order shapes (N, C, H, W) and overrides
    the prototxt's; the Keras batch size stays free. Each 4-D blob is NHWC in Keras.
    With ``fuse_batchnorm`` a BatchNorm followed by its Scale becomes one Keras
    BatchNormalization named after the Scale layer. Warnings (unknown fork fields,
    filler weights) are issued with :func:`warnings.warn`. ``outputs`` names Caffe layers
    whose outputs the model should return (e.g. ``["fc7"]``): only the layers needed for
    them are built, and only their weights are read.
    """
    net = prepare(prototxt, caffemodel, input_shapes, fuse_batchnorm, outputs)
    for message in net.warnings:
        warnings.warn(message, stacklevel=2)
    return build_model(net)


def convert_file(prototxt: str, caffemodel: str | None, output: str,
                 input_shapes: dict[str, tuple[int, ...]] | None = None,
                 fuse_batchnorm: bool = True, outputs: list[str] | None = None) -> Net:
    """Convert and save to ``output`` (.h5 or .keras), atomically. Returns the prepared net
    (its warnings included) for reporting."""
    output_format(output)  # refuse a bad extension before the slow part
    net = prepare(prototxt, caffemodel, input_shapes, fuse_batchnorm, outputs)
    model = build_model(net)
    save_model(model, output)
    return net
