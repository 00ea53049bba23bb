"""The built-in converters, one module per layer family; importing them registers them."""

from . import (activation, conv, dense, detection, merge, norm, pooling, shape_ops,  # noqa: F401
               structure)
