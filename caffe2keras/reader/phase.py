"""Caffe's include/exclude rules: which layers exist in a given phase."""

from __future__ import annotations

from ..errors import StructureError
from ..proto import caffe_pb2


def make_state(net_param, phase: str) -> caffe_pb2.NetState:
    """The state the net runs in: the file's own ``state`` (level, stages) with our phase."""
    state = caffe_pb2.NetState()
    state.CopyFrom(net_param.state)
    state.phase = caffe_pb2.Phase.Value(phase.upper())
    return state


def _meets(rule, state) -> bool:
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    return not any(stage in state.stage for stage in rule.not_stage)


def layer_included(layer, state) -> bool:
    """Caffe's rule: with include rules, any one must match; otherwise no exclude rule may."""
    if layer.include and layer.exclude:
        raise StructureError(f"layer {layer.name!r} has both include and exclude rules")
    if layer.include:
        return any(_meets(rule, state) for rule in layer.include)
    return not any(_meets(rule, state) for rule in layer.exclude)
