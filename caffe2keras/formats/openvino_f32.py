"""Keeping an OpenVINO model in float32 under the CPU plugin's default settings.

On a CPU with bf16 instructions (AVX512_BF16, AMX) the CPU plugin's default inference
precision is bf16: it rounds the float tensors of most ops to bf16, 8 bits of mantissa. A
model-level hint (rt_info ``runtime_options``) is not read by ``compile_model``; what the
plugin does honour is a per-node runtime attribute, the "precise" mark (rt_info key
``precise_0``, ``ov::DisableFP16Compression``, serialised as ``DisablePrecisionConversion``):
a marked node keeps its own precision. So every node is marked, in sub-graphs (Loop bodies)
too.

The mark is not copied when one of the plugin's own transformations replaces a node, so the
patterns the plugin would rewrite are first rewritten here into the form it keeps
(``openvino_rewrites``). Whatever still runs below float32 is found after compiling
(``below_float32``), so a pattern not handled yet fails the conversion check instead of
slipping through.
"""

from __future__ import annotations

from .openvino_graph import is_live
from .openvino_rewrites import PASSES

PRECISE = "precise_0"  # ov::DisableFP16Compression's rt_info key
LOW_PRECISIONS = ("bf16", "f16")
# runtime graph nodes that compute no values: format conversions (the op they feed is what
# counts) and ShapeOf (reads only the shape)
VALUE_FREE = ("Reorder", "ShapeOf")


def keep_float32(model) -> None:
    """Rewrite what the CPU plugin would replace, then mark every node precise."""
    for rewrites in PASSES:
        _rewrite(model, rewrites)
    _mark(model)


def bodies(node) -> list:
    """The sub-graphs of a Loop / TensorIterator / If node."""
    if hasattr(node, "get_function"):
        return [node.get_function()]
    if hasattr(node, "get_then_body"):
        return [node.get_then_body(), node.get_else_body()]
    return []


def _rewrite(model, rewrites: dict) -> None:
    for node in model.get_ordered_ops():
        rewrite = rewrites.get(node.get_type_name())
        if rewrite is not None and is_live(node):  # not one an earlier rewrite replaced
            rewrite(node)
        for body in bodies(node):
            _rewrite(body, rewrites)
    model.validate_nodes_and_infer_types()


def _mark(model) -> None:
    for node in model.get_ops():
        node.get_rt_info()[PRECISE] = ""
        for body in bodies(node):
            _mark(body)


def below_float32(compiled) -> list[str]:
    """The ops ``compiled`` runs in a float type narrower than float32 (in its runtime graph,
    as the plugin executes it), as "name (type, precision)"."""
    found = []
    for node in compiled.get_runtime_model().get_ops():
        info = node.get_rt_info()
        precision, kind = info["runtimePrecision"].astype(str), info["layerType"].astype(str)
        if precision in LOW_PRECISIONS and kind not in VALUE_FREE:
            found.append(f"{node.get_friendly_name()} ({kind}, {precision})")
    return found
