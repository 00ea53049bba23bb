"""Keras model -> LiteRT flatbuffer through TensorFlow's converter: the model traced into
one ``tf.function`` whose inputs and outputs are keyed by canonical names, saved as a
SavedModel and converted with builtin ops only, float32, no optimisation. Large kernels
are traced as markers and written around the converter (``litert_weights``)."""

from __future__ import annotations

import math
import os

from ..errors import OutputError
from .base import input_names, output_names
from .litert_errors import converter_failure, quiet_stderr
from .litert_file import write_model_file
from .litert_norms import foldable, fold_into, identity_state, norms_after
from .litert_weights import find_markers, markable, marker_value

SIGNATURE = "serving_default"
CONSTANT_BYTES = 1 << 20  # real variables below this size are traced as constants


def write_tflite(model, path: str, scratch: str, key) -> None:
    """Convert ``model`` and write the file to ``path``; ``key(name)`` gives the signature
    key of a canonical name. Kernels the converter did not keep as markers (folded into a
    neighbour) are converted for real in a further round."""
    from ai_edge_litert import schema_py_generated as schema

    marked = markable(model)
    while True:
        norms = norms_after(model, marked)
        flatbuffer = convert(model, marked, os.path.join(scratch, f"saved_{len(marked)}"), key,
                             norms)
        tree = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)  # buffers stay views of it
        refuse_foreign_ops(tree, schema)
        placed, lost = find_markers(tree, marked) if marked else ([], set())
        lost |= {item.variable for item in placed if item.variable in norms
                 and not foldable(tree, item, norms[item.variable][1], schema)}
        if not lost:
            scales = {item.variable: fold_into(tree, item, *norms[item.variable], schema)
                      for item in placed if item.variable in norms}
            write_model_file(tree, path, input_names(model), output_names(model), placed,
                             marked, scales)
            return
        marked = [variable for i, variable in enumerate(marked) if i not in lost]


def refuse_foreign_ops(tree, schema) -> None:
    """Only builtin ops, and no variable ops: a variable left unfrozen reads as whatever
    memory XNNPACK finds there (seen: inf and NaN), and a custom op no runtime has."""
    ops = schema.BuiltinOperator
    forbidden = {ops.VAR_HANDLE: "VAR_HANDLE", ops.READ_VARIABLE: "READ_VARIABLE",
                 ops.ASSIGN_VARIABLE: "ASSIGN_VARIABLE", ops.CUSTOM: "CUSTOM"}
    found = sorted({forbidden[code] for code in
                    (max(c.builtinCode, c.deprecatedBuiltinCode) for c in tree.operatorCodes)
                    if code in forbidden})
    if found:
        raise OutputError(f"the TensorFlow Lite converter left {', '.join(found)} ops in the "
                          "model; not writing it")


def convert(model, marked: list, folder: str, key, norms=None) -> bytes:
    """The flatbuffer of ``model`` with each variable in ``marked`` replaced by its marker
    and each normalisation in ``norms`` (``litert_norms.norms_after``) by an identity."""
    import tensorflow as tf

    save_for_conversion(model, marked, folder, key, norms or {})
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    # No variable may survive as one (a resource variable needs an initialiser run).
    converter.experimental_enable_resource_variables = False
    # Keep +-inf constants as they are (Keras computes with them), and save a pass that
    # visits every weight.
    converter.canonicalizing_inf_as_min_max_float = False
    # A marker kernel stays one number and leaves the converter as a FILL op.
    converter._experimental_unfold_large_splat_constant = bool(marked)
    try:
        with quiet_stderr():
            return converter.convert()
    except Exception as error:  # the converter raises its own ConverterError and others
        raise converter_failure(model, error) from None


def save_for_conversion(model, marked: list, folder: str, key, norms: dict) -> None:
    """A SavedModel of one signature, inputs and outputs keyed by ``key(canonical name)``.
    The variables in ``marked`` are traced as their markers, those of the normalisations
    in ``norms`` as an identity, the other small ones as constants, the large ones stay
    variables (the converter freezes them)."""
    import tensorflow as tf
    from ..lazy import keras

    outputs = output_names(model)
    specs = [tf.TensorSpec((None, *tensor.shape[1:]), tf.float32, name=key(name))
             for name, tensor in zip(input_names(model), model.inputs)]
    substituted = {id(variable) for variable in marked} | {
        id(variable) for norm, _ in norms.values() for variable in norm.weights}
    real = [variable for variable in model.variables if id(variable) not in substituted]
    # Every saved variable costs a traced saver and restorer and the converter a restore
    # and a freeze (ResNet-50's 300: half the time); a large constant costs GraphDef copies
    # (VGG16's kernels as constants: 14 GB). So: small ones constants, large ones variables.
    small = [(variable, variable.numpy()) for variable in real
             if math.prod(variable.shape) * 4 < CONSTANT_BYTES]
    large = [variable for variable in real if math.prod(variable.shape) * 4 >= CONSTANT_BYTES]

    def serve(*inputs):
        constants = [(variable, tf.fill(variable.shape, marker_value(i)))
                     for i, variable in enumerate(marked)] + identity_state(norms)
        constants += [(variable, tf.constant(value)) for variable, value in small]
        with keras.StatelessScope(state_mapping=constants):
            results = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        results = results if isinstance(results, (list, tuple)) else [results]
        return {key(name): result for name, result in zip(outputs, results)}

    traced = tf.function(serve, input_signature=specs, autograph=False).get_concrete_function()
    del small
    module = tf.Module()  # holds only what the trace reads: saving does not trace again
    module.model_variables = [variable.value for variable in large]
    tf.saved_model.save(module, folder, signatures={SIGNATURE: traced})
