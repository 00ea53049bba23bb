"""The layer-mapping registry: one converter per Caffe layer type.

A converter is a pure function ``(layer, ctx) -> list[Step]``. The builder applies the
steps in order: the first receives the layer's bottoms (one tensor, or a list when the
layer has several), each next step the previous step's output, and the last step's
output(s) become the layer's tops. An empty list means "the tops are the bottoms"
(Split, Silence, inference-time no-ops). Converters never touch graph plumbing.

Converters register themselves with ``@converter("Type")``; user code can register a
converter for its own custom layer type the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import UnsupportedLayerError
from .ir import Layer, Net


@dataclass
class Step:
    layer: Any  # a keras.layers.Layer
    weights: list[np.ndarray] | None = None  # set with layer.set_weights once it is built


@dataclass
class Context:
    """What a converter may know beyond its layer: shapes (Caffe order) and the net."""

    net: Net
    bottom_shapes: list[tuple[int, ...]]
    top_shapes: list[tuple[int, ...]]

    def keras_axis(self, caffe_axis: int, rank: int | None = None) -> int:
        """Where a Caffe axis of the first bottom lives in the Keras tensor (4-D is NHWC)."""
        rank = len(self.bottom_shapes[0]) if rank is None else rank
        return keras_axis(caffe_axis, rank)


Converter = Callable[[Layer, Context], "list[Step]"]
_CONVERTERS: dict[str, Converter] = {}
# Types that no Keras model can compute, with the reason (for errors and the layer table).
_REFUSED: dict[str, str] = {}


def keras_axis(caffe_axis: int, rank: int) -> int:
    """Map a Caffe axis (negative counts from the end) to the Keras layout of a rank-``rank`` blob."""
    axis = caffe_axis + rank if caffe_axis < 0 else caffe_axis
    if not 0 <= axis < rank:
        raise ValueError(f"axis {caffe_axis} is out of range for a {rank}-D blob")
    return (0, 3, 1, 2)[axis] if rank == 4 else axis


def keras_shape(caffe_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The Keras layout of a Caffe shape: NCHW -> NHWC for 4-D blobs, unchanged otherwise."""
    if len(caffe_shape) == 4:
        n, c, h, w = caffe_shape
        return (n, h, w, c)
    return tuple(caffe_shape)


def keras_layer_name(caffe_name: str) -> str:
    """The Keras name of a Caffe layer (or input): valid on every backend and in every format.

    Caffe allows any text; Keras forbids '/' (GoogLeNet's "inception_3a/1x1"), TensorFlow's
    name scopes take only [A-Za-z0-9_.\\/>-], and PyTorch forbids '.' in parameter names. So
    every character outside [A-Za-z0-9_-] becomes '_' ("inception 3a" -> "inception_3a",
    "conv1.1" -> "conv1_1"); a non-ASCII letter first loses its accents ("ü" -> "u"), and
    one with no ASCII form becomes its code point ("层" -> "u5c42"). Names that become equal
    are reported by the builder as a clash to fix in the prototxt."""
    return "".join(_NAME_CHARS.get(ch) or _ascii(ch) for ch in caffe_name)


def keras_model_name(net_name: str) -> str:
    """The Keras model's name: ``keras_layer_name`` of the net's name, starting with a letter or
    digit as TensorFlow's root name scope requires ("OpenPose - BODY_25" -> "OpenPose_-_BODY_25",
    "_x" -> "net_x"); "caffe_net" for a net without a name."""
    name = keras_layer_name(net_name)
    if not name:
        return "caffe_net"
    return name if name[0].isalnum() else f"net{name}"


_NAME_CHARS = {ch: ch for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"}


def _ascii(ch: str) -> str:
    """A character Keras names cannot hold, as ASCII name characters."""
    import unicodedata
    if ch.isascii() or not ch.isalnum():
        return "_"
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    plain = "".join(c for c in plain if c in _NAME_CHARS)
    return plain or f"u{ord(ch):04x}"


def converter(*types: str):
    """Register a converter for one or more Caffe layer types. Registering a type twice raises."""
    def register(function: Converter) -> Converter:
        for type_ in types:
            if type_ in _CONVERTERS:
                raise ValueError(f"a converter for Caffe layer type {type_!r} is already registered "
                                 f"({_CONVERTERS[type_].__module__}.{_CONVERTERS[type_].__name__})")
            _CONVERTERS[type_] = function
        return function
    return register


def refuse(*types: str, reason: str) -> None:
    """Declare types that never convert, with the reason the error and the layer table give."""
    for type_ in types:
        if type_ in _REFUSED or type_ in _CONVERTERS:
            raise ValueError(f"Caffe layer type {type_!r} is already registered or refused")
        _REFUSED[type_] = reason


def refused_types() -> dict[str, str]:
    """{type: reason} of every type refused by design (see ``refuse``)."""
    _load_builtin_converters()
    return dict(_REFUSED)


def unregister(type_: str) -> None:
    """Remove a converter (for tests and for users replacing a built-in one)."""
    _CONVERTERS.pop(type_, None)


def has_converter(type_: str) -> bool:
    _load_builtin_converters()
    return type_ in _CONVERTERS


def lookup(type_: str) -> Converter:
    _load_builtin_converters()
    return _CONVERTERS[type_]


def converters_by_module():
    """[(module, [types])] for every module that registered converters, in import order."""
    import sys
    _load_builtin_converters()
    grouped: dict[str, list[str]] = {}
    for type_, function in _CONVERTERS.items():
        grouped.setdefault(function.__module__, []).append(type_)
    return [(sys.modules[name], types) for name, types in grouped.items()]


def check_supported(net: Net) -> None:
    """Raise one error listing every layer that has no converter (with the reason for a type
    refused by design)."""
    missing = [(layer.name, layer.type) for layer in net.layers if not has_converter(layer.type)]
    if missing:
        reasons = refused_types()
        raise UnsupportedLayerError(missing, {t: reasons[t] for _, t in missing if t in reasons})


def _load_builtin_converters() -> None:
    # Imported on first use so that `import caffe2keras` stays free of Keras/TensorFlow.
    from . import converters  # noqa: F401  (registers the built-in converters)
