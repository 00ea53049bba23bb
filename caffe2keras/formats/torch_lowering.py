"""How Keras' torch backend is traced by ``torch.export`` (used only in the export child).

Two backend functions trace badly as they are, so ``export_lowerings()`` swaps in exact
equivalents while the model is traced:

* ``torch.take_along_dim`` (behind ``keras.ops.take_along_axis``): torch 2.13 reads its
  operands' concrete sizes to broadcast them, which fixes a dynamic batch at the size it was
  traced with ("Constraints violated (batch)"). Replacement: the same broadcast done with
  symbolic sizes, then ``torch.gather``, which is what take_along_dim computes.
* ``keras.ops.fori_loop``: the torch backend runs it as a Python loop, so tracing unrolls it:
  DetectionOutput's NMS loop (one step per candidate box, ``top_k`` of them) became thousands
  of graph nodes: at top_k 30, some 20 s to trace and 20 s more to save (SSD300 has 400).
  Replacement: torch's ``while_loop`` operator, one traced body whatever the count (at
  SSD300's sizes, 8732 priors and top_k 400, written and checked in 15 s of CPU); the same
  operations in the same order, so the same values.

After tracing, ``drop_layout_copies`` removes the copies Keras' channels-last convolution
and pooling make of their inputs and kernels (``contiguous()`` twice: to NCHW order, then
back to channels-last memory), which took about a third of open_nsfw's run time. A copy
goes only when all its users are operations that read it without writing, so no value and
no aliasing changes.
"""

from __future__ import annotations

from contextlib import contextmanager


def take_along_dim_symbolic(original):
    import torch

    def take_along_dim(x, indices, dim=None):
        if dim is None:  # flattened operands: nothing is broadcast
            return original(x, indices)
        dim = dim % x.dim()

        def one_on_dim(shape):
            return (*shape[:dim], 1, *shape[dim + 1:])

        common = list(torch.broadcast_shapes(one_on_dim(x.shape), one_on_dim(indices.shape)))
        x_shape, index_shape = list(common), list(common)
        x_shape[dim], index_shape[dim] = x.shape[dim], indices.shape[dim]
        return torch.gather(x.expand(x_shape), dim, indices.expand(index_shape))

    return take_along_dim


def fori_loop_as_while_loop(lower, upper, body_fun, init_val):
    """``keras.ops.fori_loop`` as one torch ``while_loop`` (the counter is a 0-d tensor)."""
    import torch
    from torch._higher_order_ops import while_loop
    from torch.utils import _pytree

    flat, spec = _pytree.tree_flatten(init_val)

    def condition(i, *state):
        return i < upper

    def body(i, *state):
        new_state = body_fun(i, _pytree.tree_unflatten(list(state), spec))
        # while_loop refuses a body that returns one of its inputs unchanged: copy each
        return (i + 1, *(value.clone() for value in _pytree.tree_flatten(new_state)[0]))

    results = while_loop(condition, body, (torch.tensor(lower, dtype=torch.int64), *flat))
    return _pytree.tree_unflatten(list(results[1:]), spec)


@contextmanager
def export_lowerings():
    """Trace with the replacements above; restore the originals afterwards."""
    import torch
    from keras.src.backend.torch import core as keras_torch_core

    take_along_dim, fori_loop = torch.take_along_dim, keras_torch_core.fori_loop
    torch.take_along_dim = take_along_dim_symbolic(take_along_dim)
    keras_torch_core.fori_loop = fori_loop_as_while_loop
    try:
        yield
    finally:
        torch.take_along_dim, keras_torch_core.fori_loop = take_along_dim, fori_loop


def drop_layout_copies(exported) -> int:
    """Remove from ``exported`` (an ExportedProgram, in place) every ``aten.contiguous``
    whose users only read it (convolution, pooling, another contiguous); the number removed."""
    import torch

    aten = torch.ops.aten
    readers = {aten.conv2d.default, aten.max_pool2d.default, aten.avg_pool2d.default,
               aten.contiguous.default}
    graph, removed = exported.graph, 0
    for node in reversed(list(graph.nodes)):  # users first, so chains of copies all go
        if node.op == "call_function" and node.target is aten.contiguous.default \
                and all(user.target in readers for user in node.users):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            removed += 1
    exported.graph_module.recompile()
    return removed
