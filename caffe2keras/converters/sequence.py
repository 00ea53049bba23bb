"""Embed, LSTM and RNN -> Embed, CaffeLSTM and CaffeRNN, with Caffe's time-major (T, N, ...)
recurrent blobs batch-major (N, T, ...) in Keras. See ``time_major.py`` for which blobs."""

from __future__ import annotations

from ..errors import StructureError
from ..lazy import custom_layers, keras
from ..registry import Step, converter
from .common import float32, name_of

# The Keras layer classes this family's converters emit (for the formats table; a test
# checks the list against the converters' code and what they build).
KERAS_LAYERS = ("CaffeLSTM", "CaffeRNN", "Embed", "Permute")
MAX_STEPS = 4096  # the time loop is unrolled, as Caffe unrolls its own net


@converter("Embed")
def embed(layer, ctx):
    """Table rows by index; the index blob is read in Caffe's order and a 4-D result is
    given back NHWC."""
    p = layer.param.embed_param
    in_rank, out_rank = len(ctx.bottom_shapes[0]), len(ctx.top_shapes[0])
    steps = []
    if in_rank == 4:
        steps.append(Step(keras.layers.Permute((3, 1, 2), name=name_of(layer, "to_nchw"))))
    weights = [float32(layer.blobs[0])] + ([float32(layer.blobs[1])] if p.bias_term else [])
    table = custom_layers.Embed(input_dim=p.input_dim, num_output=p.num_output,
                                bias_term=p.bias_term,
                                name=name_of(layer, "embed") if out_rank == 4 else name_of(layer))
    steps.append(Step(table, weights))
    if out_rank == 4:
        steps.append(Step(keras.layers.Permute((2, 3, 1), name=name_of(layer))))
    return steps


def _static_kernel(layer, blob, ctx):
    """W_static (outputs, count(x_static, 1)) with its columns in the Keras order of x_static
    (H, W, C for a 4-D one), transposed to (inputs, outputs)."""
    shape = ctx.bottom_shapes[2]
    if len(shape) == 4:
        _, c, h, w = shape
        blob = blob.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(blob.shape[0], -1)
    return float32(blob.T)


@converter("LSTM", "RNN")
def recurrent(layer, ctx):
    if len(ctx.bottom_shapes[0]) != 3:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): x must be (T, N, D); "
                             f"{ctx.bottom_shapes[0]} does not convert")
    if ctx.bottom_shapes[0][0] > MAX_STEPS:
        raise StructureError(f"layer {layer.name!r} ({layer.type}): {ctx.bottom_shapes[0][0]} "
                             f"time steps, more than the {MAX_STEPS} a converted (unrolled) "
                             "recurrent layer takes")
    static = len(layer.bottoms) == 3
    blobs = layer.blobs
    weights = [float32(blobs[0].T), float32(blobs[1])]
    if static:
        weights.append(_static_kernel(layer, blobs[2], ctx))
    weights += [float32(blob.T) for blob in blobs[2 + static:3 + static]]
    cls = custom_layers.CaffeLSTM if layer.type == "LSTM" else custom_layers.CaffeRNN
    if layer.type == "RNN":
        weights += [float32(blobs[3 + static].T), float32(blobs[4 + static])]
    return [Step(cls(num_output=layer.param.recurrent_param.num_output, static_input=static,
                     name=name_of(layer)), weights)]
