"""Small Caffe nets built in code for the reader tests.

One tiny net (conv -> in-place ReLU -> pool -> fc -> softmax) in each format generation:
``v2_net`` (``layer { type: "Convolution" }``), ``v1_net`` (``layers { type: CONVOLUTION }``)
and ``v0_net`` (``layers { layer { type: "conv" } }`` with a separate padding layer).
``with_blobs`` attaches weights to any of them by layer name, so the same builders give
caffemodels; ``write`` stores text or binary into a pytest ``tmp_path``. Shapes are
asymmetric on purpose (N != C != H != W, pad_h != pad_w, stride_h != stride_w).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from google.protobuf.message import Message

from caffe2keras.proto import caffe_pb2

INPUT_SHAPE = (2, 3, 11, 7)

# V2/V1 net: conv kernel 3x2, pad 0x1, stride 2x1: floor((11-3)/2)+1 = 5, (7+2-2)/1+1 = 8.
CONV_TOP = (2, 4, 5, 8)
POOL_TOP = (2, 4, 3, 4)  # MAX 2x2 stride 2 (ceil mode): ceil((5-2)/2)+1 = 3, ceil((8-2)/2)+1 = 4
FC_OUT = 5
V2_BLOB_SHAPES = {"conv1": [(4, 3, 3, 2), (4,)], "fc": [(FC_OUT, 4 * 3 * 4), (FC_OUT,)]}

# V0 net: padding 1 folded into a square conv 3 stride 2: (11+2-3)/2+1 = 6, (7+2-3)/2+1 = 4.
V0_CONV_TOP = (2, 4, 6, 4)
V0_BLOB_SHAPES = {"conv1": [(4, 3, 3, 3), (4,)], "fc": [(FC_OUT, 4 * 6 * 4), (FC_OUT,)]}


def seeded(shape, seed: int) -> np.ndarray:
    """Reproducible float32 weights."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def seeded_blobs(shapes: dict[str, list[tuple[int, ...]]], seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays of the given shapes, all different."""
    out, n = {}, seed
    for name, blob_shapes in shapes.items():
        out[name] = []
        for shape in blob_shapes:
            out[name].append(seeded(shape, n))
            n += 1
    return out


def blob(array: np.ndarray, legacy: bool = False, double: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto: ``shape { dim }`` or (``legacy``) num/channels/height/width right-aligned
    in four axes; values in ``data`` or (``double``) ``double_data``."""
    proto = caffe_pb2.BlobProto()
    if legacy:
        if array.ndim > 4:
            raise ValueError(f"a legacy blob has at most 4 axes, got {array.shape}")
        proto.num, proto.channels, proto.height, proto.width = (1,) * (4 - array.ndim) + array.shape
    else:
        proto.shape.dim.extend(array.shape)
    values = array.ravel().tolist()
    (proto.double_data if double else proto.data).extend(values)
    return proto


def write(directory: Path, filename: str, content) -> str:
    """Write ``content`` (a str, bytes, or a message: text for .prototxt, else binary)."""
    path = Path(directory) / filename
    if isinstance(content, Message):
        content = str(content) if filename.endswith(".prototxt") else content.SerializeToString()
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return str(path)


def _declare_input(net: caffe_pb2.NetParameter, form: str, shape=INPUT_SHAPE) -> None:
    if form == "input_dim":
        net.input.append("data")
        net.input_dim.extend(shape)
    elif form == "input_shape":
        net.input.append("data")
        net.input_shape.add().dim.extend(shape)
    elif form == "Input":
        layer = net.layer.add(name="input", type="Input", top=["data"])
        layer.input_param.shape.add().dim.extend(shape)
    else:
        raise ValueError(f"unknown input form {form!r}")


def v2_net(input_form: str = "input_dim", shape=INPUT_SHAPE) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter(name="tiny")
    _declare_input(net, input_form, shape)
    conv = net.layer.add(name="conv1", type="Convolution", bottom=["data"], top=["conv1"])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_h, conv.convolution_param.kernel_w = 3, 2
    conv.convolution_param.pad_h, conv.convolution_param.pad_w = 0, 1
    conv.convolution_param.stride_h, conv.convolution_param.stride_w = 2, 1
    net.layer.add(name="relu1", type="ReLU", bottom=["conv1"], top=["conv1"])
    pool = net.layer.add(name="pool1", type="Pooling", bottom=["conv1"], top=["pool1"])
    pool.pooling_param.kernel_size, pool.pooling_param.stride = 2, 2
    fc = net.layer.add(name="fc", type="InnerProduct", bottom=["pool1"], top=["fc"])
    fc.inner_product_param.num_output = FC_OUT
    net.layer.add(name="prob", type="Softmax", bottom=["fc"], top=["prob"])
    return net


def v1_net() -> caffe_pb2.NetParameter:
    """``v2_net`` in the V1 format (enum types, blobs_lr)."""
    V1 = caffe_pb2.V1LayerParameter
    net = caffe_pb2.NetParameter(name="tiny")
    _declare_input(net, "input_dim")
    conv = net.layers.add(name="conv1", type=V1.CONVOLUTION, bottom=["data"], top=["conv1"])
    conv.blobs_lr.extend([1, 2])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_h, conv.convolution_param.kernel_w = 3, 2
    conv.convolution_param.pad_h, conv.convolution_param.pad_w = 0, 1
    conv.convolution_param.stride_h, conv.convolution_param.stride_w = 2, 1
    net.layers.add(name="relu1", type=V1.RELU, bottom=["conv1"], top=["conv1"])
    pool = net.layers.add(name="pool1", type=V1.POOLING, bottom=["conv1"], top=["pool1"])
    pool.pooling_param.kernel_size, pool.pooling_param.stride = 2, 2
    fc = net.layers.add(name="fc", type=V1.INNER_PRODUCT, bottom=["pool1"], top=["fc"])
    fc.inner_product_param.num_output = FC_OUT
    net.layers.add(name="prob", type=V1.SOFTMAX, bottom=["fc"], top=["prob"])
    return net


def v0_net() -> caffe_pb2.NetParameter:
    """The V0 format: nested ``layers { layer {} }`` and a padding layer before the conv."""
    net = caffe_pb2.NetParameter(name="tiny")
    _declare_input(net, "input_dim")

    def add(bottom, top, **fields):
        entry = net.layers.add(bottom=[bottom], top=[top])
        for key, value in fields.items():
            setattr(entry.layer, key, value)
        return entry

    add("data", "pad1", name="pad1", type="padding", pad=1)
    add("pad1", "conv1", name="conv1", type="conv", num_output=4, kernelsize=3, stride=2)
    add("conv1", "conv1", name="relu1", type="relu")
    add("conv1", "fc", name="fc", type="innerproduct", num_output=FC_OUT)
    add("fc", "prob", name="prob", type="softmax")
    return net


def train_val_net() -> caffe_pb2.NetParameter:
    """A V2 train_val net: TRAIN and TEST Data layers (same name), loss and accuracy."""
    net = caffe_pb2.NetParameter(name="trainval")
    for phase, batch in ((caffe_pb2.TRAIN, 64), (caffe_pb2.TEST, 2)):
        data = net.layer.add(name="data", type="Data", top=["data", "label"])
        data.include.add(phase=phase)
        data.data_param.source, data.data_param.batch_size = f"{phase}_lmdb", batch
        data.transform_param.crop_size = 9
        data.transform_param.mean_value.extend([104.0, 117.0, 123.0])
    conv = net.layer.add(name="conv1", type="Convolution", bottom=["data"], top=["conv1"])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_size.append(3)
    net.layer.add(name="relu1", type="ReLU", bottom=["conv1"], top=["conv1"])
    fc = net.layer.add(name="fc", type="InnerProduct", bottom=["conv1"], top=["fc"])
    fc.inner_product_param.num_output = FC_OUT
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["fc", "label"], top=["loss"])
    accuracy = net.layer.add(name="accuracy", type="Accuracy", bottom=["fc", "label"],
                             top=["accuracy"])
    accuracy.include.add(phase=caffe_pb2.TEST)
    return net


def with_blobs(net: caffe_pb2.NetParameter, arrays: dict[str, list[np.ndarray]],
               legacy: bool = False, double: bool = False) -> caffe_pb2.NetParameter:
    """A copy of ``net`` (any generation) whose layers named in ``arrays`` carry those blobs."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    entries = list(out.layer) + [e.layer if e.HasField("layer") else e for e in out.layers]
    for entry in entries:
        for array in arrays.get(entry.name, []):
            entry.blobs.add().CopyFrom(blob(array, legacy=legacy, double=double))
    return out
