"""Reference activations from real Caffe, in the "caffe2keras-activations/1" format.

Runs under pycaffe only (shared by make_golden.py and dump_caffe_activations.py).

A golden file is one zip written like ``np.savez_compressed`` (so ``np.load`` reads it with
``allow_pickle=False``) holding:

* ``__manifest__``: a 0-d unicode array, the JSON manifest (see ``manifest``);
* ``in0``, ``in1``, ...: the net inputs, in the order of the net's Input layers;
* ``b0000``, ``b0001``, ...: every top blob of every layer, copied right after that layer
  ran (so the steps of an in-place chain are separate entries), in Caffe's execution order.

All arrays are float32 in Caffe's layout (NCHW).  The zip entries carry a fixed date, so
writing the same arrays twice gives byte-identical files.
"""

import io
import json
import os
import zipfile

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

FORMAT = "caffe2keras-activations/1"
CAFFE_BUILD = "brocolli-caffe 9.0.2"
TOLERANCE = 1e-4
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def caffe_version():
    return f"{caffe.__version__} {CAFFE_BUILD}"


def read_prototxt(path):
    """The NetParameter of a text prototxt, as written (not upgraded)."""
    param = caffe_pb2.NetParameter()
    with open(path) as f:
        text_format.Merge(f.read(), param)
    return param


def declared_layer_names(param):
    """Names of the layers the prototxt itself declares (V2 `layer`, V1 `layers`, V0 nested).

    Caffe inserts Split layers wherever a blob feeds several layers; they are not part of
    the model, so they are left out of the manifest.
    """
    names = {layer.name for layer in param.layer}
    for v1 in param.layers:
        names.add(v1.name or v1.layer.name)
    return names


def input_names(net):
    """The net's input blobs: the tops of its Input layers (Caffe turns net-level
    `input:` fields into one Input layer)."""
    names = []
    for layer_name, layer in zip(net._layer_names, net.layers):
        if layer.type == "Input":
            names.extend(net.top_names[layer_name])
    return names


def set_inputs(net, inputs):
    """Copy {blob name: array} into the net, reshaping it when a shape differs."""
    reshaped = False
    for name, array in inputs.items():
        blob = net.blobs[name]
        if tuple(blob.data.shape) != tuple(array.shape):
            blob.reshape(*array.shape)
            reshaped = True
    if reshaped:
        net.reshape()
    for name, array in inputs.items():
        net.blobs[name].data[...] = array


def record(net, inputs, declared, keep=None):
    """Run `net` one layer at a time on `inputs` and copy the tops after each layer.

    Returns the blob entries of the manifest (without keys) and the arrays, in execution
    order.  Input layers and layers not in `declared` (Caffe's own Split layers) are run
    but not recorded; with `keep`, only the layers named in it are recorded.
    """
    set_inputs(net, inputs)
    entries, arrays = [], []
    for i, (layer_name, layer) in enumerate(zip(net._layer_names, net.layers)):
        net._forward(i, i)
        if layer.type == "Input" or layer_name not in declared:
            continue
        if keep is not None and layer_name not in keep:
            continue
        for index, top in enumerate(net.top_names[layer_name]):
            data = np.array(net.blobs[top].data, dtype=np.float32, copy=True)
            entries.append({"layer": layer_name, "type": layer.type, "top": top,
                            "index": index, "shape": list(data.shape)})
            arrays.append(data)
    return entries, arrays


def manifest(net_name, weights_seed, input_seed, inputs, entries):
    """The manifest dict; `inputs` is {name: array}, `entries` come from `record`.

    weights_seed is None when the weights come from a trained model file.
    """
    return {
        "format": FORMAT,
        "net": net_name,
        "caffe": caffe_version(),
        "weights_seed": weights_seed,
        "input_seed": input_seed,
        "tolerance": TOLERANCE,
        "inputs": [{"name": name, "key": f"in{k}", "shape": list(array.shape)}
                   for k, (name, array) in enumerate(inputs.items())],
        "blobs": [{"layer": e["layer"], "type": e["type"], "top": e["top"],
                   "index": e["index"], "key": f"b{k:04d}", "shape": e["shape"]}
                  for k, e in enumerate(entries)],
    }


def write_golden(path, manifest_dict, inputs, arrays):
    """Write manifest, inputs and recorded arrays as one deterministic npz."""
    content = {"__manifest__": np.array(json.dumps(manifest_dict))}
    for k, array in enumerate(inputs.values()):
        content[f"in{k}"] = np.asarray(array, dtype=np.float32)
    for k, array in enumerate(arrays):
        content[f"b{k:04d}"] = np.asarray(array, dtype=np.float32)
    write_npz(path, content)


def write_npz(path, arrays):
    """np.savez_compressed without the wall-clock timestamps: fixed date and mode bits."""
    tmp = f"{path}.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def load_golden(path):
    """(manifest dict, npz) of a golden file; for checks and tools."""
    data = np.load(path, allow_pickle=False)
    return json.loads(str(data["__manifest__"])), data
