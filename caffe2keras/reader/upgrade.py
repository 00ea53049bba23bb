"""Bring old Caffe net definitions up to the current (V2) NetParameter format.

Caffe has described nets in three ways over its life:

* V0: ``layers { layer { name: "c1" type: "conv" num_output: 8 ... } bottom: "x" top: "c1" }``,
  with every setting flat on the inner V0LayerParameter and stand-alone "padding" layers;
* V1: ``layers { name: "c1" type: CONVOLUTION convolution_param { ... } blobs_lr: 1 }``;
* V2: ``layer { name: "c1" type: "Convolution" ... param { lr_mult: 1 } }``.

Caffe upgrades the older forms when it loads a file (util/upgrade_proto.cpp); this module
follows the same rules so that old prototxts and caffemodels mean the same thing here. Binary
weight files go through the same path, so blobs travel with their layers. The net-level
``input``/``input_dim``/``input_shape`` fields are left alone: the loader reads them itself.
"""

from __future__ import annotations

from google.protobuf import unknown_fields

from caffe2keras.errors import ParseError, StructureError
from caffe2keras.proto import caffe_pb2
from caffe2keras.reader.prototxt import _is_repeated

_V1Layer = caffe_pb2.V1LayerParameter

# The deepest real nets have a few thousand layers; work after parsing grows with the count.
MAX_LAYERS = 50_000

# V1 LayerType enum name -> V2 type string. NONE is deliberately absent: it names no layer.
_V1_TO_V2_TYPE = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

# V0 type string -> V1 LayerType enum name. "padding" is absent: those layers are folded away.
_V0_TO_V1_TYPE = {
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION",
    "data": "DATA", "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN", "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL", "images": "IMAGE_DATA", "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING", "relu": "RELU",
    "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS", "split": "SPLIT",
    "tanh": "TANH", "window_data": "WINDOW_DATA",
}

# V0 preprocessing fields land in transform_param whatever the layer type.
_V0_TRANSFORM_FIELDS = {"scale": "scale", "meanfile": "mean_file", "cropsize": "crop_size",
                        "mirror": "mirror"}

_CONV, _IP, _POOL = "convolution_param", "inner_product_param", "pooling_param"
_DATA_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param",
                 "images": "image_data_param", "window_data": "window_data_param"}


def _same_field(field: str, homes: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {v0_type: (sub, field) for v0_type, sub in homes.items()}


# V0 field -> {V0 layer type: (V1 sub-message, field in it)}. An empty sub-message name means
# a field of the V1 layer itself. A field set on a layer type it has no home for is dropped,
# which is what Caffe ends up doing (it only logs the mismatch).
_V0_FIELD_HOMES: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": _same_field("num_output", {"conv": _CONV, "innerproduct": _IP}),
    "biasterm": _same_field("bias_term", {"conv": _CONV, "innerproduct": _IP}),
    "weight_filler": _same_field("weight_filler", {"conv": _CONV, "innerproduct": _IP}),
    "bias_filler": _same_field("bias_filler", {"conv": _CONV, "innerproduct": _IP}),
    "pad": _same_field("pad", {"conv": _CONV, "pool": _POOL}),
    "kernelsize": _same_field("kernel_size", {"conv": _CONV, "pool": _POOL}),
    "stride": _same_field("stride", {"conv": _CONV, "pool": _POOL}),
    "group": _same_field("group", {"conv": _CONV}),
    # V0 and PoolingParameter number MAX/AVE/STOCHASTIC identically, so the value carries over.
    "pool": _same_field("pool", {"pool": _POOL}),
    "dropout_ratio": _same_field("dropout_ratio", {"dropout": "dropout_param"}),
    "local_size": _same_field("local_size", {"lrn": "lrn_param"}),
    "alpha": _same_field("alpha", {"lrn": "lrn_param"}),
    "beta": _same_field("beta", {"lrn": "lrn_param"}),
    "k": _same_field("k", {"lrn": "lrn_param"}),
    "source": _same_field("source", {**_DATA_SOURCES, "infogain_loss": "infogain_loss_param"}),
    "batchsize": _same_field("batch_size", _DATA_SOURCES),
    "rand_skip": _same_field("rand_skip", {"data": "data_param", "images": "image_data_param"}),
    "shuffle_images": _same_field("shuffle", {"images": "image_data_param"}),
    "new_height": _same_field("new_height", {"images": "image_data_param"}),
    "new_width": _same_field("new_width", {"images": "image_data_param"}),
    "concat_dim": _same_field("concat_dim", {"concat": "concat_param"}),
    "det_fg_threshold": _same_field("fg_threshold", {"window_data": "window_data_param"}),
    "det_bg_threshold": _same_field("bg_threshold", {"window_data": "window_data_param"}),
    "det_fg_fraction": _same_field("fg_fraction", {"window_data": "window_data_param"}),
    "det_context_pad": _same_field("context_pad", {"window_data": "window_data_param"}),
    "det_crop_mode": _same_field("crop_mode", {"window_data": "window_data_param"}),
    "hdf5_output_param": {"hdf5_output": ("", "hdf5_output_param")},
}

# Old V1 data layers kept their preprocessing in their own *_param; Caffe moves it out.
_V1_DATA_LAYER_PARAMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param",
                         "WINDOW_DATA": "window_data_param"}
_OLD_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

# V1 fields converted one by one; any other field set on a V1 layer is a *_param sub-message
# copied under the same name into the V2 layer.
_V1_FIELDS_WITH_OWN_RULES = frozenset({
    "bottom", "top", "name", "include", "exclude", "type", "blobs", "param",
    "blob_share_mode", "blobs_lr", "weight_decay", "loss_weight",
})


def net_format(net: caffe_pb2.NetParameter) -> str:
    """Which generation of the format ``net`` uses: "V0", "V1" or "V2"."""
    if any(entry.HasField("layer") for entry in net.layers):
        return "V0"
    return "V1" if len(net.layers) else "V2"


def upgrade_net(net: caffe_pb2.NetParameter, source: str) -> caffe_pb2.NetParameter:
    """Return a V2 NetParameter (a new message; the input is not modified). `source` is the file
    path used in error messages. Layers keep their blobs (binary caffemodels are upgraded the same way)."""
    count = len(net.layer) + len(net.layers)
    if count > MAX_LAYERS:
        raise StructureError(f"{source}: {count} layers, more than the {MAX_LAYERS} this converter "
                             "accepts; no real net has that many")
    _check_text(net, source)
    if len(net.layer) and len(net.layers):
        raise StructureError(
            f"{source}: mixes 'layer' and 'layers' entries; a net must use one format only "
            "(rewrite the 'layers' entries as 'layer' entries with string types)")
    fmt = net_format(net)
    upgraded = caffe_pb2.NetParameter()
    upgraded.CopyFrom(net)
    if fmt == "V0":
        upgraded = _v0_net_to_v1(upgraded, source)
    if fmt != "V2":
        _move_old_transform_fields(upgraded)
        upgraded = _v1_net_to_v2(upgraded, source)
    _drop_batch_norm_param_specs(upgraded)
    return upgraded


def _check_text(message, source: str, where: str = "") -> None:
    """Refuse text fields that are not UTF-8. protobuf parses a binary file's strings
    without checking them and hands the bad ones to Python as bytes, which would fail
    (or print oddly) wherever a name is first used."""
    for field, value in message.ListFields():
        repeated = _is_repeated(field)
        if field.message_type is not None:
            for index, child in enumerate(value if repeated else [value]):
                _check_text(child, source, f"{where}{field.name}[{index}]." if repeated
                            else f"{where}{field.name}.")
        elif field.type == field.TYPE_STRING:
            for item in (value if repeated else [value]):
                if isinstance(item, bytes):
                    raise ParseError(f"{source}: {where}{field.name} {item[:40]!r} is not valid "
                                     "UTF-8 text (a corrupt file?)")


# ---------------------------------------------------------------- V0 -> V1

def _v0_net_to_v1(net: caffe_pb2.NetParameter, source: str) -> caffe_pb2.NetParameter:
    for entry in net.layers:
        if not entry.HasField("layer"):
            # Caffe would keep only the bottoms and tops of such an entry, silently.
            raise StructureError(
                f"{source}: layer {entry.name!r} is written in the V1 format inside a V0 net; "
                "a net must use one format only")
    kept = _fold_padding_layers(net, source)
    upgraded = caffe_pb2.NetParameter()
    upgraded.CopyFrom(net)
    upgraded.ClearField("layers")
    for entry in kept:
        upgraded.layers.add().CopyFrom(_v0_layer_to_v1(entry, source))
    return upgraded


def _fold_padding_layers(net: caffe_pb2.NetParameter, source: str) -> list:
    """Drop V0 "padding" layers, giving their pad to the conv/pool layer that reads them."""
    last_writer: dict[str, object] = {blob: None for blob in net.input}  # None: a net input
    kept = []
    for entry in net.layers:
        if entry.layer.type != "padding":
            kept.append(_V1Layer())
            kept[-1].CopyFrom(entry)
        for index, blob in enumerate(entry.bottom):
            if blob not in last_writer:
                raise StructureError(
                    f"{source}: layer {entry.layer.name!r} reads blob {blob!r}, which neither a "
                    "net input nor an earlier layer produces")
            writer = last_writer[blob]
            if writer is not None and writer.layer.type == "padding":
                _check_padding_reader(writer, entry, source)
                kept[-1].layer.pad = writer.layer.pad
                kept[-1].bottom[index] = writer.bottom[0]
        for blob in entry.top:
            last_writer[blob] = entry
    return kept


def _check_padding_reader(padding, reader, source: str) -> None:
    """Caffe only knows how to fold a one-in one-out padding layer into a one-input conv/pool."""
    pad_name, name = padding.layer.name, reader.layer.name
    if reader.layer.type not in ("conv", "pool"):
        raise StructureError(
            f"{source}: padding layer {pad_name!r} feeds layer {name!r} of type "
            f"{reader.layer.type!r}; only 'conv' and 'pool' layers can take a V0 padding layer")
    if len(reader.bottom) != 1:
        raise StructureError(
            f"{source}: layer {name!r} reads padding layer {pad_name!r} but has "
            f"{len(reader.bottom)} inputs; it must have exactly one")
    if len(padding.bottom) != 1 or len(padding.top) != 1:
        raise StructureError(
            f"{source}: padding layer {pad_name!r} must have exactly one input and one output")


def _v0_layer_to_v1(entry, source: str):
    old = entry.layer
    layer = _V1Layer()
    layer.bottom.extend(entry.bottom)
    layer.top.extend(entry.top)
    if old.HasField("name"):
        layer.name = old.name
    if old.HasField("type"):
        layer.type = _v0_type_to_v1(old, source)
    layer.blobs.extend(old.blobs)
    layer.blobs_lr.extend(old.blobs_lr)
    layer.weight_decay.extend(old.weight_decay)
    for old_field, new_field in _V0_TRANSFORM_FIELDS.items():
        if old.HasField(old_field):
            setattr(layer.transform_param, new_field, getattr(old, old_field))
    for old_field, homes in _V0_FIELD_HOMES.items():
        home = homes.get(old.type)
        if home is not None and old.HasField(old_field):
            _store(layer, home, getattr(old, old_field))
    return layer


def _v0_type_to_v1(old, source: str) -> int:
    enum_name = _V0_TO_V1_TYPE.get(old.type)
    if enum_name is None:
        raise StructureError(f"{source}: layer {old.name!r} has unknown V0 layer type {old.type!r}")
    return _V1Layer.LayerType.Value(enum_name)


def _store(layer, home: tuple[str, str], value) -> None:
    """Put ``value`` into ``layer.<sub>.<field>``, appending where the V1 field is repeated."""
    sub, field = home
    target = getattr(layer, sub) if sub else layer
    current = getattr(target, field)
    if hasattr(current, "append"):  # conv pad/kernel_size/stride became lists in V1
        current.append(value)
    elif hasattr(current, "CopyFrom"):
        current.CopyFrom(value)
    else:
        setattr(target, field, value)


# ---------------------------------------------------------------- V1 -> V2

def _move_old_transform_fields(net: caffe_pb2.NetParameter) -> None:
    for layer in net.layers:
        param_name = _V1_DATA_LAYER_PARAMS.get(_V1Layer.LayerType.Name(layer.type))
        if param_name is None or not layer.HasField(param_name):
            continue
        old = getattr(layer, param_name)
        for field in _OLD_TRANSFORM_FIELDS:
            if old.HasField(field):
                setattr(layer.transform_param, field, getattr(old, field))
                old.ClearField(field)


def _v1_net_to_v2(net: caffe_pb2.NetParameter, source: str) -> caffe_pb2.NetParameter:
    upgraded = caffe_pb2.NetParameter()
    upgraded.CopyFrom(net)
    upgraded.ClearField("layers")
    for old in net.layers:
        _v1_layer_to_v2(old, upgraded.layer.add(), source)
    return upgraded


def _v1_layer_to_v2(old, layer, source: str) -> None:
    if old.HasField("name"):
        layer.name = old.name
    layer.type = _v1_type_to_v2(old, source)
    layer.bottom.extend(old.bottom)
    layer.top.extend(old.top)
    layer.include.extend(old.include)
    layer.exclude.extend(old.exclude)
    layer.blobs.extend(old.blobs)
    layer.loss_weight.extend(old.loss_weight)
    _fill_param_specs(old, layer)
    _copy_sub_params(old, layer, source)


def _v1_type_to_v2(old, source: str) -> str:
    if not old.HasField("type"):
        number = _unknown_enum_number(old, _V1Layer.DESCRIPTOR.fields_by_name["type"].number)
        if number is not None:
            raise StructureError(
                f"{source}: layer {old.name!r} has unknown V1 layer type enum value {number}")
        raise StructureError(f"{source}: layer {old.name!r} has no layer type")
    enum_name = _V1Layer.LayerType.Name(old.type)
    v2_type = _V1_TO_V2_TYPE.get(enum_name)
    if v2_type is None:
        raise StructureError(
            f"{source}: layer {old.name!r} has V1 layer type {enum_name}, which names no layer")
    return v2_type


def _unknown_enum_number(message, field_number: int) -> int | None:
    """A binary enum value the schema lacks is parked among the unknown fields, not dropped."""
    for field in unknown_fields.UnknownFieldSet(message):
        if field.field_number == field_number and isinstance(field.data, int):
            return field.data
    return None


def _fill_param_specs(old, layer) -> None:
    """V1 spread per-blob settings over parallel lists; V2 has one ParamSpec per blob."""
    count = max(len(old.param), len(old.blob_share_mode), len(old.blobs_lr),
                len(old.weight_decay))
    specs = [layer.param.add() for _ in range(count)]
    for spec, name in zip(specs, old.param):
        spec.name = name
    for spec, mode in zip(specs, old.blob_share_mode):
        spec.share_mode = caffe_pb2.ParamSpec.DimCheckMode.Value(
            _V1Layer.DimCheckMode.Name(mode))
    for spec, lr_mult in zip(specs, old.blobs_lr):
        spec.lr_mult = lr_mult
    for spec, decay_mult in zip(specs, old.weight_decay):
        spec.decay_mult = decay_mult


def _copy_sub_params(old, layer, source: str) -> None:
    v2_fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    for field, value in old.ListFields():
        if field.name in _V1_FIELDS_WITH_OWN_RULES:
            continue
        twin = v2_fields.get(field.name)
        if (twin is None or twin.message_type is None or field.message_type is None
                or twin.message_type.full_name != field.message_type.full_name):
            raise StructureError(
                f"{source}: layer {old.name!r} sets {field.name!r}, which has no counterpart "
                "in the current layer format")
        getattr(layer, field.name).CopyFrom(value)


# ---------------------------------------------------------------- fixes on V2

def _drop_batch_norm_param_specs(net: caffe_pb2.NetParameter) -> None:
    # The first BatchNorm definition asked for three ParamSpecs (lr_mult 0 on its statistics);
    # Caffe now adds those itself and clears the old ones, and so do we.
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            layer.ClearField("param")
