"""The built-in converters, one module per layer family; importing them registers them."""

from . import activation, conv, dense, merge, norm, pooling, structure  # noqa: F401
