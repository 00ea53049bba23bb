"""Convolution, Deconvolution, Pooling, InnerProduct and Embed.

The arithmetic lives in small public functions (``conv_output_size``,
``pool_output_size``, ``conv_geometry``, ``pool_geometry``...) so converters can
reuse exactly what shape inference computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import (Shape, blob_rule, canonical_axis, count, expect_bottoms, expect_ndim,
                       has, layer_error, shape_rule, sub_param)

# Values Caffe's convolution uses when a repeated field is left empty
# (repeated fields carry no schema default).
_CONV_EMPTY_STRIDE = 1
_CONV_EMPTY_PAD = 0
_CONV_EMPTY_DILATION = 1


# --------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------

def conv_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Caffe: ``floor((size + 2*pad - (dilation*(kernel-1) + 1)) / stride) + 1``.

    The caller checks that the dilated kernel fits in the padded input first
    (Caffe's C division would silently truncate a negative numerator).
    """
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def deconv_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Caffe: ``stride*(size-1) + dilation*(kernel-1) + 1 - 2*pad``."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad


def pool_output_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Caffe's pooled size before the padding clip: ``ceil|floor((size + 2*pad - kernel)
    / stride) + 1``. Integer arithmetic; Caffe divides in float32, which agrees for
    any size below 2**23."""
    span = size + 2 * pad - kernel
    steps = -(-span // stride) if ceil_mode else span // stride
    return steps + 1


def pool_clip(pooled: int, size: int, stride: int, pad: int) -> int:
    """With padding, Caffe drops a last window that would start inside the end padding:
    ``if (pooled-1)*stride >= size + pad: pooled -= 1``."""
    if (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


def inner_product_inputs(shape: Shape, axis: int) -> int:
    """K of an InnerProduct: the element count from ``axis`` to the end (NCHW order)."""
    return count(shape, axis)


# --------------------------------------------------------------------------
# Convolution / Deconvolution
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvGeometry:
    channel_axis: int
    channels: int  # input channels
    num_output: int
    group: int
    kernel: tuple[int, ...]  # one entry per spatial axis
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]
    bias_term: bool


def _per_axis(layer, cp, name: str, n_spatial: int, empty: int | None) -> tuple[int, ...]:
    """A repeated conv field given once (all axes) or once per spatial axis."""
    values = list(getattr(cp, name))
    if len(values) == 0 and empty is not None:
        return (empty,) * n_spatial
    if len(values) == 1:
        return (values[0],) * n_spatial
    if len(values) == n_spatial:
        return tuple(values)
    raise layer_error(layer, f"{name} must be given once or once per spatial axis "
                             f"({n_spatial}), got {len(values)} values")


def _per_axis_hw(layer, cp, name: str, n_spatial: int, empty: int | None) -> tuple[int, ...]:
    """Like ``_per_axis`` but ``<name>_h``/``<name>_w`` take over when either is set."""
    repeated = "kernel_size" if name == "kernel" else name
    if has(cp, f"{name}_h") or has(cp, f"{name}_w"):
        if n_spatial != 2:
            raise layer_error(layer, f"{name}_h/{name}_w need 2 spatial axes, "
                                     f"the input has {n_spatial}")
        if len(getattr(cp, repeated)):
            raise layer_error(layer, f"give either {repeated} or {name}_h/{name}_w, not both")
        return (getattr(cp, f"{name}_h"), getattr(cp, f"{name}_w"))
    return _per_axis(layer, cp, repeated, n_spatial, empty)


def conv_window(layer, bottom: Shape):
    """(channel axis, kernel, stride, pad, dilation), per spatial axis, of a layer's
    convolution_param ((De)Convolution, Im2col)."""
    cp = sub_param(layer, "convolution_param")
    axis = canonical_axis(layer, cp.axis, len(bottom))
    n_spatial = len(bottom) - axis - 1
    kernel = _per_axis_hw(layer, cp, "kernel", n_spatial, None)
    stride = _per_axis_hw(layer, cp, "stride", n_spatial, _CONV_EMPTY_STRIDE)
    pad = _per_axis_hw(layer, cp, "pad", n_spatial, _CONV_EMPTY_PAD)
    dilation = _per_axis(layer, cp, "dilation", n_spatial, _CONV_EMPTY_DILATION)
    for name, values in (("kernel size", kernel), ("stride", stride), ("dilation", dilation)):
        if any(v <= 0 for v in values):
            raise layer_error(layer, f"{name} must be positive, got {values}")
    return axis, kernel, stride, pad, dilation


def conv_geometry(layer, bottom: Shape) -> ConvGeometry:
    """Kernel, stride, pad and dilation per spatial axis of a (De)Convolution layer."""
    cp = sub_param(layer, "convolution_param")
    axis, kernel, stride, pad, dilation = conv_window(layer, bottom)
    channels = bottom[axis]
    if cp.num_output <= 0:
        raise layer_error(layer, "num_output must be positive")
    if cp.group <= 0 or channels % cp.group or cp.num_output % cp.group:
        raise layer_error(layer, f"group {cp.group} must divide both the input channels "
                                 f"({channels}) and num_output ({cp.num_output})")
    return ConvGeometry(axis, channels, cp.num_output, cp.group, kernel, stride, pad,
                        dilation, cp.bias_term)


def _conv_bottoms(layer, bottoms) -> Shape:
    """Caffe convolves each bottom into its own top; all bottoms share one shape."""
    expect_bottoms(layer, bottoms, 1, -1)
    if len(layer.tops) != len(bottoms):
        raise layer_error(layer, f"needs one top per bottom, got {len(bottoms)} bottom(s) "
                                 f"and {len(layer.tops)} top(s)")
    first = tuple(bottoms[0])
    for other in bottoms[1:]:
        if tuple(other) != first:
            raise layer_error(layer, f"all bottoms must have the same shape, got {first} "
                                     f"and {tuple(other)}")
    return first


@shape_rule("Convolution")
def _convolution(layer, bottoms):
    bottom = _conv_bottoms(layer, bottoms)
    g = conv_geometry(layer, bottom)
    out = []
    for i, size in enumerate(bottom[g.channel_axis + 1:]):
        extent = g.dilation[i] * (g.kernel[i] - 1) + 1
        if extent > size + 2 * g.pad[i]:
            raise layer_error(layer, f"kernel extent {extent} on spatial axis {i} is larger "
                                     f"than the padded input {size} + 2*{g.pad[i]}")
        out.append(conv_output_size(size, g.kernel[i], g.stride[i], g.pad[i], g.dilation[i]))
    top = bottom[:g.channel_axis] + (g.num_output,) + tuple(out)
    return [top] * len(bottoms)


@shape_rule("Deconvolution")
def _deconvolution(layer, bottoms):
    bottom = _conv_bottoms(layer, bottoms)
    g = conv_geometry(layer, bottom)
    out = []
    for i, size in enumerate(bottom[g.channel_axis + 1:]):
        size_out = deconv_output_size(size, g.kernel[i], g.stride[i], g.pad[i], g.dilation[i])
        if size_out <= 0:
            raise layer_error(layer, f"output size {size_out} on spatial axis {i} is not "
                                     f"positive (pad {g.pad[i]} crops everything)")
        out.append(size_out)
    top = bottom[:g.channel_axis] + (g.num_output,) + tuple(out)
    return [top] * len(bottoms)


@blob_rule("Convolution")
def _convolution_blobs(layer, bottoms):
    g = conv_geometry(layer, tuple(bottoms[0]))
    blobs = [(g.num_output, g.channels // g.group) + g.kernel]
    return blobs + [(g.num_output,)] if g.bias_term else blobs


@blob_rule("Deconvolution")
def _deconvolution_blobs(layer, bottoms):
    g = conv_geometry(layer, tuple(bottoms[0]))
    blobs = [(g.channels, g.num_output // g.group) + g.kernel]
    return blobs + [(g.num_output,)] if g.bias_term else blobs


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class PoolGeometry:
    kernel: tuple[int, int]  # (h, w)
    stride: tuple[int, int]
    pad: tuple[int, int]
    ceil_mode: bool
    global_pooling: bool
    output: tuple[int, int]  # pooled (h, w), after the padding clip


def _pool_ceil_mode(layer, pp) -> bool:
    """CEIL unless the fork's ``ceil_mode: false`` or BVLC's ``round_mode: FLOOR`` says so."""
    floor_by_fork = has(pp, "ceil_mode") and not pp.ceil_mode
    floor_by_bvlc = has(pp, "round_mode") and pp.round_mode == pp.FLOOR
    if has(pp, "ceil_mode") and has(pp, "round_mode") and floor_by_fork != floor_by_bvlc:
        raise layer_error(layer, "ceil_mode and round_mode disagree")
    return not (floor_by_fork or floor_by_bvlc)


def pool_geometry(layer, bottom: Shape) -> PoolGeometry:
    pp = sub_param(layer, "pooling_param")
    expect_ndim(layer, bottom, 4)
    height, width = bottom[2], bottom[3]
    if pp.global_pooling:
        if has(pp, "kernel_size") or has(pp, "kernel_h") or has(pp, "kernel_w"):
            raise layer_error(layer, "global_pooling takes no kernel size")
        kernel = (height, width)
    elif has(pp, "kernel_size") == (has(pp, "kernel_h") and has(pp, "kernel_w")):
        raise layer_error(layer, "give kernel_size or both kernel_h and kernel_w")
    elif has(pp, "kernel_size"):
        kernel = (pp.kernel_size, pp.kernel_size)
    else:
        kernel = (pp.kernel_h, pp.kernel_w)
    pads, strides = [], []
    for name, out in (("pad", pads), ("stride", strides)):
        split = has(pp, f"{name}_h"), has(pp, f"{name}_w")
        if any(split):
            if has(pp, name) or not all(split):
                raise layer_error(layer, f"give {name} or both {name}_h and {name}_w")
            out.extend((getattr(pp, f"{name}_h"), getattr(pp, f"{name}_w")))
        else:
            out.extend((getattr(pp, name),) * 2)
    pad, stride = tuple(pads), tuple(strides)
    if min(kernel) <= 0 or min(stride) <= 0:
        raise layer_error(layer, f"kernel {kernel} and stride {stride} must be positive")
    if pp.global_pooling and (pad != (0, 0) or stride != (1, 1)):
        raise layer_error(layer, "global_pooling needs pad 0 and stride 1")
    if pad != (0, 0):
        if pp.pool == pp.STOCHASTIC:
            raise layer_error(layer, "STOCHASTIC pooling takes no padding")
        if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
            raise layer_error(layer, f"pad {pad} must be smaller than the kernel {kernel}")
    ceil_mode = _pool_ceil_mode(layer, pp)
    output = []
    for size, k, s, p, axis in zip((height, width), kernel, stride, pad, ("height", "width")):
        if k > size + 2 * p:
            raise layer_error(layer, f"kernel {k} is larger than the padded input {axis} "
                                     f"{size} + 2*{p}")
        pooled = pool_output_size(size, k, s, p, ceil_mode)
        # Caffe applies the clip on both axes as soon as either one is padded.
        if pad != (0, 0):
            pooled = pool_clip(pooled, size, s, p)
            if (pooled - 1) * s >= size + p:
                raise layer_error(layer, f"the last pooling window along {axis} starts "
                                         "in the padding")
        output.append(pooled)
    return PoolGeometry(kernel, stride, pad, ceil_mode, pp.global_pooling, tuple(output))


@shape_rule("Pooling")
def _pooling(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    g = pool_geometry(layer, bottom)
    top = bottom[:2] + g.output
    # An optional second top holds the argmax mask, shaped like the first.
    if len(layer.tops) not in (1, 2):
        raise layer_error(layer, f"takes 1 or 2 tops, got {len(layer.tops)}")
    return [top] * len(layer.tops)


# --------------------------------------------------------------------------
# InnerProduct, Embed
# --------------------------------------------------------------------------

def _inner_product_dims(layer, bottom: Shape) -> tuple[int, int, int]:
    """(axis, K, N) of an InnerProduct layer."""
    ip = sub_param(layer, "inner_product_param")
    axis = canonical_axis(layer, ip.axis, len(bottom))
    if ip.num_output <= 0:
        raise layer_error(layer, "num_output must be positive")
    return axis, inner_product_inputs(bottom, axis), ip.num_output


@shape_rule("InnerProduct")
def _inner_product(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    bottom = tuple(bottoms[0])
    axis, _, n = _inner_product_dims(layer, bottom)
    return [bottom[:axis] + (n,)]


@blob_rule("InnerProduct")
def _inner_product_blobs(layer, bottoms):
    ip = layer.param.inner_product_param
    _, k, n = _inner_product_dims(layer, tuple(bottoms[0]))
    weights = (k, n) if ip.transpose else (n, k)
    return [weights, (n,)] if ip.bias_term else [weights]


def _embed_dims(layer) -> tuple[int, int]:
    ep = sub_param(layer, "embed_param")
    if ep.num_output <= 0 or ep.input_dim <= 0:
        raise layer_error(layer, "num_output and input_dim must be positive")
    return ep.input_dim, ep.num_output


@shape_rule("Embed")
def _embed(layer, bottoms):
    expect_bottoms(layer, bottoms, 1)
    _, n = _embed_dims(layer)
    return [tuple(bottoms[0]) + (n,)]


@blob_rule("Embed")
def _embed_blobs(layer, bottoms):
    k, n = _embed_dims(layer)
    return [(k, n), (n,)] if layer.param.embed_param.bias_term else [(k, n)]


__all__ = ["ConvGeometry", "PoolGeometry", "conv_geometry", "pool_geometry",
           "conv_output_size", "deconv_output_size", "pool_output_size", "pool_clip",
           "inner_product_inputs"]
