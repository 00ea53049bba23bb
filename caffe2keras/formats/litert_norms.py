"""A BatchNormalization after a marked kernel, folded here rather than by the converter.

The converter multiplies a following BatchNormalization into the kernel before it, which
would turn the kernel's marker into a full-size array of products. So for the trace the
BatchNormalization is made an identity (gamma 1, beta 0, mean 0, a variance that makes
``variance + epsilon`` exactly 1): the marker comes through, and the fold is computed here
from the real values, in float32 as TensorFlow's inference formula gives them::

    y = (conv(x, W) + b) * inv + (beta - mean * inv),  inv = rsqrt(variance + eps) * gamma
      = conv(x, W * inv) + (b * inv + beta - mean * inv)

``norms_after`` picks the pairs, ``identity_state`` is the trace's substitute, and
``fold_into`` gives the factor for the kernel and writes the op's new bias.
"""

from __future__ import annotations

import numpy as np

# op -> input slot of its bias
_BIAS_SLOTS = {"CONV_2D": 2, "FULLY_CONNECTED": 2, "DEPTHWISE_CONV_2D": 2, "TRANSPOSE_CONV": 3}


def norms_after(model, marked: list) -> dict:
    """variable index -> (BatchNormalization, the kernel's layer) where the normalisation
    alone reads that layer's output (not itself a model output), over its last axis, and
    is called once: the kernel's output channels are the normalised channels."""
    owners = {id(variable): layer for layer in model.layers for variable in layer.weights}
    returned = {id(tensor) for tensor in model.outputs}
    found = {}
    for index, variable in enumerate(marked):
        layer = owners[id(variable)]
        nodes = layer._outbound_nodes
        norm = nodes[0].operation if len(nodes) == 1 else None
        if type(norm).__name__ != "BatchNormalization" or len(norm._inbound_nodes) != 1 \
                or id(layer.output) in returned:
            continue
        if norm.axis in (-1, len(norm.input.shape) - 1) and \
                _identity_variance(norm.epsilon) is not None:
            found[index] = (norm, layer)
    return found


def _identity_variance(epsilon: float) -> np.float32 | None:
    """A float32 v with fl(v + epsilon) == 1, so rsqrt gives exactly 1 (None if none is
    near 1 - epsilon)."""
    eps = np.float32(epsilon)
    value = np.float32(1) - eps
    for _ in range(8):
        total = np.float32(value + eps)
        if total == 1:
            return value
        value = np.nextafter(value, np.float32(-np.inf if total > 1 else np.inf))
    return None


def identity_state(norms: dict) -> list:
    """(Keras variable, value) pairs making each BatchNormalization an identity."""
    import tensorflow as tf
    pairs = []
    for norm, _ in norms.values():
        channels = norm.moving_mean.shape
        pairs += [(norm.moving_mean, tf.zeros(channels)),
                  (norm.moving_variance, tf.fill(channels, _identity_variance(norm.epsilon)))]
        if norm.scale:
            pairs.append((norm.gamma, tf.ones(channels)))
        if norm.center:
            pairs.append((norm.beta, tf.zeros(channels)))
    return pairs


def _inv_and_shift(norm) -> tuple[np.ndarray, np.ndarray]:
    """float32 inv and beta - mean * inv, as TensorFlow computes them."""
    f32 = np.float32
    variance = np.asarray(norm.moving_variance.value, f32)
    inv = (f32(1) / np.sqrt(variance + f32(norm.epsilon))).astype(f32)
    if norm.scale:
        inv = inv * np.asarray(norm.gamma.value, f32)
    shift = -(np.asarray(norm.moving_mean.value, f32) * inv)
    if norm.center:
        shift = np.asarray(norm.beta.value, f32) - np.asarray(norm.moving_mean.value, f32) * inv
    return inv, shift


def reader_name(tree, item, schema) -> str | None:
    """The name of the one op reading a placed marker (None for several)."""
    if len(item.readers) != 1:
        return None
    operator = tree.subgraphs[item.subgraph].operators[item.readers[0]]
    code = tree.operatorCodes[operator.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    return next((name for name, value in vars(schema.BuiltinOperator).items()
                 if value == number and not name.startswith("_")), None)


def foldable(tree, item, layer, schema) -> bool:
    """Whether the one op reading the marker is one we know and already adds exactly the
    layer's bias (or none): else the bias is added elsewhere and a new one would add it
    twice."""
    name = reader_name(tree, item, schema)
    if name not in _BIAS_SLOTS:
        return False
    subgraph = tree.subgraphs[item.subgraph]
    inputs = subgraph.operators[item.readers[0]].inputs
    slot = _BIAS_SLOTS[name]
    current = inputs[slot] if len(inputs) > slot else -1
    expected = np.asarray(layer.bias.value, np.float32) if getattr(layer, "use_bias", False) \
        else None
    if current < 0:
        return expected is None
    tensor = subgraph.tensors[current]
    data = tree.buffers[tensor.buffer].data if tensor.buffer else None
    if data is None or len(data) % 4:
        return False
    values = np.frombuffer(data, np.float32)
    return not np.any(values) if expected is None else np.array_equal(values, expected)


def fold_into(tree, item, norm, layer, schema):
    """The factor to multiply the laid-out kernel of ``layer`` by (shaped to broadcast
    against it), after giving the op reading it (``foldable``) a new bias tensor holding
    ``bias * inv + shift``. Call before any op is removed: ``item.readers`` index them."""
    op_name = reader_name(tree, item, schema)
    slot = _BIAS_SLOTS[op_name]
    inv, shift = _inv_and_shift(norm)
    bias = shift
    if getattr(layer, "use_bias", False):
        bias = np.asarray(layer.bias.value, np.float32) * inv + shift
    subgraph = tree.subgraphs[item.subgraph]
    operator = subgraph.operators[item.readers[0]]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(bias, "<f4").tobytes(), np.uint8)
    tree.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape, tensor.type = np.array([bias.size], np.int32), schema.TensorType.FLOAT32
    tensor.buffer, tensor.name = len(tree.buffers) - 1, f"{norm.name}/folded_bias"
    subgraph.tensors.append(tensor)
    inputs = list(operator.inputs)
    inputs += [-1] * (slot + 1 - len(inputs))
    inputs[slot] = len(subgraph.tensors) - 1
    operator.inputs = inputs
    if op_name == "DEPTHWISE_CONV_2D":  # laid out (kh, kw, C, M); channel c*M + m
        return inv.reshape((1, 1) + tuple(layer.kernel.shape[2:]))
    return inv.reshape((-1,) + (1,) * (len(item.perm) - 1))  # output channels first
