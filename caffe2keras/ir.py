"""The intermediate representation every stage after parsing works on.

A ``Net`` is an ordered list of ``Layer`` s (Caffe's execution order) over named
values. Values are written exactly once: the loader renames the tops of in-place
layers (``bottom == top``), so a value id differs from Caffe's blob name only for
in-place chains; ``Layer.top_blobs`` keeps Caffe's names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SILENCE = "Silence"  # reads blobs and writes none: what it reads is no longer a net output


@dataclass
class Layer:
    name: str
    type: str  # the V2 type string, e.g. "Convolution"
    bottoms: list[str]  # value ids read
    tops: list[str]  # value ids written (unique across the net)
    param: Any  # the layer's caffe_pb2.LayerParameter (V2); read *_param fields here
    blobs: list[np.ndarray] = field(default_factory=list)  # Caffe layout, float32
    top_blobs: list[str] = field(default_factory=list)  # Caffe's own blob names of the tops

    def __post_init__(self):
        if not self.top_blobs:
            self.top_blobs = list(self.tops)


@dataclass
class Net:
    name: str
    inputs: dict[str, tuple[int, ...]]  # value id -> Caffe shape (NCHW for images), in order
    layers: list[Layer]
    warnings: list[str] = field(default_factory=list)
    # Value id -> Caffe shape, filled by shapes.infer_shapes.
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Outputs chosen by the user (load_net's ``outputs``), in their order; None: Caffe's.
    output_values: list[str] | None = None
    # What the loader changed that the user should know of (a train/val net reduced to its
    # inference net): shown in the conversion summary.
    notes: list[str] = field(default_factory=list)

    @property
    def outputs(self) -> list[str]:
        """The model's outputs: Caffe's net outputs (the values no layer reads) plus the
        values only Silence layers read (``silenced_outputs``: Caffe drops them, but they are
        what such a net computes, e.g. colorization's ``class8_ab``), in Caffe's order. Caffe
        collects outputs in a std::set, so they come sorted by blob name (bytewise), as
        pycaffe lists them. Outputs chosen with load_net's ``outputs`` come instead, in their
        order."""
        if self.output_values is not None:
            return list(self.output_values)
        read = {b for layer in self.layers if layer.type != SILENCE for b in layer.bottoms}
        produced = [t for layer in self.layers for t in layer.tops if t not in read]
        names = self.blob_names()
        return sorted(produced, key=lambda value: names.get(value, value).encode())

    def silenced_outputs(self) -> list[str]:
        """The outputs (see ``outputs``) that only Silence layers read: not Caffe's outputs."""
        silenced = {b for layer in self.layers if layer.type == SILENCE for b in layer.bottoms}
        return [value for value in self.outputs if value in silenced]

    def blob_names(self) -> dict[str, str]:
        """Value id -> Caffe's blob name, for every top (one pass over the layers)."""
        return {top: blob for layer in self.layers for top, blob in zip(layer.tops, layer.top_blobs)}

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def producers(self) -> dict[str, Layer]:
        """Value id -> the layer that writes it."""
        return {top: layer for layer in self.layers for top in layer.tops}

    def consumers(self) -> dict[str, list[Layer]]:
        """Value id -> the layers that read it, in order."""
        readers: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for bottom in layer.bottoms:
                readers.setdefault(bottom, []).append(layer)
        return readers

    def blob_name(self, value: str) -> str:
        """Caffe's name for a value id."""
        return self.blob_names().get(value, value)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def unique_name(candidate: str, taken, separator: str = "_") -> str:
    """``candidate``, or ``candidate<separator>2``, 3, ... : the first not in ``taken``."""
    value, n = candidate, 1
    while value in taken:
        n += 1
        value = f"{candidate}{separator}{n}"
    return value
