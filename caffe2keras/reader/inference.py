"""A train_val net (already filtered to one phase) reduced to the inference net a deploy file
would describe.

Caffe's published pairs (CaffeNet, GoogLeNet, LeNet: ``train_val.prototxt`` /
``deploy.prototxt``) differ in the same way, and this module makes that difference:

* layers that only train or evaluate go: every ``*Loss`` type, Accuracy, and the like;
* the main loss (the largest ``loss_weight``; several when they tie) keeps its prediction: a
  SoftmaxWithLoss becomes the Softmax of the deploy files (named ``prob``, as they name it,
  when there is one), a SigmoidCrossEntropyLoss a Sigmoid; other losses leave their bottoms
  that are not labels (the data layers' later tops and what only they compute) as the net's
  outputs (SSD's MultiBoxLoss: the locations, confidences and priors);
* without any loss, what the evaluating layers (Accuracy, ...) read first stays, as the output;
* auxiliary losses (a smaller ``loss_weight``, GoogLeNet's ``loss1``/``loss2`` at 0.3) go with
  every layer that only they needed, as do layers that only fed the labels;
* the data layers stay: the loader makes their first top an input and drops unread labels.

A net without such layers is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..proto import caffe_pb2
from .inputs import DATA_LAYER_TYPES

TRAINING_ONLY_TYPES = frozenset({"Accuracy", "DetectionEvaluate", "HDF5Output"})
# the loss types of BVLC Caffe and the SSD fork, for the layer table (any *Loss type goes)
KNOWN_TRAINING_TYPES = TRAINING_ONLY_TYPES | {
    "ContrastiveLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss", "MultiBoxLoss",
    "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "SmoothL1Loss", "SoftmaxWithLoss"}
# loss type -> the activation its prediction goes through in a deploy net
_ACTIVATION_OF_LOSS = {"SoftmaxWithLoss": "Softmax", "SigmoidCrossEntropyLoss": "Sigmoid"}


def training_only(layer) -> bool:
    return layer.type in TRAINING_ONLY_TYPES or layer.type.endswith("Loss")


@dataclass
class Reduction:
    """What ``reduce_to_inference`` did, for the conversion summary."""

    dropped_training: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    replaced: list[tuple[str, str, str]] = field(default_factory=list)  # (loss, type, new name)
    dropped_unneeded: list[str] = field(default_factory=list)  # layer names

    def notes(self) -> list[str]:
        if not self.dropped_training:
            return []
        dropped = ", ".join(f"{name!r} ({type_})" for name, type_ in self.dropped_training)
        notes = [f"train/val net: built its inference net; dropped {dropped}"]
        notes += [f"train/val net: {type_} {loss!r} became {_ACTIVATION_OF_LOSS[type_]} "
                  f"{new!r}, as in Caffe's deploy nets" for loss, type_, new in self.replaced]
        if self.dropped_unneeded:
            notes.append("train/val net: dropped the layers only the losses or the labels needed: "
                         + ", ".join(map(repr, self.dropped_unneeded)))
        return notes


def _loss_weight(layer) -> float:
    return layer.loss_weight[0] if layer.loss_weight else 1.0


def _activation_name(loss, count: int, taken: set[str]) -> str:
    name = "prob" if count == 1 else f"{loss.name}_prob"
    n = 1
    candidate = name
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def reduce_to_inference(layers: list) -> tuple[list, Reduction]:
    """``layers`` (LayerParameters of one phase, in order) without training layers and what
    only they needed; returns the new list and what was done."""
    reduction = Reduction()
    losses = [layer for layer in layers if training_only(layer) and layer.type.endswith("Loss")]
    if not any(training_only(layer) for layer in layers):
        return list(layers), reduction
    main_weight = max((_loss_weight(loss) for loss in losses), default=None)
    main = [loss for loss in losses if _loss_weight(loss) == main_weight]
    taken = {layer.name for layer in layers} | {blob for layer in layers for blob in layer.top}
    activations = [loss for loss in main if loss.type in _ACTIVATION_OF_LOSS]
    main_ids, activation_ids = {id(loss) for loss in main}, {id(loss) for loss in activations}

    # Caffe's blobs in versions: an in-place top is a new version of its blob.
    version: dict[str, int] = {}
    steps = []  # (layer, bottom versions, top versions)
    for layer in layers:
        bottoms = [(blob, version.get(blob, 0)) for blob in layer.bottom]
        tops = []
        for blob in layer.top:
            version[blob] = version.get(blob, -1) + 1
            tops.append((blob, version[blob]))
        steps.append((layer, bottoms, tops))

    read = {value for _, bottoms, _ in steps for value in bottoms}
    labels = set()  # a data layer's tops after the first, and what is computed from them alone
    for layer, bottoms, tops in steps:
        if layer.type in DATA_LAYER_TYPES:
            labels.update(tops[1:])
        elif bottoms and all(bottom in labels for bottom in bottoms):
            labels.update(tops)
    wanted = set()
    result = []
    for layer, bottoms, tops in steps:
        if training_only(layer):
            reduction.dropped_training.append((layer.name, layer.type))
            if id(layer) in activation_ids:
                new = caffe_pb2.LayerParameter()
                new.name = _activation_name(layer, len(activations), taken)
                new.type = _ACTIVATION_OF_LOSS[layer.type]
                new.bottom.append(layer.bottom[0])
                new.top.append(new.name)
                if layer.type == "SoftmaxWithLoss" and layer.HasField("softmax_param"):
                    new.softmax_param.CopyFrom(layer.softmax_param)
                taken.add(new.name)
                reduction.replaced.append((layer.name, layer.type, new.name))
                result.append((new, bottoms[:1], [(new.name, 0)]))
                wanted.add((new.name, 0))
            elif id(layer) in main_ids:  # its predictions: every bottom but the labels
                wanted.update(bottom for bottom in bottoms if bottom not in labels)
            elif not losses and bottoms:
                wanted.add(bottoms[0])  # without losses, what is evaluated
            continue
        result.append((layer, bottoms, tops))
        if layer.type in DATA_LAYER_TYPES:
            continue
        wanted.update(top for top in tops if top not in read)  # the train net's own outputs

    producer = {top: layer for layer, _, tops in result for top in tops}
    needed_layers, stack = set(), list(wanted)
    bottoms_of = {id(layer): bottoms for layer, bottoms, _ in result}
    while stack:
        layer = producer.get(stack.pop())
        if layer is not None and id(layer) not in needed_layers:
            needed_layers.add(id(layer))
            stack.extend(bottoms_of[id(layer)])
    kept = []
    for layer, _, _ in result:
        if layer.type in DATA_LAYER_TYPES or id(layer) in needed_layers:
            kept.append(layer)
        else:
            reduction.dropped_unneeded.append(layer.name)
    return kept, reduction
