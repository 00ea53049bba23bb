"""prototxt (+ caffemodel) -> ``ir.Net``: upgrade, phase filter, inputs, in-place renaming, weights."""

from __future__ import annotations

from ..errors import StructureError
from ..ir import Layer, Net, unique_name
from ..proto import caffe_pb2
from . import inputs as input_rules
from .binary import Caffemodel, read_caffemodel, slow_protobuf_warning
from .inference import reduce_to_inference
from .phase import layer_included, make_state
from .prototxt import read_text_file
from .upgrade import upgrade_net


def read_prototxt(path: str) -> tuple[caffe_pb2.NetParameter, list[str]]:
    """Parse and upgrade a prototxt; return the V2 NetParameter and warnings."""
    net_param = caffe_pb2.NetParameter()
    result = read_text_file(path, net_param)
    warnings = []
    if result.unknown_fields:
        warnings.append(f"{path}: skipped fields our Caffe schema does not know (from a Caffe fork?): "
                        + ", ".join(result.unknown_fields))
    return upgrade_net(net_param, path), warnings


class Weights:
    """A caffemodel's blobs by layer name (the first layer of a name that has blobs, as
    Caffe's CopyTrainedLayersFrom binds them). No value is read before ``arrays``."""

    def __init__(self, model: Caffemodel):
        self.model = model
        self.blobs: dict[str, list] = {}  # layer name -> its BlobProtos (shapes; values on demand)
        for layer in upgrade_net(model.net, model.path).layer:
            if layer.blobs and layer.name not in self.blobs:
                self.blobs[layer.name] = list(layer.blobs)

    def arrays(self, layer_name: str) -> list:
        """The layer's blobs as float32 arrays in Caffe's layout (views of the file where
        the file stores packed floats)."""
        return [self.model.array(blob, f"{self.model.path}: layer {layer_name!r} blob {i}")
                for i, blob in enumerate(self.blobs.get(layer_name, []))]


def read_weights(path: str) -> Weights:
    """The blobs of a caffemodel of any format generation, by layer name."""
    return Weights(read_caffemodel(path))


def load_net(prototxt: str, caffemodel: str | None = None,
             input_shapes: dict[str, tuple[int, ...]] | None = None, phase: str = "TEST",
             outputs: list[str] | None = None) -> Net:
    """Read a Caffe net (and optionally its weights) into the IR.

    ``input_shapes`` maps input names to Caffe-order shapes and overrides what the file
    declares. Weights bind to layers by name; caffemodel layers the prototxt does not use
    are ignored. ``outputs`` names Caffe layers whose tops become the net's outputs: only
    the layers needed to compute them are kept, and only their weights are read.
    """
    net_param, warnings = read_prototxt(prototxt)
    if not net_param.layer and not net_param.input:
        raise StructureError(f"{prototxt}: the net has no layers and no inputs (not a Caffe net?)")
    weights = read_weights(caffemodel) if caffemodel else None
    if weights and weights.model.fallback:
        warnings.append(f"{caffemodel}: read by protobuf (slower, all in memory) because the fast "
                        f"reader does not handle this file: {weights.model.fallback}")
    slow = slow_protobuf_warning() if caffemodel else None
    if slow:
        warnings.append(slow)
    state = make_state(net_param, phase)
    kept = [layer for layer in net_param.layer if layer_included(layer, state)]
    kept, reduction = reduce_to_inference(kept)  # a train/val net: its inference net
    _check_unique_names(kept, prototxt)

    declared = input_rules.net_level_inputs(net_param, prototxt)
    hints = {}  # input -> why its shape is unknown (data layers)
    body = []
    for layer in kept:
        if layer.type == "Input":
            _add_inputs(declared, input_rules.input_layer_shapes(layer), layer.name)
        elif layer.type in input_rules.DATA_LAYER_TYPES:
            channels = input_rules.data_channels(layer, kept, weights.blobs if weights else {})
            _add_inputs(declared, input_rules.data_layer_shapes(layer, channels), layer.name)
            hints.update((top, input_rules.missing_shape_hint(layer)) for top in layer.top)
        else:
            body.append(layer)

    net = Net(name=net_param.name, inputs={}, layers=[], warnings=warnings,
              notes=reduction.notes())
    _build_layers(net, body, declared, prototxt)
    if outputs:
        keep_only_what_computes(net, outputs)
    _resolve_input_shapes(net, declared, input_shapes or {}, prototxt, hints)
    for layer in net.layers:  # only the kept layers' values are ever read
        if weights and layer.name in weights.blobs:
            layer.blobs = weights.arrays(layer.name)
    return net


def keep_only_what_computes(net: Net, layer_names: list[str]) -> None:
    """Prune ``net`` to the layers the named layers depend on; their tops become the outputs."""
    by_name = {layer.name: layer for layer in net.layers}
    unknown = [name for name in layer_names if name not in by_name]
    if unknown:
        raise StructureError(f"--outputs names {', '.join(map(repr, unknown))}, which the net does "
                             "not have (after phase filtering)")
    wanted = [top for name in layer_names for top in by_name[name].tops]
    producers = net.producers()
    needed, stack = set(), list(wanted)
    while stack:
        layer = producers.get(stack.pop())
        if layer is not None and layer.name not in needed:
            needed.add(layer.name)
            stack.extend(layer.bottoms)
    net.layers = [layer for layer in net.layers if layer.name in needed]
    net.output_values = wanted


def _check_unique_names(layers, path: str) -> None:
    seen = set()
    for layer in layers:
        if not layer.name:
            raise StructureError(f"{path}: a layer of type {layer.type!r} has no name")
        if layer.name in seen:
            raise StructureError(f"{path}: two layers are named {layer.name!r}")
        seen.add(layer.name)


def _add_inputs(declared: dict, shapes: dict, layer_name: str) -> None:
    for name, shape in shapes.items():
        if name in declared:
            raise StructureError(f"input {name!r} is declared twice (again by layer {layer_name!r})")
        declared[name] = shape


def _build_layers(net: Net, body, declared: dict, path: str) -> None:
    """Wire layers to value ids; give in-place tops fresh ids so every value is written once."""
    current = {name: name for name in declared}  # Caffe blob name -> latest value id
    used = set(current)
    for layer_param in body:
        bottoms = []
        for blob in layer_param.bottom:
            if blob not in current:
                raise StructureError(f"{path}: layer {layer_param.name!r} ({layer_param.type}) reads "
                                     f"blob {blob!r}, which no earlier layer or input produces")
            bottoms.append(current[blob])
        tops = []
        for blob in layer_param.top:
            if blob in current and blob not in layer_param.bottom:
                raise StructureError(f"{path}: blob {blob!r} is produced by more than one layer "
                                     f"(again by {layer_param.name!r})")
            value = blob if blob not in used else unique_name(f"{blob}@{layer_param.name}", used,
                                                              "#")
            used.add(value)
            current[blob] = value
            tops.append(value)
        if len(set(layer_param.top)) != len(layer_param.top):
            raise StructureError(f"{path}: layer {layer_param.name!r} lists the same top twice")
        net.layers.append(Layer(name=layer_param.name, type=layer_param.type, bottoms=bottoms,
                                tops=tops, param=layer_param, top_blobs=list(layer_param.top)))


def _resolve_input_shapes(net: Net, declared: dict, overrides: dict, path: str,
                          hints: dict) -> None:
    unknown = [name for name in overrides if name not in declared]
    if unknown:
        raise StructureError(f"--input-shape names {', '.join(map(repr, unknown))}, but the net's "
                             f"inputs are {', '.join(map(repr, declared)) or 'none'}")
    read = {bottom for layer in net.layers for bottom in layer.bottoms}
    for name, shape in declared.items():
        if name not in read:
            continue  # e.g. the label top of a data layer once the loss layers are gone
        shape = tuple(overrides.get(name) or shape or ()) or None
        if shape is None:
            why = f" ({hints[name]})" if name in hints else ""
            raise StructureError(f"{path}: the shape of input {name!r} is not declared{why}; give "
                                 f"it with --input-shape {name}=N,C,H,W")
        if any(dim < 0 for dim in shape):
            raise StructureError(f"{path}: input {name!r} has a negative dimension: {shape}")
        net.inputs[name] = shape
