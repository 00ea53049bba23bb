"""Checking a fork layer in Keras and in every runtime format against a numpy transcription of
the fork's C++: the net and its blobs are written to a folder, the transcription's tops to a
golden file in the fixtures' format (caffe2keras-activations/1), and test_golden's per-blob
check runs it (in Keras, or exported and run by a runtime). Returns every blob's relative error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from caffe2keras.verify import FORMAT
from numpy_forward import write_net

FORMATS = ["keras", "onnx", "tflite", "openvino", "torch"]


def write_reference(folder, text, blobs, inputs, tops):
    """Write the net (``text`` + ``blobs``) and a golden file holding ``inputs`` and ``tops``
    ({(layer, top, type): NCHW array}); return (prototxt, caffemodel, golden) paths."""
    prototxt, caffemodel = write_net(folder, text, blobs or {})
    manifest = {
        "format": FORMAT, "net": "fork", "caffe": "numpy transcription", "weights_seed": None,
        "input_seed": None, "tolerance": 1e-4,
        "inputs": [{"name": name, "key": f"in{k}", "shape": list(a.shape)}
                   for k, (name, a) in enumerate(inputs.items())],
        "blobs": [{"layer": layer, "type": type_, "top": top, "index": 0, "key": f"b{k:04d}",
                   "shape": list(a.shape)} for k, ((layer, top, type_), a) in enumerate(tops.items())],
    }
    arrays = {"__manifest__": np.array(json.dumps(manifest))}
    arrays.update({f"in{k}": np.asarray(a, np.float32) for k, a in enumerate(inputs.values())})
    arrays.update({f"b{k:04d}": np.asarray(a, np.float32) for k, a in enumerate(tops.values())})
    golden = Path(folder) / "golden.npz"
    np.savez(golden, **arrays)
    return prototxt, caffemodel, golden


def check_everywhere(folder, text, blobs, inputs, tops, format_name):
    """The per-blob check of ``tops`` in ``format_name`` ("keras" or a runtime format)."""
    from test_formats_golden import check_against_caffe
    from test_golden import _check

    files = write_reference(folder, text, blobs, inputs, tops)
    if format_name == "keras":
        checks = _check(*files, fuse_batchnorm=False)
    else:
        checks = check_against_caffe(format_name, *files)
    compared = {c.layer: c.relative_error for c in checks if c.max_abs_error is not None}
    assert set(compared) == {layer for layer, _, _ in tops}, compared
    return compared


def max_relative(values) -> float:
    return max(values) if values else 0.0


__all__ = ["FORMATS", "check_everywhere", "write_reference", "max_relative", "np"]
