"""The fuzz cases of scripts/fuzz.py: seeds from the fixtures, hypothesis strategies that
draw a case, and the mutators that turn a case into files (prototxt text, caffemodel bytes).

Everything a case holds is plain data (JSON), so a saved case can be made again exactly:
``python scripts/fuzz.py --replay FOLDER``.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from caffe2keras.proto import caffe_pb2  # noqa: E402

EDGE_INTS = [0, 1, 2, 3, -1, -2, 7, 255, 2**15, 2**31 - 1, -(2**31), 2**32 - 1, 10**6, 2**24]
EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-8, 1e30, -1e30, 3.4e38, float("nan"),
               float("inf"), float("-inf")]
TEXT_INSERTS = ["{", "}", "<", ">", "[", "]", ":", ",", ";", '"', "'", "#", "\n", "\\",
                "layer {", "layers {", "layer { name: 'z' type: 'ReLU' }", "bottom: 'data'",
                "top: 'data'", "name: 'conv1'", "type: 'Nope'", "dim: 0", "dim: -1",
                "input_dim: 0", "num_output: 0", "kernel_size: 0", "stride: 0", "group: 0",
                "pool: 7", "pool: STOCHASTIC", "axis: -9", "99999999999999999999", "-2147483648",
                "1e999", "nan", "-inf", "0x7fffffff", "'\\x'", "'\\777'", "\u00e9", "\x00",
                "\ufeff", "include { phase: TRAIN }", "exclude { stage: 'a' }", "engine: CUDNN"]
HUGE_VARINTS = [0, 1, 2**7, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**64 - 1]


# ------------------------------------------------------------------ seeds from the fixtures

@dataclass
class Seeds:
    fixtures: list[tuple[str, str]]  # (deploy.prototxt, weights.caffemodel)
    texts: dict[str, str]  # deploy path -> its text
    weights: dict[str, bytes]  # caffemodel path -> its bytes
    templates: dict[str, list[bytes]]  # layer type -> serialized V2 LayerParameters


SEEDS: list[Seeds] = []  # the loaded seeds, for the strategies (not an argument: hypothesis
                         # would print it with every example)


def load_seeds() -> Seeds:
    from caffe2keras.reader.loader import read_prototxt
    fixtures, texts, weights, templates = [], {}, {}, {}
    for folder in sorted(FIXTURES.iterdir()):
        deploy, model = folder / "deploy.prototxt", folder / "weights.caffemodel"
        if not (deploy.is_file() and model.is_file()):
            continue
        fixtures.append((str(deploy), str(model)))
        texts[str(deploy)] = deploy.read_text()
        weights[str(model)] = model.read_bytes()
        net, _ = read_prototxt(str(deploy))
        for layer in net.layer:
            templates.setdefault(layer.type, []).append(layer.SerializeToString())
    for layer in _extra_templates():
        templates.setdefault(layer.type, []).append(layer.SerializeToString())
    for deploy, model in _v0_seed():  # no fixture is in the oldest format
        fixtures.append((deploy, model))
        texts[deploy] = Path(deploy).read_text()
        weights[model] = Path(model).read_bytes()
    return Seeds(fixtures, texts, weights, templates)


def _v0_seed() -> list[tuple[str, str]]:
    """A V0 net (``layers { layer { type: "conv" } }`` with a padding layer) and its weights,
    written once into a temporary folder."""
    folder = Path(tempfile.gettempdir()) / f"c2k-fuzz-v0-{os.getpid()}"
    deploy, model = folder / "deploy.prototxt", folder / "weights.caffemodel"
    if not deploy.exists():
        folder.mkdir(exist_ok=True)
        atexit.register(shutil.rmtree, folder, True)
        net = caffe_pb2.NetParameter(name="v0", input=["data"], input_dim=[2, 3, 11, 7])
        rng = np.random.default_rng(0)
        for bottom, top, fields, shapes in (
                ("data", "pad1", {"name": "pad1", "type": "padding", "pad": 1}, []),
                ("pad1", "conv1", {"name": "conv1", "type": "conv", "num_output": 4,
                                   "kernelsize": 3, "stride": 2}, [(4, 3, 3, 3), (4,)]),
                ("conv1", "conv1", {"name": "relu1", "type": "relu"}, []),
                ("conv1", "pool1", {"name": "pool1", "type": "pool", "kernelsize": 2, "stride": 2,
                                    "pool": 1}, []),
                ("pool1", "fc", {"name": "fc", "type": "innerproduct", "num_output": 5},
                 [(5, 4 * 3 * 2), (5,)]),
                ("fc", "prob", {"name": "prob", "type": "softmax"}, [])):
            entry = net.layers.add(bottom=[bottom], top=[top])
            for key, value in fields.items():
                setattr(entry.layer, key, value)
            for shape in shapes:
                blob = entry.layer.blobs.add()
                blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - len(shape)) + shape
                blob.data.extend(rng.standard_normal(math.prod(shape)).tolist())
        model.write_bytes(net.SerializeToString())
        for entry in net.layers:
            del entry.layer.blobs[:]
        deploy.write_text(text_format.MessageToString(net))
    return [(str(deploy), str(model))]


def _extra_templates() -> list:
    """Layer kinds no deploy fixture has: data layers, training layers, unknown types."""
    L = caffe_pb2.LayerParameter
    data = L(name="d", type="Data", top=["data", "label"])
    data.transform_param.crop_size = 7
    data.transform_param.mean_value.extend([1.0, 2.0, 3.0])
    data.data_param.batch_size = 2
    memory = L(name="m", type="MemoryData", top=["data", "label"])
    memory.memory_data_param.batch_size, memory.memory_data_param.channels = 2, 3
    memory.memory_data_param.height, memory.memory_data_param.width = 9, 7
    dummy = L(name="dd", type="DummyData", top=["data"])
    dummy.dummy_data_param.shape.add().dim.extend([2, 3, 5, 4])
    image = L(name="im", type="ImageData", top=["data", "label"])
    image.image_data_param.new_height, image.image_data_param.new_width = 8, 6
    loss = L(name="loss", type="SoftmaxWithLoss", bottom=["x", "label"], top=["loss"])
    accuracy = L(name="acc", type="Accuracy", bottom=["x", "label"], top=["acc"])
    accuracy.include.add(phase=caffe_pb2.TEST)
    python = L(name="py", type="Python", bottom=["x"], top=["py"])
    python.python_param.module, python.python_param.layer = "os", "system"
    unknown = L(name="u", type="NoSuchLayer", bottom=["x"], top=["u"])
    return [data, memory, dummy, image, loss, accuracy, python, unknown]


# ------------------------------------------------------------------ hypothesis strategies

def edge_ints():
    return st.one_of(st.integers(0, 12), st.sampled_from(EDGE_INTS), st.integers(-(2**31), 2**31 - 1))


def edge_floats():
    return st.one_of(st.floats(-4, 4), st.sampled_from(EDGE_FLOATS))


def input_shapes():
    small = st.lists(st.integers(1, 12), min_size=4, max_size=4)
    odd_rank = st.lists(st.integers(1, 9), min_size=1, max_size=5)
    hostile = st.lists(st.sampled_from([0, -1, 1, 2, 3, 2**16, 2**31 - 1, 2**40]), min_size=0,
                       max_size=6)
    return st.one_of(small, small, small, odd_rank, hostile)


def _set_field(message, field_desc, draw, depth: int) -> None:
    """Give one field of ``message`` an edge value of its type (recursing into messages)."""
    from google.protobuf.descriptor import FieldDescriptor as F
    repeated = getattr(field_desc, "is_repeated", None)  # protobuf >= 6; older: label
    if repeated is None:
        repeated = field_desc.label == F.LABEL_REPEATED
    cpp = field_desc.cpp_type
    if cpp == F.CPPTYPE_MESSAGE:
        if depth > 2:
            return
        child = getattr(message, field_desc.name).add() if repeated else getattr(message, field_desc.name)
        child.SetInParent()
        fields = child.DESCRIPTOR.fields
        for _ in range(draw(st.integers(0, 3)) if fields else 0):
            _set_field(child, _pick(draw, fields), draw, depth + 1)
        return

    def value():
        if cpp in (F.CPPTYPE_INT32, F.CPPTYPE_INT64, F.CPPTYPE_UINT32, F.CPPTYPE_UINT64):
            number = draw(edge_ints())
            if cpp in (F.CPPTYPE_UINT32, F.CPPTYPE_UINT64):
                number = abs(number)
            return number
        if cpp in (F.CPPTYPE_FLOAT, F.CPPTYPE_DOUBLE):
            return draw(edge_floats())
        if cpp == F.CPPTYPE_BOOL:
            return draw(st.booleans())
        if cpp == F.CPPTYPE_ENUM:
            return draw(st.sampled_from([v.number for v in field_desc.enum_type.values]))
        text = draw(st.sampled_from(["", "data", "x", "constant", "gaussian", "xavier", "msra",
                                     "bilinear", "uniform", "positive_unitball", "bogus", "a/b"]))
        return text.encode() if field_desc.type == F.TYPE_BYTES else text

    try:
        if repeated:
            target = getattr(message, field_desc.name)
            del target[:]
            target.extend(value() for _ in range(draw(st.integers(0, 4))))
        else:
            setattr(message, field_desc.name, value())
    except (ValueError, TypeError):
        pass  # out of the field's range: the text mutations cover those


def _one_in(draw, n: int) -> bool:
    """True about once in ``n`` draws. Not on 0: hypothesis favours the simplest value."""
    return draw(st.integers(0, n - 1)) == n // 2


def _rarely(draw, usual, hostile: list):
    """``usual`` most of the time, one of ``hostile`` in about one draw in twenty."""
    return _pick(draw, hostile) if _one_in(draw, 20) else usual


def _pick(draw, items):
    """One of ``items`` (drawn by index: hypothesis need not print the items)."""
    return items[draw(st.integers(0, len(items) - 1))]


def _param_messages(layer):
    return [f for f in layer.DESCRIPTOR.fields if f.name.endswith("_param")
            and f.cpp_type == f.CPPTYPE_MESSAGE]


@st.composite
def net_cases(draw):
    """A prototxt (text) assembled from fixture layers, plus what to do with weights."""
    seeds = SEEDS[0]
    net = caffe_pb2.NetParameter(name=draw(st.sampled_from(["n", "", "a/b", "x" * 300])))
    form = draw(st.sampled_from(["Input", "input_dim", "input_shape", "Input", "data_layer",
                                 "two_inputs", "Input", "input_shape"]))
    form = _rarely(draw, form, ["none"])
    shape = draw(input_shapes())
    available = ["data"]
    if form == "input_dim":
        net.input.append("data")
        net.input_dim.extend(min(d, 2**31 - 1) for d in shape)  # an int32 field
    elif form == "input_shape":
        net.input.append("data")
        net.input_shape.add().dim.extend(shape)
    elif form in ("Input", "two_inputs"):
        layer = net.layer.add(name="input", type="Input", top=["data"])
        layer.input_param.shape.add().dim.extend(shape)
        if form == "two_inputs":
            layer.top.append("data2")
            layer.input_param.shape.add().dim.extend(draw(input_shapes()))
            available.append("data2")
    elif form == "data_layer":
        template = draw(st.sampled_from(["Data", "MemoryData", "DummyData", "ImageData"]))
        net.layer.add().ParseFromString(seeds.templates[template][0])
        available.extend(t for t in net.layer[-1].top if t not in available)
    types = sorted(seeds.templates)
    for j in range(draw(st.integers(1, 8))):
        layer = net.layer.add()
        layer.ParseFromString(_pick(draw, seeds.templates[_pick(draw, types)]))
        in_place = len(layer.bottom) == 1 and list(layer.bottom) == list(layer.top)
        layer.name = _rarely(draw, f"L{j}", ["L0", "", "data"])
        n_bottoms = len(layer.bottom) + _rarely(draw, 0, [1, -1])
        del layer.bottom[:]
        for _ in range(max(n_bottoms, 0)):
            latest = available[-1] if len(available) < 2 or draw(st.booleans()) else _pick(draw, available)
            layer.bottom.append(_rarely(draw, latest, ["dangling"]))
        n_tops = len(layer.top)
        del layer.top[:]
        if in_place and layer.bottom and draw(st.booleans()):
            layer.top.append(layer.bottom[0])
        else:
            for k in range(n_tops):
                layer.top.append(_rarely(draw, f"b{j}_{k}", ["data", "b0_0"]))
        available.extend(t for t in layer.top if t not in available)
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            params = _param_messages(layer)
            own = [f for f in params if layer.HasField(f.name)] or params
            sub = getattr(layer, _pick(draw, own).name)
            if sub.DESCRIPTOR.fields:
                _set_field(sub, _pick(draw, sub.DESCRIPTOR.fields), draw, 1)
        if _one_in(draw, 20):
            rule = (layer.include if draw(st.booleans()) else layer.exclude).add()
            rule.phase = draw(st.sampled_from([caffe_pb2.TRAIN, caffe_pb2.TEST]))
            if draw(st.booleans()):
                rule.stage.append("deploy")
    if _one_in(draw, 4):
        net = _as_v1(net)  # the same net in the V1 format, where every type has a V1 name
    text = text_format.MessageToString(net)
    weights = draw(st.sampled_from(["none", "right", "right", "mutated", "mutated", "bytes"]))
    return {"text": text, "weights": weights,
            "weight_ops": draw(st.lists(weight_ops(), max_size=4)),
            "text_ops": draw(st.lists(text_ops(), max_size=2)) if _one_in(draw, 5) else [],
            "byte_ops": draw(st.lists(byte_ops(), min_size=1, max_size=3)),
            "layer_names": [layer.name for layer in net.layer]}


def _as_v1(net):
    """``net`` with ``layers { type: ENUM }`` entries (blobs_lr for the param specs), or
    ``net`` itself when a layer type has no V1 name."""
    from caffe2keras.reader.upgrade import _V1_TO_V2_TYPE
    v1_types = {v2: v1 for v1, v2 in _V1_TO_V2_TYPE.items()}
    if not all(layer.type in v1_types or layer.type == "Input" for layer in net.layer):
        return net
    V1 = caffe_pb2.V1LayerParameter
    old = caffe_pb2.NetParameter()
    old.CopyFrom(net)
    old.ClearField("layer")
    for layer in net.layer:
        if layer.type == "Input":  # V1 nets declare inputs at the net level
            for i, top in enumerate(layer.top):
                old.input.append(top)
                shapes = layer.input_param.shape
                old.input_shape.add().CopyFrom(shapes[min(i, len(shapes) - 1)] if shapes
                                               else caffe_pb2.BlobShape())
            continue
        entry = old.layers.add(name=layer.name, type=V1.LayerType.Value(v1_types[layer.type]),
                               bottom=layer.bottom, top=layer.top)
        entry.include.extend(layer.include)
        entry.exclude.extend(layer.exclude)
        entry.blobs_lr.extend(spec.lr_mult for spec in layer.param)
        for field, value in layer.ListFields():
            twin = V1.DESCRIPTOR.fields_by_name.get(field.name)
            if field.name.endswith("_param") and twin is not None and twin.message_type is not None \
                    and twin.message_type.full_name == field.message_type.full_name:
                getattr(entry, field.name).CopyFrom(value)
    return old


def weight_ops():
    return st.tuples(st.sampled_from(["nan", "inf", "shape", "drop_dim", "add_dim", "missing",
                                      "extra", "omit_layer", "rename_layer", "legacy", "double",
                                      "empty_data", "short_data"]),
                     st.integers(0, 2**16), st.integers(0, 2**16))


def text_ops():
    return st.tuples(st.sampled_from(["delete", "repeat", "insert", "number", "truncate", "nest",
                                      "swap_lines"]),
                     st.integers(0, 2**20), st.integers(0, 2**20), st.sampled_from(TEXT_INSERTS))


def byte_ops():
    return st.tuples(st.sampled_from(["flip", "set", "delete", "repeat", "insert", "truncate",
                                      "varint", "splice", "field_length", "field_number",
                                      "wire_type", "field_repeat", "field_delete", "field_value"]),
                     st.integers(0, 2**24), st.integers(0, 2**24),
                     st.binary(max_size=12).map(bytes.hex))  # hex: the case is saved as JSON


@st.composite
def case_strategy(draw):
    seeds = SEEDS[0]
    kind = draw(st.sampled_from(["net", "net", "net", "text", "bytes", "bytes", "bytes", "swap"]))
    case = {"kind": kind, "fixture": draw(st.integers(0, len(seeds.fixtures) - 1)),
            "other": draw(st.integers(0, len(seeds.fixtures) - 1)),
            "fuse": draw(st.booleans()), "outputs": _one_in(draw, 10),
            "build_draw": draw(st.floats(0, 1))}
    if kind == "net":
        case.update(draw(net_cases()))
    elif kind == "text":
        case["text_ops"] = draw(st.lists(text_ops(), min_size=1, max_size=4))
        case["with_weights"] = draw(st.booleans())
    elif kind == "bytes":
        case["byte_ops"] = draw(st.lists(byte_ops(), min_size=1, max_size=4))
    else:
        case["swap"] = draw(st.sampled_from(["prototxt_as_weights", "weights_as_prototxt",
                                             "random", "empty", "other_weights", "both_weights"]))
        case["random"] = draw(st.binary(min_size=0, max_size=256)).hex()
    return case


# ------------------------------------------------------------------ mutators

def mutate_text(text: str, ops) -> str:
    for op, a, b, token in ops:
        n = max(len(text), 1)
        i, j = sorted((a % n, b % n))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "repeat":
            text = text[:j] + text[i:j] * (1 + b % 3) + text[j:]
        elif op == "insert":
            text = text[:i] + " " + token + " " + text[i:]
        elif op == "number":
            numbers = list(re.finditer(r"-?\d+(\.\d+)?", text))
            if numbers:
                m = numbers[a % len(numbers)]
                text = text[:m.start()] + str(EDGE_INTS[b % len(EDGE_INTS)]) + text[m.end():]
        elif op == "truncate":
            text = text[:i]
        elif op == "nest":
            depth = 1 + b % 120
            text = text[:i] + " fork " + "{ a: 1 " * depth + "}" * (depth - a % 2) + text[i:]
        elif op == "swap_lines":
            lines = text.split("\n")
            x, y = a % len(lines), b % len(lines)
            lines[x], lines[y] = lines[y], lines[x]
            text = "\n".join(lines)
    return text


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= 2**64 - 1
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


@dataclass
class WireField:
    tag_at: int  # offset of the tag varint
    length_at: int | None  # offset of the length varint (wire type 2), else None
    start: int  # payload start
    end: int  # payload end
    number: int
    wire_type: int


def wire_fields(data: bytes, limit: int = 4000) -> list[WireField]:
    """Every field of a protobuf message and of the sub-messages that parse as one."""
    found: list[WireField] = []

    def scan(start: int, end: int, depth: int) -> bool:
        pos, fields = start, []
        try:
            while pos < end:
                tag_at = pos
                key, pos = _read_varint(data, pos, end)
                number, wire = key >> 3, key & 7
                if number == 0:
                    return False
                length_at = None
                if wire == 0:
                    body = pos
                    _, pos = _read_varint(data, pos, end)
                elif wire == 1:
                    body, pos = pos, pos + 8
                elif wire == 5:
                    body, pos = pos, pos + 4
                elif wire == 2:
                    length_at = pos
                    length, body = _read_varint(data, pos, end)
                    pos = body + length
                else:
                    return False
                if pos > end:
                    return False
                fields.append(WireField(tag_at, length_at, body, pos, number, wire))
        except ValueError:
            return False
        found.extend(fields)
        if depth < 6:
            for f in fields:
                if f.wire_type == 2 and f.end > f.start and len(found) < limit:
                    scan(f.start, f.end, depth + 1)
        return True

    scan(0, len(data), 0)
    return found[:limit]


def mutate_bytes(data: bytes, ops, other: bytes) -> bytes:
    buf = bytearray(data)
    for op, a, b, blob in ops:
        n = max(len(buf), 1)
        i, j = sorted((a % n, b % n))
        if op == "flip" and buf:
            buf[a % len(buf)] ^= 1 << (b % 8)
        elif op == "set" and buf:
            buf[a % len(buf)] = [0x00, 0xFF, 0x7F, 0x80, 0x0A, 0x12][b % 6]
        elif op == "delete":
            del buf[i:j]
        elif op == "repeat":
            buf[j:j] = buf[i:j] * (1 + b % 3)
        elif op == "insert":
            buf[i:i] = bytes.fromhex(blob)
        elif op == "truncate":
            del buf[i:]
        elif op == "varint":
            buf[i:i + 1 + b % 5] = _varint(HUGE_VARINTS[b % len(HUGE_VARINTS)])
        elif op == "splice":
            buf = buf[:i] + bytearray(other[b % max(len(other), 1):])
        else:
            fields = wire_fields(bytes(buf))
            if not fields:
                continue
            f = fields[a % len(fields)]
            if op == "field_length" and f.length_at is not None:
                size = len(_varint(f.end - f.start))
                new = [0, f.end - f.start + 1, max(f.end - f.start - 1, 0), 2**31, 2**63 - 1][b % 5]
                buf[f.length_at:f.length_at + size] = _varint(new)
            elif op == "field_number":
                size = len(_varint((f.number << 3) | f.wire_type))
                number = [1, 2, 3, 5, 7, 100, 4096, 2**29 - 1][b % 8]
                buf[f.tag_at:f.tag_at + size] = _varint((number << 3) | f.wire_type)
            elif op == "wire_type":
                size = len(_varint((f.number << 3) | f.wire_type))
                buf[f.tag_at:f.tag_at + size] = _varint((f.number << 3) | (b % 8))
            elif op == "field_repeat":
                chunk = buf[f.tag_at:f.end]
                buf[f.end:f.end] = chunk * (1 + b % 40)
            elif op == "field_delete":
                del buf[f.tag_at:f.end]
            elif op == "field_value" and f.wire_type == 0:
                size = f.end - f.start
                buf[f.start:f.start + size] = _varint(HUGE_VARINTS[b % len(HUGE_VARINTS)]
                                                      if b % 3 else -(1 + b % 5))
    return bytes(buf)


def weights_message(blobs: dict[str, list[np.ndarray]], types: dict[str, str], ops) -> bytes:
    """A V2 caffemodel holding ``blobs`` by layer name, after the weight mutations ``ops``."""
    names = list(blobs)
    plan = {name: [array.copy() for array in arrays] for name, arrays in blobs.items()}
    legacy, double, renamed, short, empty = set(), set(), {}, set(), set()
    for op, a, b in ops:
        if not names:
            break
        name = names[a % len(names)]
        arrays = plan.get(name)
        if arrays is None:
            continue
        k = b % max(len(arrays), 1)
        if op in ("nan", "inf") and arrays and arrays[k].size:
            arrays[k].reshape(-1)[b % arrays[k].size] = np.nan if op == "nan" else -np.inf
        elif op == "shape" and arrays and arrays[k].ndim > 1:
            arrays[k] = arrays[k].reshape(arrays[k].shape[::-1])
        elif op == "drop_dim" and arrays:
            arrays[k] = arrays[k].reshape(-1)
        elif op == "add_dim" and arrays:
            arrays[k] = arrays[k][None]
        elif op == "missing" and arrays:
            del arrays[k]
        elif op == "extra":
            arrays.append(np.ones(1 + b % 5, np.float32))
        elif op == "omit_layer":
            del plan[name]
        elif op == "rename_layer":
            renamed[name] = name + "_x"
        elif op == "legacy":
            legacy.add(name)
        elif op == "double":
            double.add(name)
        elif op == "short_data":
            short.add(name)
        elif op == "empty_data":
            empty.add(name)
    net = caffe_pb2.NetParameter(name="fuzz")
    for name, arrays in plan.items():
        layer = net.layer.add(name=renamed.get(name, name), type=types.get(name, ""))
        for array in arrays:
            blob = layer.blobs.add()
            if name in legacy and array.ndim <= 4:
                blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
            else:
                blob.shape.dim.extend(array.shape)
            values = array.reshape(-1).tolist()
            if name in short:
                values = values[:-1]
            if name in empty:
                values = []
            (blob.double_data if name in double else blob.data).extend(values)
    return net.SerializeToString()
