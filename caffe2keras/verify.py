"""Layer-by-layer comparison of a converted model with activations stored from real Caffe.

An activations file (``.npz``, written by ``scripts/dump_caffe_activations.py`` or
``scripts/make_golden.py``) holds a JSON manifest under ``__manifest__`` naming the net's
inputs and every stored top as (layer, top blob), plus the arrays in Caffe's layout.

The rule (``compare_values``): a value's error is measured against the largest Caffe value
*of the same kind*, and must be at most ``tolerance`` times it. Values of one kind share a
scale, so one scale per part of a blob that holds one kind:

* most blobs hold one kind (activations computed together): the part is the whole blob,
  error / max |caffe| over the blob;
* an ArgMax top holds indices, and with ``out_max_val`` the maximal values beside them (in
  channel 0 and 1 of a flattened ArgMax): each channel is a part, and a channel of whole
  numbers in Caffe (indices) must be equal exactly, since an index is right or wrong;
* a Softmax top holds probabilities, each meaningful on its own scale (open_nsfw's 3e-4
  beside 0.9997): each probability is a part, its error relative to itself (probabilities
  below ``PROBABILITY_FLOOR`` count as that floor).

* a MAX Pooling's second top is its mask: the index of each window's maximum, which must be
  equal exactly, like ArgMax's indices.

So an index off by one among values near 2, or a small probability off by 25%, fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import VerificationError
from .ir import Net

FORMAT = "caffe2keras-activations/1"
DEFAULT_TOLERANCE = 1e-4
# Probabilities smaller than this are compared as if they were this (far below any use of a
# probability; float32's exp loses relative precision near its smallest normal, 1.2e-38).
PROBABILITY_FLOOR = 1e-30
POOLING_MASK = "Pooling mask"


@dataclass
class BlobCheck:
    layer: str
    top: str
    shape: tuple[int, ...]
    max_abs_error: float | None  # None: not compared (see note)
    relative_error: float | None
    passed: bool
    note: str = ""


def load_activations(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise VerificationError(f"{path}: not a readable .npz activations file ({error})") from None
    if "__manifest__" not in arrays:
        raise VerificationError(f"{path}: no __manifest__: not written by dump_caffe_activations.py")
    manifest = json.loads(str(arrays.pop("__manifest__")))
    if manifest.get("format") != FORMAT:
        raise VerificationError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for entry in manifest["inputs"] + manifest["blobs"]:
        if entry["key"] not in arrays:
            raise VerificationError(f"{path}: the manifest names {entry['key']!r}, which is missing")
    return manifest, arrays


def to_keras_layout(array: np.ndarray, time_major: bool = False) -> np.ndarray:
    """NCHW -> NHWC for 4-D blobs; a time-major blob (``time_major.py``) (T, N, ...) -> (N, T, ...)."""
    if time_major:
        return array.swapaxes(0, 1)
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def to_caffe_layout(array: np.ndarray, time_major: bool = False) -> np.ndarray:
    if time_major:
        return array.swapaxes(0, 1)
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


def _value_of(net: Net, layer_name: str, top: str) -> str | None:
    """The IR value holding what Caffe's ``layer_name`` wrote to ``top``, if it still exists."""
    for layer in net.layers:
        if layer.name == layer_name and top in layer.top_blobs:
            return layer.tops[layer.top_blobs.index(top)]
    return None


def compare_blob(expected: np.ndarray, actual: np.ndarray, tolerance: float):
    """max |keras - caffe| and that error relative to max |caffe|; pass if relative <= tolerance."""
    error = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    relative = error / scale if scale > 0 else error
    return error, relative, bool(relative <= tolerance)


def compare_values(layer_type: str, expected: np.ndarray, actual: np.ndarray, tolerance: float):
    """Compare a blob of Caffe's shape by the rule of its kind (see the module docstring).
    Returns (max abs error, relative error: the largest over the parts, passed, note)."""
    if layer_type == "ArgMax":
        return _compare_argmax(expected, actual, tolerance)
    if layer_type == POOLING_MASK:
        return _compare_indices(expected, actual, tolerance)
    if layer_type == "Softmax":
        return _compare_probabilities(expected, actual, tolerance)
    return (*compare_blob(expected, actual, tolerance), "")


def _compare_argmax(expected: np.ndarray, actual: np.ndarray, tolerance: float):
    """Each channel on its own; a channel of whole numbers (indices) must match exactly."""
    if expected.ndim < 2 or not expected.size:
        return (*compare_blob(expected, actual, tolerance), "")
    worst_error, worst_relative, passed, wrong = 0.0, 0.0, True, 0
    for channel in range(expected.shape[1]):
        want, got = expected[:, channel], actual[:, channel]
        error, relative, ok = compare_blob(want, got, tolerance)
        if np.array_equal(want, np.round(want)):  # indices
            differ = int(np.count_nonzero(got != want))
            ok, wrong = differ == 0, wrong + differ
        worst_error, worst_relative = max(worst_error, error), max(worst_relative, relative)
        passed = passed and ok
    note = "" if passed or not wrong else f"{wrong} indices differ from Caffe's"
    return worst_error, worst_relative, passed, note


def _compare_indices(expected: np.ndarray, actual: np.ndarray, tolerance: float):
    """A blob of indices: right or wrong, each one."""
    error, relative, _ = compare_blob(expected, actual, tolerance)
    wrong = int(np.count_nonzero(actual != expected))
    return error, relative, wrong == 0, f"{wrong} indices differ from Caffe's" if wrong else ""


def value_kind(entry: dict, manifest: dict) -> str:
    """The kind ``compare_values`` compares a stored blob as: its layer's type, or
    ``POOLING_MASK`` for a Pooling layer's second top (the manifest keeps Caffe's top order)."""
    if entry["type"] == "Pooling" and _tops_of_layer(entry, manifest).index(entry["top"]) == 1:
        return POOLING_MASK
    return entry["type"]


def _tops_of_layer(entry: dict, manifest: dict) -> list[str]:
    """The stored tops of ``entry``'s layer, in Caffe's order."""
    return [e["top"] for e in manifest["blobs"] if e["layer"] == entry["layer"]]


def _compare_probabilities(expected: np.ndarray, actual: np.ndarray, tolerance: float):
    """Each probability's error relative to itself (at least ``PROBABILITY_FLOOR``)."""
    if not expected.size:
        return 0.0, 0.0, True, ""
    errors = np.abs(actual.astype(np.float64) - expected)
    relative = errors / np.maximum(np.abs(expected.astype(np.float64)), PROBABILITY_FLOOR)
    worst = int(np.argmax(relative))
    passed = bool(relative.flat[worst] <= tolerance)
    note = "" if passed else (f"probability {float(expected.flat[worst]):.3g} at "
                              f"{tuple(map(int, np.unravel_index(worst, expected.shape)))} is "
                              f"{float(actual.flat[worst]):.3g}")
    return float(errors.max()), float(relative.flat[worst]), passed, note


def compare_reshaped(layer_type: str, expected: np.ndarray, actual: np.ndarray, tolerance: float):
    """Compare blobs whose Keras shape differs from Caffe's by design; None for any other
    difference. Returns (max abs error, relative error, passed, note).

    * DetectionOutput: Caffe (1, 1, R, 7) holds every image's rows [image, label, score, box]
      (or one [i, -1, ...] row per image when nothing is detected); Keras (N, K, 7) holds image
      i's rows first in item i, then padding rows [i, -1, ..., -1]. Caffe's rows of image i
      (label != -1, in order) must equal the first rows of item i: image and label exactly,
      score and box within the tolerance; every other row must be padding.
    * A batch-independent blob (PriorBox and what is computed from priors alone): Caffe
      (1, ...) against Keras (N, ...), every Keras item must match Caffe's single one.
    """
    if layer_type == "DetectionOutput":
        return compare_detections(expected, actual, tolerance)
    if expected.shape[:1] == (1,) and actual.ndim == expected.ndim \
            and actual.shape[1:] == expected.shape[1:]:
        error, relative, passed, note = compare_values(
            layer_type, np.broadcast_to(expected, actual.shape), actual, tolerance)
        return (error, relative, passed,
                f"Caffe's batch-1 blob vs each of {actual.shape[0]} items" + (f"; {note}" if note else ""))
    return None


def compare_detections(expected: np.ndarray, actual: np.ndarray, tolerance: float):
    """Caffe's DetectionOutput top against the padded Keras one (see ``compare_reshaped``)."""
    if expected.ndim != 4 or expected.shape[:2] != (1, 1) or expected.shape[3] != 7 \
            or actual.ndim != 3 or actual.shape[2] != 7:
        return None
    rows = expected[0, 0].astype(np.float64)
    real = rows[rows[:, 1] != -1]
    actual = actual.astype(np.float64)
    images, capacity = actual.shape[:2]
    stray = sorted(set(real[:, 0].tolist()) - set(range(images)))
    if stray:
        return None, None, False, f"Caffe has rows for images {stray} beyond the {images} items"
    errors = []
    for i in range(images):
        want = real[real[:, 0] == i]
        if len(want) > capacity:
            return None, None, False, (f"image {i}: Caffe has {len(want)} detections, the Keras "
                                       f"output holds {capacity} rows")
        got, padding = actual[i, :len(want)], actual[i, len(want):]
        if not np.array_equal(got[:, :2], want[:, :2]):
            return None, None, False, (f"image {i}: (image, label) of the detections differ: "
                                       f"Keras {got[:, :2].tolist()}, "
                                       f"Caffe {want[:, :2].tolist()}")
        expected_padding = np.full_like(padding, -1.0)
        expected_padding[:, 0] = i
        if not np.array_equal(padding, expected_padding):
            return None, None, False, f"image {i}: Keras has rows beyond Caffe's {len(want)}"
        if len(want):
            errors.append(np.max(np.abs(got[:, 2:] - want[:, 2:])))
    error = float(max(errors, default=0.0))
    scale = float(np.max(np.abs(real[:, 2:]), initial=0.0))
    relative = error / scale if scale > 0 else error
    return (error, relative, bool(relative <= tolerance),
            f"{len(real)} detections in {images} padded items of {capacity} rows")


def _distinct(tensors: list) -> list:
    """Each tensor once (Split's tops are one Keras tensor), in first-seen order."""
    return list({id(tensor): tensor for tensor in tensors}.values())


def _run_probe(probe, feeds: list[np.ndarray], wanted: list, runtime: str | None) -> list:
    """The values of the ``wanted`` tensors: ``probe`` (whose outputs are those tensors, each
    once) run by Keras, or exported to ``runtime``'s format and run there."""
    if runtime is None:
        from .formats.base import keras_results
        results = keras_results(probe, feeds)
    else:
        from .formats.base import input_names, output_names
        from .formats.write import run_exported
        outputs = run_exported(probe, runtime, dict(zip(input_names(probe), feeds)))
        results = [outputs[name] for name in output_names(probe)]
    by_tensor = {id(tensor): result for tensor, result in zip(probe.outputs, results)}
    return [by_tensor[id(tensor)] for tensor in wanted]


def verify_net(net: Net, manifest: dict, arrays: dict[str, np.ndarray],
               tolerance: float | None = None, runtime: str | None = None) -> list[BlobCheck]:
    """Build ``net`` (prepared by ``api.prepare``), run it on the stored inputs and compare
    every stored blob the Keras model still has. ``runtime``: a format name (``onnx``,
    ``tflite``, ``openvino``, ``torch``, ...): the model with every stored blob as an output
    is exported to that format and run in its runtime instead of Keras."""
    from .build import build_graph
    from .lazy import keras
    from .time_major import time_major_values

    tolerance = manifest.get("tolerance", DEFAULT_TOLERANCE) if tolerance is None else tolerance
    model_inputs, tensors = build_graph(net)
    time_major = time_major_values(net)
    feeds = []
    for name in net.inputs:
        entry = next((e for e in manifest["inputs"] if e["name"] == name), None)
        if entry is None:
            raise VerificationError(f"the activations hold no input {name!r}")
        feeds.append(to_keras_layout(arrays[entry["key"]], name in time_major))

    checks, probes = [], []
    for entry in manifest["blobs"]:
        value = _value_of(net, entry["layer"], entry["top"])
        if value is None:
            checks.append(BlobCheck(entry["layer"], entry["top"], tuple(entry["shape"]), None, None,
                                    True, "not in the Keras model (fused, folded or dropped)"))
        else:
            probes.append((entry, tensors[value], value in time_major))
    if not probes:
        raise VerificationError(
            f"none of the {len(manifest['blobs'])} blobs stored in the activations is a top of "
            f"this net (the first is {manifest['blobs'][0]['layer']!r}): are they another net's?"
            if manifest["blobs"] else "the activations hold no blobs")
    results = _run_probe(keras.Model(model_inputs, _distinct([t for _, t, _ in probes])),
                         feeds, [tensor for _, tensor, _ in probes], runtime)
    for (entry, _, swapped), result in zip(probes, results):
        checks.append(_check_entry(entry, arrays[entry["key"]], result, tolerance, swapped,
                                   value_kind(entry, manifest)))
    return _in_manifest_order(checks, manifest)


def _check_entry(entry: dict, expected: np.ndarray, result, tolerance: float,
                 time_major: bool = False, kind: str | None = None) -> BlobCheck:
    """One stored blob against what the model computed (Keras layout); ``kind``: how its values
    compare (``value_kind``), by default its layer's type."""
    actual = to_caffe_layout(np.asarray(result), time_major)
    if actual.shape != expected.shape:
        by_design = compare_reshaped(entry["type"], expected, actual, tolerance)
        if by_design is None:
            return BlobCheck(entry["layer"], entry["top"], expected.shape, None, None, False,
                             f"shape {actual.shape} differs from Caffe's")
        return BlobCheck(entry["layer"], entry["top"], expected.shape, *by_design)
    return BlobCheck(entry["layer"], entry["top"], expected.shape,
                     *compare_values(kind or entry["type"], expected, actual, tolerance))


def _in_manifest_order(checks: list[BlobCheck], manifest: dict) -> list[BlobCheck]:
    order = {(e["layer"], e["top"]): i for i, e in enumerate(manifest["blobs"])}
    return sorted(checks, key=lambda c: order[(c.layer, c.top)])


def artifact_output_name(entry: dict, manifest: dict) -> str:
    """The canonical artifact output name (``formats.base.output_names``) of a stored blob:
    its layer's Keras name, with ``:k`` for the k-th top of a layer with several."""
    from .registry import keras_layer_name
    tops = _tops_of_layer(entry, manifest)
    name = keras_layer_name(entry["layer"])
    return f"{name}:{tops.index(entry['top'])}" if len(tops) > 1 else name


def verify_artifact(path: str, manifest: dict, arrays: dict[str, np.ndarray],
                    tolerance: float | None = None, format: str | None = None) -> list[BlobCheck]:
    """Run an exported artifact (``.onnx``, ``.tflite``, OpenVINO ``.xml``, ``.pt2``, ``.keras``,
    ``.h5``) in its runtime on the stored inputs and compare each of its outputs with the
    stored blob of the same name. Blobs that are not outputs of the artifact pass with a note."""
    from .formats import for_output
    from .registry import keras_layer_name

    tolerance = manifest.get("tolerance", DEFAULT_TOLERANCE) if tolerance is None else tolerance
    runner = for_output(path, format).load(path)
    stored_inputs = {keras_layer_name(e["name"]): e for e in manifest["inputs"]}
    missing = [name for name in runner.inputs if name not in stored_inputs]
    if missing:
        raise VerificationError(f"the activations hold no input {missing[0]!r} of {path}")
    results = runner.run({name: to_keras_layout(arrays[stored_inputs[name]["key"]])
                          for name in runner.inputs})
    checks = []
    for entry in manifest["blobs"]:
        name = artifact_output_name(entry, manifest)
        if name in results:
            checks.append(_check_entry(entry, arrays[entry["key"]], results[name], tolerance,
                                       kind=value_kind(entry, manifest)))
        else:
            checks.append(BlobCheck(entry["layer"], entry["top"], tuple(entry["shape"]), None,
                                    None, True, "not an output of the artifact"))
    if all(check.max_abs_error is None for check in checks):
        raise VerificationError(f"none of the outputs of {path} ({', '.join(runner.outputs)}) "
                                "is a blob stored in the activations")
    return _in_manifest_order(checks, manifest)


def first_failure(checks: list[BlobCheck]) -> BlobCheck | None:
    return next((check for check in checks if not check.passed), None)


def format_checks(checks: list[BlobCheck], tolerance: float) -> str:
    header = ("layer", "top", "shape", "max abs error", "relative", "result")
    rows = []
    for c in checks:
        rows.append((c.layer, c.top, "x".join(map(str, c.shape)),
                     "-" if c.max_abs_error is None else f"{c.max_abs_error:.3g}",
                     "-" if c.relative_error is None else f"{c.relative_error:.3g}",
                     ("pass" if c.passed else "FAIL") + (f" ({c.note})" if c.note else "")))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [c for c in checks if not c.passed]
    compared = [c for c in checks if c.max_abs_error is not None]
    lines.append("")
    lines.append(f"{len(compared)} blobs compared, {len(failed)} failed (tolerance: relative error "
                 f"<= {tolerance:g} of max |caffe| per blob; ArgMax indices and pooling masks exact, each Softmax "
                 "probability relative to itself)")
    if failed:
        lines.append(f"first diverging layer: {failed[0].layer!r} (top {failed[0].top!r})")
    return "\n".join(lines)


def verify(prototxt: str, caffemodel: str, activations: str, tolerance: float | None = None, *,
           input_shapes: dict[str, tuple[int, ...]] | None = None, fuse_batchnorm: bool = True,
           fold_batchnorm: bool = False) -> list[BlobCheck]:
    """Convert the net and compare it with Caffe's activations, blob by blob.

    ``activations`` is an ``.npz`` written by ``scripts/dump_caffe_activations.py`` (or the
    golden fixtures). Returns one :class:`BlobCheck` per stored blob, in Caffe's order;
    ``check.passed`` says whether its error relative to max |caffe| is within ``tolerance``
    (default: the file's, else 1e-4), by part for ArgMax and Softmax tops (see the module). Blobs the model no longer has (folded or fused layers)
    pass with a note. ``first_failure(checks)`` is the first diverging blob, ``format_checks``
    the table the CLI prints. Raises VerificationError for an unusable activations file.
    """
    from .api import prepare

    manifest, arrays = load_activations(activations)
    net = prepare(prototxt, caffemodel, input_shapes, fuse_batchnorm,
                  fold_batchnorm=fold_batchnorm)
    return verify_net(net, manifest, arrays, tolerance)
