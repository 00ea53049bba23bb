"""IR -> keras.Model: the only place that wires the graph."""

from __future__ import annotations

import numpy as np

from .errors import StructureError
from .ir import Net
from .lazy import keras
from .registry import (Context, check_supported, keras_layer_name, keras_model_name, keras_shape,
                       lookup)
from .shapes import infer_shapes
from .time_major import keras_shape_of, time_major_values


def build_model(net: Net):
    """Build the functional Keras model of ``net`` with its weights set.

    Inputs are Caffe's net inputs in order, outputs the values no layer reads in Caffe's
    order: Net::Init collects them in a std::set, so they come sorted by blob name.
    Each Keras variable is made once, from the converter's array (never from Keras'
    initializers first), and the IR lets go of a layer's arrays as soon as its converter
    has run: ``layer.blobs`` is empty afterwards.
    """
    model_inputs, tensors = build_graph(net)
    outputs = [tensors[value] for value in net.outputs]
    if not outputs:
        raise StructureError(_no_outputs_message(net))
    return keras.Model(
        inputs=model_inputs[0] if len(model_inputs) == 1 else model_inputs,
        outputs=outputs[0] if len(outputs) == 1 else outputs,
        name=keras_model_name(net.name),
    )


def _no_outputs_message(net: Net) -> str:
    """Every value is read by a later layer: name the layers whose tops only layers without
    tops read (the net's last results), which ``outputs`` / ``--outputs`` can return."""
    readers = net.consumers()
    last = [layer.name for layer in net.layers
            if any(all(not reader.tops for reader in readers.get(top, [])) for top in layer.tops)]
    if not last:
        return "the net has no outputs: no layer computes a blob"
    sinks = sorted({f"{reader.name!r} ({reader.type})" for layer in net.layers if layer.name in last
                    for top in layer.tops for reader in readers.get(top, [])})
    return (f"the net has no outputs: its last blobs are read by layers that write none "
            f"({', '.join(sinks)}); to return them, pass --outputs {','.join(last)}")


def build_graph(net: Net):
    """Apply every converter; return the Keras inputs and a map value id -> Keras tensor."""
    check_supported(net)
    if not net.shapes:
        infer_shapes(net)
    time_major = time_major_values(net)
    tensors = {}
    model_inputs = []
    for name, shape in net.inputs.items():
        keras_input_shape = (keras_shape_of(shape, True) if name in time_major
                             else keras_shape(shape))
        tensor = keras.Input(shape=keras_input_shape[1:], name=keras_layer_name(name))
        tensors[name] = tensor
        model_inputs.append(tensor)
    taken = {keras_layer_name(name): f"input {name!r}" for name in net.inputs}

    for layer in net.layers:
        ctx = Context(net=net, bottom_shapes=[net.shapes[b] for b in layer.bottoms],
                      top_shapes=[net.shapes[t] for t in layer.tops])
        steps = lookup(layer.type)(layer, ctx)
        _claim_names(steps, layer, taken)
        # The steps hold the weights in Keras' layout now. Letting go of the IR's arrays
        # first hands their file pages back before the Keras variables are allocated.
        layer.blobs = []
        # A layer without bottoms (Parameter) is called on the first input, for its batch size.
        bottoms = [tensors[b] for b in layer.bottoms] or model_inputs[:1]
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
    100M random numbers and three transient copies of them) only for ``set_weights`` to
    overwrite them. Variables created inside a ``StatelessScope`` stay empty until the
    scope closes and are then filled once from their initializer, which here hands over
    our array (Keras' deferred initialisation; it keeps the initializer in
    ``Variable._initializer``).
    """
    if step.weights is None or step.layer.built:
        value = step.layer(value)
        if step.weights is not None:
            step.layer.set_weights(step.weights)
        return value
    presets = [_Preset(array) for array in step.weights]
    with keras.StatelessScope():
        value = step.layer(value)
        variables = step.layer.weights
        if len(variables) != len(presets):
            raise ValueError(f"Keras layer {step.layer.name!r} has {len(variables)} weights, the "
                             f"converter gave {len(presets)}")
        for variable, preset in zip(variables, presets):
            if tuple(variable.shape) != preset.shape:
                raise ValueError(f"Keras layer {step.layer.name!r}: weight {variable.path} has "
                                 f"shape {tuple(variable.shape)}, the converter gave "
                                 f"{preset.shape}")
            variable._initializer = preset
    if not all(preset.used for preset in presets):
        # A Keras that initialises some other way: the variables hold the layer's own
        # initial values, so set ours the ordinary way (slower, same result).
        step.layer.set_weights(step.weights)
    return value


class _Preset:
    """An initializer that hands over one prepared array, once."""

    def __init__(self, array):
        self.array = np.asarray(array)
        self.shape = self.array.shape
        self.used = False

    def __call__(self, shape, dtype=None):
        array, self.array, self.used = self.array, None, True
        if dtype is not None and keras.backend.standardize_dtype(dtype) != str(array.dtype):
            return keras.ops.cast(array, dtype)
        if keras.backend.backend() == "tensorflow" and array.nbytes >= _ADOPT_BYTES:
            return _adoptable_tensor(array)
        return array


# From this size on, TensorFlow is handed a buffer it can adopt as the variable's own.
_ADOPT_BYTES = 1 << 20
_ALIGN = 64  # TensorFlow's EIGEN_MAX_ALIGN_BYTES


def _adoptable_tensor(array: np.ndarray):
    """A TensorFlow tensor over a 64-byte aligned copy of ``array`` that nothing else holds.

    Converting a NumPy array the usual way costs TensorFlow two copies of it at once (for
    VGG16's fc6, 800 MB on top of the array). A tensor made through DLPack shares the
    copy's memory instead, and a new variable takes over the buffer of a tensor nothing
    else uses: the variable's memory is then this one copy.
    """
    import tensorflow as tf
    raw = np.empty(array.nbytes + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    copy = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    np.copyto(copy, array)
    return tf.experimental.dlpack.from_dlpack(copy.__dlpack__())


def _claim_names(steps, layer, taken: dict[str, str]) -> None:
    """Keras needs unique layer names; a clash (a layer named like an input, or two names
    equal once '/' becomes '_') is the prototxt's to fix, so say which names collide."""
    owner = f"layer {layer.name!r}"
    for step in steps:
        holder = taken.setdefault(step.layer.name, owner)
        if holder != owner:
            raise StructureError(f"layer {layer.name!r} ({layer.type}): its Keras name "
                                 f"{step.layer.name!r} is already taken by {holder}; rename one "
                                 "of them in the prototxt")
