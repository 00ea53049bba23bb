"""Strided 1x1 convolutions, rewritten as OpenVINO's CPU plugin would (StridesOptimization).

When every reader of a tensor is a 1x1 convolution without padding, all with the same
strides (ResNet's downsampling blocks), the plugin computes only the subsampled tensor: the
readers get stride 1, and the subsampling moves up the graph, through elementwise ops, into
the convolution that produced the tensor (more stride there), or, where it cannot go on
(a tensor read elsewhere too), into a new 1x1 MaxPool with those strides. The nodes it makes
would lose the precise mark, so the same is done here first. Every output is still the same
products and sums: a convolution with stride s*t gives every t-th output of stride s.

Layout: OpenVINO convolutions are channels-first, the spatial axes last.
"""

from __future__ import annotations

from .openvino_graph import is_float, opset1, readers, replace

ELEMENTWISE = {"Relu", "Add", "Subtract", "Multiply", "Divide", "Maximum", "Minimum", "Clamp",
               "PRelu", "Sigmoid", "Tanh", "Exp", "Abs", "Negative", "Elu", "Power", "Sqrt"}
UNPADDED = ("explicit", "valid", "notset")  # auto_pad modes whose pads do not follow strides


def _strides_1x1(node):
    """The strides of a 1x1 Convolution without padding, or None for any other node."""
    if node.get_type_name() != "Convolution":
        return None
    attributes = node.get_attributes()
    kernel = node.get_input_partial_shape(1)
    if kernel.rank.is_dynamic or any(not kernel[i].is_static or kernel[i].get_length() != 1
                                     for i in range(2, kernel.rank.get_length())):
        return None
    if any(attributes["pads_begin"]) or any(attributes["pads_end"]) \
            or attributes["auto_pad"] not in UNPADDED:
        return None
    return list(attributes["strides"])


def _convolution(node, strides):
    """``node`` (a Convolution) with other strides, on the same input."""
    attributes = node.get_attributes()
    return opset1().convolution(node.input_value(0), node.input_value(1), strides,
                                attributes["pads_begin"], attributes["pads_end"],
                                attributes["dilations"], attributes["auto_pad"])


def pull_strides(node) -> None:
    """If ``node`` is a strided 1x1 convolution and every reader of its input is one with the
    same strides: all of them with stride 1, on the input subsampled."""
    strides = _strides_1x1(node)
    if strides is None or all(s == 1 for s in strides) or not is_float(node):
        return
    source = node.input_value(0)
    siblings = [target.get_node() for target in readers(source)]
    if any(_strides_1x1(sibling) != strides for sibling in siblings):
        return  # the plugin leaves these alone
    for sibling in siblings:
        replace(sibling, _convolution(sibling, [1] * len(strides)))
    _subsample(source, strides)


def _subsample(output, strides) -> None:
    """Make ``output`` (whose every reader wants it subsampled) hold the subsampled values."""
    node = output.get_node()
    kind = node.get_type_name()
    if kind == "Convolution":
        own = _strides_1x1(node)
        if own is not None and all(s == 1 for s in own) and len(readers(node.input_value(0))) == 1:
            _subsample(node.input_value(0), strides)  # a 1x1 convolution: subsample its input
        elif node.get_attributes()["auto_pad"] in UNPADDED:
            replace(node, _convolution(node, [a * b for a, b in zip(
                node.get_attributes()["strides"], strides)]))
        else:
            _pool_after(output, strides)
        return
    inputs = _spatial_inputs(node, len(strides)) if kind in ELEMENTWISE else None
    if inputs is None:
        _pool_after(output, strides)
        return
    for index in inputs:
        value = node.input_value(index)
        if len(readers(value)) == 1:
            _subsample(value, strides)
        else:  # read elsewhere too: subsample this edge only
            node.input(index).replace_source_output(_pool(value, strides).output(0))


def _spatial_inputs(node, spatial: int):
    """The inputs of an elementwise ``node`` that vary over the spatial axes (each must be
    subsampled too), or None when an input's shape is anything else."""
    result = node.get_output_partial_shape(0)
    if result.rank.is_dynamic:
        return None
    rank = result.rank.get_length()
    varying = []
    for index in range(node.get_input_size()):
        shape = node.get_input_partial_shape(index)
        if shape.rank.is_dynamic:
            return None
        axes = [shape[i] for i in range(max(0, shape.rank.get_length() - spatial),
                                        shape.rank.get_length())]
        if all(d.is_static and d.get_length() == 1 for d in axes):
            continue  # broadcast over the spatial axes: a per-channel constant, say
        same = shape.rank.get_length() == rank and all(
            shape[i].is_static and result[i].is_static
            and shape[i].get_length() == result[i].get_length()
            for i in range(rank - spatial, rank))
        if not same:
            return None
        varying.append(index)
    return varying


def _pool(value, strides):
    spatial = len(strides)
    return opset1().max_pool(value, strides, [0] * spatial, [0] * spatial, [1] * spatial)


def _pool_after(output, strides) -> None:
    """Every reader of ``output`` reads it through a subsampling 1x1 MaxPool."""
    targets = readers(output)
    pooled = _pool(output, strides)
    for target in targets:
        target.replace_source_output(pooled.output(0))
