"""Caffe's input transform inside the converted model (``--preprocess``).

A Caffe model expects its input already transformed: channels in the order it was trained
with (BGR for the BVLC zoo), the training mean subtracted, sometimes scaled. With a
:class:`Preprocess` the converted model takes the raw images instead (RGB in [0, 255] by
default) and applies the transform itself, as its first layer
(:class:`caffe2keras.layers.CaffePreprocess`): channel swap, ``raw_scale``, minus the mean,
times ``scale``, the order of pycaffe's ``Transformer`` and Caffe's ``DataTransformer``.

The mean, in the net's channel order (after the swap), is one of:

* per-channel values: one per channel, or one for all (as Caffe's ``mean_value``);
* a mean image (a ``.binaryproto`` or ``.npy`` file, or an array) of shape (C, H, W) or
  (1, C, H, W). One of the input's size is subtracted pixel by pixel. A larger one is
  center-cropped to the input, offsets ``(H_mean - H) // 2`` and ``(W_mean - W) // 2``, as
  Caffe's data layer crops it with ``crop_size`` at test time (an ImageNet 256x256 mean for a
  227x227 or 224x224 input). A smaller one is refused: use its per-channel values
  (``caffe2keras mean mean.binaryproto`` prints them). A 1x1 image is per-channel values.

In the IR the transform is a layer of the internal type ``Caffe+Preprocess`` inserted before
the first layer; it has no Caffe counterpart, so its ``param`` is a resolved
:class:`Transform` rather than a LayerParameter.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from .converters.common import name_of
from .errors import OutputError, ParseError, StructureError
from .ir import Layer, Net, unique_name
from .lazy import custom_layers
from .reader.binary import read_mean_file
from .registry import Step, converter, keras_layer_name
from .save import atomic_output
from .shapes import shape_rule

PREPROCESS_TYPE = "Caffe+Preprocess"  # internal: the '+' keeps it out of the layer table
# The Keras layer class its converter emits (see converters/*.KERAS_LAYERS).
KERAS_LAYERS = ("CaffePreprocess",)
RGB_TO_BGR = (2, 1, 0)

MeanSpec = Union[str, Sequence[float], np.ndarray, None]


@dataclass(frozen=True)
class Preprocess:
    """How raw images become the net's input blob.

    ``mean``: per-channel values (net channel order, e.g. ``(104, 117, 123)`` for BGR), a
    path to a ``.binaryproto`` or ``.npy`` mean image, an array, or None.
    ``scale``: multiplies after the mean (Caffe's ``transform_param { scale }``, pycaffe's
    ``input_scale``). ``raw_scale``: multiplies before the mean (pycaffe's ``raw_scale``; 255
    for images in [0, 1]). ``channel_swap``: input channel taken for each net channel, or
    None; the default turns RGB into BGR and needs a 3-channel input. ``input``: the net
    input to transform (default: the first 4-D one).
    """

    mean: MeanSpec = None
    scale: float = 1.0
    raw_scale: float = 1.0
    channel_swap: tuple[int, ...] | None = RGB_TO_BGR
    input: str | None = None

    def __post_init__(self):
        for name in ("scale", "raw_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value == 0:
                raise ValueError(f"preprocess {name} must be a finite nonzero number, "
                                 f"got {value!r}")
        if self.channel_swap is not None:
            swap = tuple(self.channel_swap)
            if sorted(swap) != list(range(len(swap))):
                raise ValueError(f"preprocess channel_swap must be a permutation of 0..C-1, got "
                                 f"{swap!r}")
            object.__setattr__(self, "channel_swap", swap)


@dataclass(frozen=True)
class Transform:
    """A :class:`Preprocess` resolved against one input: the IR layer's ``param``."""

    channel_swap: tuple[int, ...] | None
    raw_scale: float
    mean: np.ndarray | None  # Keras layout, float32: (C,) or (H, W, C)
    scale: float
    mean_source: str


def parse_mean(text: str) -> MeanSpec:
    """A command-line ``--mean``: comma-separated numbers are values, anything else a path."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        return text


def read_mean(mean: MeanSpec) -> tuple[np.ndarray | None, str]:
    """The mean as a float32 array (values: (K,); image: (C, H, W)) and where it came from."""
    if mean is None:
        return None, ""
    if isinstance(mean, (str, os.PathLike)):
        path = os.fspath(mean)
        if path.lower().endswith(".npy"):
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise ParseError(f"not a readable .npy mean ({error})", path) from None
        else:
            array = read_mean_file(path)
        source = os.path.basename(path)
    else:
        array, source = np.asarray(mean), "values"
        if array.ndim != 1:
            source = "array"
    if not np.issubdtype(array.dtype, np.number) or array.size == 0 \
            or not np.all(np.isfinite(array)):
        raise StructureError(f"the mean ({source}) must hold finite numbers")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in (1, 3):
        raise StructureError(f"the mean ({source}) has shape {array.shape}; expected per-channel "
                             "values, (C, H, W) or (1, C, H, W)")
    return array.astype(np.float32), source


def _mean_for_input(array: np.ndarray | None, source: str, shape: tuple[int, ...]):
    """Fit the mean to an input of Caffe shape (N, C, H, W); return it in Keras layout."""
    if array is None:
        return None, ""
    _, channels, height, width = shape
    if array.ndim == 1:
        if len(array) == 1:
            array = np.repeat(array, channels)  # Caffe replicates a single mean_value
        if len(array) != channels:
            raise StructureError(f"the mean has {len(array)} values for an input of {channels} "
                                 "channels")
        return array, "" if source == "values" else source
    c, h, w = array.shape
    if c != channels:
        raise StructureError(f"the mean ({source}) has {c} channels, the input {channels}")
    if (h, w) == (1, 1):
        return array[:, 0, 0].copy(), source
    described = f"{source}, {h}x{w}"
    if (h, w) != (height, width):
        if h < height or w < width:
            raise StructureError(
                f"the mean ({source}) is {h}x{w}, smaller than the input's {height}x{width}: "
                "give per-channel values instead (`caffe2keras mean FILE` prints them)")
        top, left = (h - height) // 2, (w - width) // 2
        array = array[:, top:top + height, left:left + width]
        described += f" center-cropped to {height}x{width}"
    return np.ascontiguousarray(array.transpose(1, 2, 0)), described


def resolve(spec: Preprocess, net: Net, mean: tuple[np.ndarray | None, str] | None = None):
    """The input ``spec`` applies to and its :class:`Transform`. ``mean`` is ``read_mean``'s
    result when already read."""
    images = [name for name, shape in net.inputs.items() if len(shape) == 4]
    if spec.input is not None:
        if spec.input not in net.inputs:
            raise StructureError(f"preprocess input {spec.input!r} is not one of the net's "
                                 f"inputs: {', '.join(map(repr, net.inputs)) or 'none'}")
        name = spec.input
    elif images:
        name = images[0]
    else:
        raise StructureError("preprocessing needs an image input (N, C, H, W); the net's inputs "
                             f"are {', '.join(f'{n} {s}' for n, s in net.inputs.items())}")
    shape = net.inputs[name]
    if len(shape) != 4:
        raise StructureError(f"preprocessing needs an image input (N, C, H, W); {name!r} is "
                             f"{shape}")
    if spec.channel_swap is not None and len(spec.channel_swap) != shape[1]:
        raise StructureError(f"channel swap {','.join(map(str, spec.channel_swap))} does not fit "
                             f"input {name!r} with {shape[1]} channel(s); give another or none")
    array, described = _mean_for_input(*(mean or read_mean(spec.mean)), shape)
    return name, Transform(channel_swap=spec.channel_swap, raw_scale=float(spec.raw_scale),
                           mean=array, scale=float(spec.scale), mean_source=described)


def add_preprocessing(net: Net, spec: Preprocess,
                      mean: tuple[np.ndarray | None, str] | None = None) -> Net:
    """Insert the transform between an input and every layer reading it (after shapes)."""
    name, transform = resolve(spec, net, mean)
    taken = {keras_layer_name(layer.name) for layer in net.layers} | set(net.inputs)
    layer_name = unique_name(f"{keras_layer_name(name)}_preprocess", taken)
    used = set(net.inputs) | {top for layer in net.layers for top in layer.tops}
    value = unique_name(f"{name}@{layer_name}", used)
    for layer in net.layers:
        layer.bottoms = [value if bottom == name else bottom for bottom in layer.bottoms]
    net.layers.insert(0, Layer(name=layer_name, type=PREPROCESS_TYPE, bottoms=[name],
                               tops=[value], param=transform, top_blobs=[name]))
    if net.shapes:
        net.shapes[value] = net.shapes[name]
    return net


def preprocess_layer(net: Net) -> Layer | None:
    return next((layer for layer in net.layers if layer.type == PREPROCESS_TYPE), None)


@shape_rule(PREPROCESS_TYPE)
def _same_shape(layer, bottom_shapes):
    return [bottom_shapes[0]]


@converter(PREPROCESS_TYPE)
def _preprocess(layer, ctx):
    t: Transform = layer.param
    keras_layer = custom_layers.CaffePreprocess(
        channel_swap=None if t.channel_swap is None else list(t.channel_swap),
        raw_scale=t.raw_scale, scale=t.scale, mean_source=t.mean_source,
        mean_shape=None if t.mean is None else t.mean.shape, name=name_of(layer))
    return [Step(keras_layer, None if t.mean is None else [t.mean])]


def channel_means(array: np.ndarray) -> np.ndarray:
    """Per-channel values of a mean read by ``read_mean`` (the average of a mean image)."""
    return array if array.ndim == 1 else array.astype(np.float64).mean(axis=(1, 2))


def save_mean(array: np.ndarray, path: str) -> None:
    """Write a mean as ``.npy`` (Caffe's python tools use (C, H, W)), atomically."""
    if not path.lower().endswith(".npy"):
        raise OutputError(f"{path}: the mean is written as .npy; name the file *.npy")
    with atomic_output(path, ".npy", "the mean") as temporary:
        np.save(temporary, array, allow_pickle=False)
