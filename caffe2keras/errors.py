"""The exception hierarchy. Every failure caffe2keras reports is one of these.

The CLI prints ``str(error)`` as a single line and exits with ``error.exit_code``;
the library itself never exits.
"""

from __future__ import annotations


class CaffeToKerasError(Exception):
    """Base class: a problem with the user's input, reported in one line."""

    exit_code = 1


class ParseError(CaffeToKerasError):
    """A file that cannot be read as what it claims to be (syntax, truncation, garbage)."""

    exit_code = 3

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 column: int | None = None):
        self.path, self.line, self.column = path, line, column
        where = path or ""
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}" if where else message)


class StructureError(CaffeToKerasError):
    """A well-formed file describing an inconsistent net (dangling bottoms, duplicates, bad shapes)."""

    exit_code = 4


class UnsupportedLayerError(CaffeToKerasError):
    """Layers with no converter; lists all of them at once."""

    exit_code = 5

    def __init__(self, layers: list[tuple[str, str]], reasons: dict[str, str] | None = None):
        """``layers``: (name, type) of each layer; ``reasons``: type -> why it never converts,
        for the types refused by design."""
        self.layers, self.reasons = list(layers), dict(reasons or {})
        listed = ", ".join(f"{name!r} ({type_}: {self.reasons[type_]})" if type_ in self.reasons
                           else f"{name!r} ({type_})" for name, type_ in self.layers)
        noun = "layer has" if len(self.layers) == 1 else "layers have"
        super().__init__(f"{len(self.layers)} {noun} no converter: {listed}")


class WeightsMismatchError(CaffeToKerasError):
    """Stored weights that do not fit the layer the prototxt declares."""

    exit_code = 6


class OutputError(CaffeToKerasError):
    """The converted model could not be written."""

    exit_code = 7


class VerificationError(CaffeToKerasError):
    """Reference activations that cannot be compared (missing inputs, wrong shapes)."""

    exit_code = 8


class ExportCheckError(CaffeToKerasError):
    """An exported artifact whose outputs, run in its own runtime, differ from the Keras model's."""

    exit_code = 9


class UnsupportedInFormatError(CaffeToKerasError):
    """Layers the chosen output format cannot express; lists all of them at once."""

    exit_code = 10

    def __init__(self, format_name: str, layers: list[tuple[str, str, str]]):
        """``layers``: (Keras layer name, layer class, reason) for each layer refused."""
        self.format_name, self.layers = format_name, list(layers)
        listed = "; ".join(f"{name!r} ({kind}): {reason}" for name, kind, reason in self.layers)
        noun = "layer" if len(self.layers) == 1 else "layers"
        super().__init__(f"{format_name} cannot express {len(self.layers)} {noun}: {listed}")
