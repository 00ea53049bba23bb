"""Which function lowers which Keras layer to ONNX nodes.

A lowering is ``fn(layer, g, inputs, outputs) -> None``: ``layer`` is the Keras layer, ``g``
the :class:`~.graph.OnnxGraph` being built, ``inputs`` and ``outputs`` the layer's Keras
tensors at this call. It reads each input with ``g.value(t, layout)`` and records each
output with ``g.set(t, name, layout)``. Lowerings register with ``@lowering(...)``, keyed by
Keras layer class (Keras' own layers) or class name (caffe2keras' custom layers, so that
registering does not import them); registering a key twice raises.
"""

from __future__ import annotations

from typing import Callable

Lowering = Callable[..., None]
_LOWERINGS: dict[object, Lowering] = {}


def lowering(*layer_classes):
    """Register the decorated function for each of ``layer_classes`` (classes or names)."""
    if not layer_classes:
        raise ValueError("lowering() needs at least one layer class or class name")

    def register(function: Lowering) -> Lowering:
        for key in layer_classes:
            if not isinstance(key, (type, str)):
                raise TypeError(f"lowering key {key!r} is neither a layer class nor a class name")
            if key in _LOWERINGS:
                raise ValueError(f"an ONNX lowering for {_key_name(key)} is already registered "
                                 f"({_LOWERINGS[key].__module__}.{_LOWERINGS[key].__name__})")
            _LOWERINGS[key] = function
        return function

    return register


def find_lowering(layer) -> Lowering | None:
    """The lowering of ``layer``: by its exact class first, then by its class name."""
    cls = type(layer)
    return _LOWERINGS.get(cls) or _LOWERINGS.get(cls.__name__)


def _key_name(key) -> str:
    return key if isinstance(key, str) else f"{key.__module__}.{key.__qualname__}"
