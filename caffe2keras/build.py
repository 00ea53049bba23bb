"""IR -> keras.Model: the only place that wires the graph."""

from __future__ import annotations

from .errors import StructureError
from .ir import Net
from .lazy import keras
from .registry import Context, check_supported, keras_layer_name, keras_shape, lookup
from .shapes import infer_shapes


def build_model(net: Net, extras: dict | None = None):
    """Build the functional Keras model of ``net`` with its weights set.

    Inputs are Caffe's net inputs in order, outputs the values no layer reads in Caffe's
    order: Net::Init collects them in a std::set, so they come sorted by blob name.
    The IR's weight arrays are released as soon as a layer has taken them.
    """
    model_inputs, tensors = build_graph(net, extras)
    outputs = [tensors[value] for value in net.outputs]
    if not outputs:
        raise StructureError("the net has no outputs")
    return keras.Model(
        inputs=model_inputs[0] if len(model_inputs) == 1 else model_inputs,
        outputs=outputs[0] if len(outputs) == 1 else outputs,
        name=keras_layer_name(net.name) or "caffe_net",
    )


def build_graph(net: Net, extras: dict | None = None):
    """Apply every converter; return the Keras inputs and a map value id -> Keras tensor."""
    check_supported(net)
    if not net.shapes:
        infer_shapes(net)
    tensors = {}
    model_inputs = []
    for name, shape in net.inputs.items():
        tensor = keras.Input(shape=keras_shape(shape)[1:], name=keras_layer_name(name))
        tensors[name] = tensor
        model_inputs.append(tensor)

    for layer in net.layers:
        ctx = Context(net=net, bottom_shapes=[net.shapes[b] for b in layer.bottoms],
                      top_shapes=[net.shapes[t] for t in layer.tops], extras=dict(extras or {}))
        steps = lookup(layer.type)(layer, ctx)
        # The steps hold the weights in Keras' layout now. Letting go of the IR's arrays
        # first hands their file pages back before the Keras variables are allocated.
        layer.blobs = []
        bottoms = [tensors[b] for b in layer.bottoms]
        if not steps:  # the tops are the bottom (Split, Silence, no-ops)
            outputs = [bottoms[0]] * len(layer.tops)
        else:
            value = bottoms[0] if len(bottoms) == 1 else bottoms
            for step in steps:
                value = _apply(step, value)
                step.weights = None
            outputs = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(outputs) != len(layer.tops):
            raise StructureError(f"layer {layer.name!r} ({layer.type}): the converter produced "
                                 f"{len(outputs)} outputs for {len(layer.tops)} tops")
        tensors.update(zip(layer.tops, outputs))
    return model_inputs, tensors


def _apply(step, value):
    """Call the step's layer on ``value``; its variables start with the step's weights.

    Keras would first fill new variables from the layer's initializers (for VGG16's fc6,
    100M random numbers and three transient copies) only for ``set_weights`` to overwrite
    them. Created inside a ``StatelessScope``, variables stay empty until the scope ends;
    they are then initialised once, from our arrays.
    """
    if step.weights is None or step.layer.built:
        value = step.layer(value)
        if step.weights is not None:
            step.layer.set_weights(step.weights)
        return value
    with keras.StatelessScope():
        value = step.layer(value)
        variables = step.layer.weights
        if len(variables) != len(step.weights):
            raise StructureError(f"Keras layer {step.layer.name!r} has {len(variables)} weights, "
                                 f"the converter gave {len(step.weights)}")
        for variable, array in zip(variables, step.weights):
            if tuple(variable.shape) != tuple(array.shape):
                raise StructureError(f"Keras layer {step.layer.name!r}: weight {variable.path} "
                                     f"has shape {tuple(variable.shape)}, the converter gave "
                                     f"{tuple(array.shape)}")
            variable._initializer = _Preset(array)
    return value


class _Preset:
    """An initializer that hands over one prepared array."""

    def __init__(self, array):
        self.array = array

    def __call__(self, shape, dtype=None):
        array, self.array = self.array, None  # the variable's copy is the only one kept
        return array
