"""Which function lowers which Keras layer to ONNX nodes.

A lowering is ``fn(layer, g, inputs, outputs) -> None``: ``layer`` is the Keras layer, ``g``
the :class:`~.graph.OnnxGraph` being built, ``inputs`` and ``outputs`` the layer's Keras
tensors at this call. It reads each input with ``g.value(t, layout)`` and records each
output with ``g.set(t, name, layout)``. Lowerings register with ``@lowering(...)``, keyed by
Keras layer class (Keras' own layers) or class name (caffe2keras' custom layers, so that
registering does not import them); registering a key twice raises.

A configuration a lowering cannot express exactly (UpSampling2D with bilinear
interpolation, say) is declared with ``@refusal(...)``: a function ``(layer) -> reason or
None`` that ``OnnxFormat.unsupported`` asks before anything is written.
"""

from __future__ import annotations

from typing import Callable

Lowering = Callable[..., None]
Refusal = Callable[..., "str | None"]
_LOWERINGS: dict[object, Lowering] = {}
_REFUSALS: dict[object, Refusal] = {}


def lowering(*layer_classes):
    """Register the decorated lowering for each of ``layer_classes`` (classes or names)."""
    return _registrar(_LOWERINGS, "lowering", layer_classes)


def refusal(*layer_classes):
    """Register the decorated ``(layer) -> reason or None`` for each of ``layer_classes``."""
    return _registrar(_REFUSALS, "refusal", layer_classes)


def find_lowering(layer) -> Lowering | None:
    """The lowering of ``layer``: by its exact class first, then by its class name."""
    return _find(_LOWERINGS, layer)


def lowered_class_names() -> set[str]:
    """The class name of every layer that has a lowering."""
    return {key if isinstance(key, str) else key.__name__ for key in _LOWERINGS}


def refusal_reason(layer) -> str | None:
    """Why ``layer``'s configuration cannot be lowered, or None."""
    refuse = _find(_REFUSALS, layer)
    return refuse(layer) if refuse is not None else None


def _find(table: dict, layer):
    cls = type(layer)
    return table.get(cls) or table.get(cls.__name__)


def _registrar(table: dict, what: str, layer_classes):
    if not layer_classes:
        raise ValueError(f"{what}() needs at least one layer class or class name")

    def register(function):
        for key in layer_classes:
            if not isinstance(key, (type, str)):
                raise TypeError(f"{what} key {key!r} is neither a layer class nor a class name")
            if key in table:
                raise ValueError(f"an ONNX {what} for {_key_name(key)} is already registered "
                                 f"({table[key].__module__}.{table[key].__name__})")
            table[key] = function
        return function

    return register


def _key_name(key) -> str:
    return key if isinstance(key, str) else f"{key.__module__}.{key.__qualname__}"
