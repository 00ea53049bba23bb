"""Which blobs are time-major, and so batch-major in Keras.

Caffe's recurrent layers (LSTM, RNN) read ``x`` as (T, N, ...) and ``cont`` as (T, N) and
write (T, N, num_output): time first, batch second. A Keras model's axis 0 is its free batch,
so these blobs are laid out (N, T, ...) in Keras: axes 0 and 1 swapped, nothing else moved.
The swap reaches every blob connected to a recurrent layer's ``x``, ``cont`` or output through
layers that work position by position and so commute with it (element-wise layers, Eltwise,
Dropout, Split, Embed, InnerProduct and Softmax on an axis from 2 on); a net input among them
is a Keras input of shape (N, T, ...). Any other layer touching such a blob would read
Caffe's time or batch axis: it is refused by name. A time-major blob has 2 or 3 axes (a 4-D
blob's Keras layout is NHWC, which the swap would contradict).

``verify`` swaps the same blobs when it feeds Caffe's inputs and compares Caffe's tops.

State: each call of the Keras model starts from h_0 = c_0 = 0. Caffe's RecurrentLayer
instead copies the last state of one forward call into h_0 (and c_0) of the next one; a
``cont`` of 0 at step 0, which marks each item as a sequence start, cancels that copy (it
multiplies h_0 and the forget gate), and then the numbers agree. A first forward call of a
freshly loaded net agrees too.
"""

from __future__ import annotations

from .errors import StructureError
from .ir import Net

RECURRENT = ("LSTM", "RNN")
# Position-by-position layers: their tops are time-major exactly when their bottoms are.
_PER_POSITION = {
    "AbsVal", "BNLL", "Dropout", "ELU", "Eltwise", "Embed", "Exp", "Log", "Power", "ReLU",
    "Sigmoid", "Split", "TanH", "Threshold",
}
# Layers with an axis: per position when it is 2 or later.
_AXIS_FIELDS = {"InnerProduct": "inner_product_param", "Softmax": "softmax_param"}


def _per_position(layer, net: Net) -> bool:
    if layer.type in _PER_POSITION:
        return True
    field = _AXIS_FIELDS.get(layer.type)
    if field is None:
        return False
    axis = getattr(layer.param, field).axis
    rank = len(net.shapes[layer.bottoms[0]])
    return (axis + rank if axis < 0 else axis) >= 2


def time_major_values(net: Net) -> set[str]:
    """The value ids whose Keras layout swaps Caffe's axes 0 and 1 (empty without recurrent
    layers). Needs ``net.shapes``; raises StructureError naming a layer that would read such
    a blob along its time or batch axis."""
    recurrent = [layer for layer in net.layers if layer.type in RECURRENT]
    if not recurrent:
        return set()
    swapped = set()
    for layer in recurrent:
        swapped.update(layer.bottoms[:2])
        swapped.update(layer.tops[:1])
    changed = True
    while changed:  # spread through per-position layers, both ways
        changed = False
        for layer in net.layers:
            if layer.type in RECURRENT or not _per_position(layer, net):
                continue
            values = set(layer.bottoms) | set(layer.tops)
            if values & swapped and not values <= swapped:
                swapped |= values
                changed = True
    _check(net, recurrent, swapped)
    return swapped


def _check(net: Net, recurrent, swapped: set[str]) -> None:
    names = net.blob_names()
    owners = ", ".join(repr(layer.name) for layer in recurrent)
    for value in sorted(swapped):
        rank = len(net.shapes[value])
        if rank not in (2, 3):
            raise StructureError(
                f"blob {names.get(value, value)!r} of shape {net.shapes[value]} is time-major "
                f"(recurrent layer(s) {owners}); only 2- and 3-axis time-major blobs convert")
    for layer in net.layers:
        if layer.type in RECURRENT:
            for static in layer.bottoms[2:]:
                if static in swapped:
                    raise StructureError(
                        f"layer {layer.name!r} ({layer.type}): its static input "
                        f"{names.get(static, static)!r} (N, ...) is also a time-major blob")
            continue
        touched = [v for v in layer.bottoms + layer.tops if v in swapped]
        if touched and not _per_position(layer, net) and layer.type != "Silence":
            raise StructureError(
                f"layer {layer.name!r} ({layer.type}): reads or writes the time-major blob "
                f"{names.get(touched[0], touched[0])!r} (T, N, ...) of recurrent layer(s) "
                f"{owners}, which the Keras model holds batch-major (N, T, ...); only "
                "position-by-position layers (element-wise, Eltwise, Dropout, Embed, "
                "InnerProduct/Softmax on axis 2) convert there")


def keras_shape_of(caffe_shape, time_major: bool) -> tuple[int, ...]:
    """The Keras shape of a time-major blob: Caffe's with axes 0 and 1 swapped."""
    shape = tuple(caffe_shape)
    return (shape[1], shape[0], *shape[2:]) if time_major else shape
