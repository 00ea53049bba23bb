"""Small helpers for editing an ``openvino.Model`` in place (used by the rewrites)."""

from __future__ import annotations


def opset():
    """The op versions the CPU plugin takes as they are, for nodes added by a rewrite."""
    import openvino.opset13 as opset13
    return opset13


def opset1():
    import openvino.opset1 as opset1
    return opset1


def replace(node, new) -> None:
    """Every reader of ``node``'s first output reads ``new``'s instead."""
    new.set_friendly_name(node.get_friendly_name())
    node.output(0).replace(new.output(0))


def constant(output):
    """The value of ``output`` when a Constant produces it, else None."""
    node = output.get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None


def is_live(node) -> bool:
    """A node something still reads (a replaced node keeps its inputs, read by nothing)."""
    return node.get_type_name() == "Result" or any(out.get_target_inputs()
                                                   for out in node.outputs())


def readers(output) -> list:
    """The inputs (of live nodes) reading ``output``."""
    return [target for target in output.get_target_inputs() if is_live(target.get_node())]


def only_reader(output):
    """The (node, input index) reading ``output``, when there is exactly one."""
    targets = readers(output)
    return (targets[0].get_node(), targets[0].get_index()) if len(targets) == 1 else (None, None)


def is_float(node) -> bool:
    """Only float data is narrowed; integer (shape) computations are left as they are."""
    return node.get_output_element_type(0).is_real()
