"""Lowerings of Keras layers to ONNX nodes, one module per family, registered in
``registry``: ``builtin_*`` for Keras' own layers, ``custom_*`` for caffe2keras' layers.
Importing this package registers them all (it imports Keras)."""

from __future__ import annotations

from .graph import OnnxGraph
from .registry import find_lowering, lowering


def is_input_layer(layer) -> bool:
    """Keras' InputLayer: a graph input, nothing to lower."""
    return type(layer).__name__ == "InputLayer"


__all__ = ["OnnxGraph", "find_lowering", "lowering", "is_input_layer"]
