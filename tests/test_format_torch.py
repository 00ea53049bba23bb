"""The torch format (.pt2): written by a torch-backend child process, loaded and run by plain
torch, outputs by canonical name, a dynamic batch, failures as one caffe2keras error.

The golden nets against real Caffe run in test_formats_golden.py (``-k torch``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from caffe2keras.errors import ExportCheckError, OutputError, UnsupportedInFormatError
from caffe2keras.formats import get_format, input_names, output_names
from caffe2keras.formats import torch_program
from caffe2keras.formats.check import check_artifact, keras_outputs
from caffe2keras.formats.write import write_artifact
from caffe2keras.layers import DetectionOutput, Slice

from test_formats_golden import require_runtime

EXACT = 1e-5  # of an output's largest value; we see about 1e-7


@keras.saving.register_keras_serializable(package="caffe2keras_tests")
class DataDependentBranch(keras.layers.Layer):
    """Doubles its input. On the torch backend it first branches in Python on a value of the
    input, which torch.export cannot trace (the export child imports this module to load it)."""

    def call(self, x):
        if keras.backend.backend() == "torch" and float(ops.max(x)) > 1e30:
            return x
        return x * 2.0


def two_inputs_three_outputs(seed=0):
    """An image (N, 9, 7, 3) and a vector (N, 5) in; a Slice's two tops and a dense head out
    (canonical names 'cut:0', 'cut:1', 'head')."""
    image = keras.Input((9, 7, 3), name="image")
    vector = keras.Input((5,), name="vector")
    x = keras.layers.Conv2D(6, (3, 2), strides=(2, 1), activation="relu", name="conv")(image)
    low, high = Slice(axis=3, points=[2], name="cut")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(high)
    joined = keras.layers.Concatenate(name="join")([pooled, vector])
    head = keras.layers.Dense(4, name="head")(joined)
    model = keras.Model([image, vector], [low, high, head])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def torch_format():
    require_runtime("torch")
    return get_format("torch")


@pytest.fixture(scope="module")
def exported(torch_format, tmp_path_factory):
    """The two-input, three-output model, written by write_artifact (checked on the way)."""
    model = two_inputs_three_outputs()
    path = str(tmp_path_factory.mktemp("torch") / "model.pt2")
    checks = write_artifact(model, path, torch_format)
    return model, path, checks


def seeded_feeds(model, batch, seed, scale=10.0):
    """Normal values times ``scale`` for every input, ``batch`` items."""
    rng = np.random.default_rng(seed)
    return {name: (rng.standard_normal((batch, *tensor.shape[1:])) * scale).astype(np.float32)
            for name, tensor in zip(input_names(model), model.inputs)}


def relative_errors(expected, actual):
    return {name: float(np.max(np.abs(actual[name] - want)) / np.max(np.abs(want)))
            for name, want in expected.items()}


def test_write_artifact_checks_every_output_by_canonical_name(exported):
    model, path, checks = exported
    assert output_names(model) == ["cut:0", "cut:1", "head"]
    assert [check.name for check in checks] == ["cut:0", "cut:1", "head"]
    assert all(check.passed and check.relative_error < EXACT for check in checks)
    assert os.listdir(os.path.dirname(path)) == ["model.pt2"]  # no scratch left beside it


@pytest.mark.parametrize("batch", [1, 3])
def test_one_file_runs_any_batch_size(exported, torch_format, batch):
    model, path, _ = exported
    runner = torch_format.load(path)
    assert (runner.inputs, runner.outputs) == (["image", "vector"], ["cut:0", "cut:1", "head"])
    feeds = seeded_feeds(model, batch, seed=batch)
    actual = runner.run(feeds)
    expected = keras_outputs(model, feeds)
    assert {name: value.shape for name, value in actual.items()} == \
        {name: value.shape for name, value in expected.items()}
    assert max(relative_errors(expected, actual).values()) < EXACT


def test_the_program_keeps_no_layout_copy_before_a_convolution(exported, torch_format):
    model, path, _ = exported
    graph = torch_format.load(path).module.graph
    targets = [str(node.target) for node in graph.nodes if node.op == "call_function"]
    assert "aten.conv2d.default" in targets and "aten.contiguous.default" not in targets


def test_a_copy_that_is_written_to_stays(torch_format):
    import torch

    from caffe2keras.formats.torch_lowering import drop_layout_copies

    class WritesItsCopy(torch.nn.Module):
        def forward(self, x):
            copy = x.permute(0, 3, 1, 2).contiguous()
            copy.add_(1.0)  # must not reach x, which is returned too
            return copy, x

    program = torch.export.export(WritesItsCopy(), (torch.zeros(2, 3, 4, 5),))
    assert "aten.contiguous.default" in [str(node.target) for node in program.graph.nodes]
    assert drop_layout_copies(program) == 0
    changed, kept = program.module()(torch.zeros(2, 3, 4, 5))
    assert float(changed.min()) == 1.0 and float(kept.max()) == 0.0


def test_the_program_runs_in_plain_torch_without_keras(exported, tmp_path):
    """What a PyTorch user does: torch.export.load(...).module(), in a process where keras
    and tensorflow cannot even be imported; the names come from the file's extra file."""
    model, path, _ = exported
    feeds = seeded_feeds(model, 3, seed=7)
    np.savez(tmp_path / "feeds.npz", **feeds)
    script = f"""
import json, sys
sys.modules["keras"] = sys.modules["tensorflow"] = None  # any import of them now fails
import numpy as np, torch
extra = {{"caffe2keras.json": ""}}
module = torch.export.load({path!r}, extra_files=extra).module()
names = json.loads(extra["caffe2keras.json"])
feeds = np.load({str(tmp_path / 'feeds.npz')!r})
with torch.no_grad():
    outputs = module(*[torch.from_numpy(feeds[name]) for name in names["inputs"]])
np.savez({str(tmp_path / 'outputs.npz')!r},
         **{{name: value.numpy() for name, value in zip(names["outputs"], outputs)}})
print(sorted(m for m in ("keras", "tensorflow", "caffe2keras") if sys.modules.get(m)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    with np.load(tmp_path / "outputs.npz") as archive:
        actual = {name: archive[name] for name in archive.files}
    assert max(relative_errors(keras_outputs(model, feeds), actual).values()) < EXACT


def test_a_broken_export_is_caught_by_the_check_and_nothing_is_written(
        exported, torch_format, tmp_path, monkeypatch):
    """The program of a model whose dense head has other weights: only 'head' differs."""
    model, _, _ = exported
    broken = two_inputs_three_outputs()
    head = broken.get_layer("head")
    head.set_weights([head.get_weights()[0] * 1.01, head.get_weights()[1]])
    broken_path = str(tmp_path / "broken.pt2")
    torch_format.write(broken, broken_path)
    with pytest.raises(ExportCheckError, match=r"output 'head' differs") as error:
        check_artifact(torch_format, model, broken_path)
    assert "PyTorch ExportedProgram" in str(error.value) and "1 of 3 outputs" in str(error.value)

    target = tmp_path / "model.pt2"
    target.write_bytes(b"the previous file")
    write = type(torch_format).write
    monkeypatch.setattr(type(torch_format), "write",
                        lambda self, _model, path: write(self, broken, path))
    with pytest.raises(ExportCheckError, match="'head'"):
        write_artifact(model, str(target), torch_format)
    assert target.read_bytes() == b"the previous file"
    assert sorted(os.listdir(tmp_path)) == ["broken.pt2", "model.pt2"]


def test_a_layer_torch_export_cannot_trace_is_refused_by_name(torch_format, tmp_path, capfd):
    image = keras.Input((4, 5, 3), name="image")
    x = keras.layers.Conv2D(2, 1, name="conv")(image)
    model = keras.Model(image, DataDependentBranch(name="branchy")(x))
    path = tmp_path / "model.pt2"
    with pytest.raises(UnsupportedInFormatError) as error:
        torch_format.write(model, str(path))
    assert error.value.format_name == "PyTorch ExportedProgram (torch.export)"
    [(layer, kind, reason)] = error.value.layers
    assert (layer, kind) == ("branchy", "DataDependentBranch")
    assert "data-dependent" in reason.lower() and "\n" not in reason
    assert os.listdir(tmp_path) == []
    captured = capfd.readouterr()  # the child's own output stays in the child
    assert captured.out == "" and captured.err == ""


def test_a_crashing_export_process_is_one_output_error(torch_format, tmp_path, monkeypatch,
                                                        capfd):
    """A child that dies before reporting (here: the caffe2keras it imports raises)."""
    fake = tmp_path / "fake" / "caffe2keras"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('broken installation 1234')\n")
    environment = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=str(fake.parent))
    monkeypatch.setattr(torch_program, "child_environment", lambda: environment)
    monkeypatch.setattr(sys, "path", [str(fake.parent)] + sys.path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputError, match="the torch export process failed: .*broken "
                                          "installation 1234") as error:
        torch_format.write(two_inputs_three_outputs(), str(out / "model.pt2"))
    assert "Traceback" not in str(error.value) and "\n" not in str(error.value)
    assert os.listdir(out) == []
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_layer_class_from_main_is_refused_before_writing(torch_format, tmp_path, monkeypatch):
    monkeypatch.setattr(DataDependentBranch, "__module__", "__main__")
    image = keras.Input((4, 5, 3), name="image")
    model = keras.Model(image, DataDependentBranch(name="mine")(image))
    with pytest.raises(UnsupportedInFormatError, match=r"'mine' \(DataDependentBranch\): its "
                                                        r"class is defined in __main__"):
        write_artifact(model, str(tmp_path / "model.pt2"), torch_format)
    assert os.listdir(tmp_path) == []


def test_an_input_of_unknown_size_is_refused_before_exporting(torch_format, tmp_path):
    image = keras.Input((None, None, 3), name="image")
    model = keras.Model(image, keras.layers.Conv2D(2, 1, name="conv")(image))
    with pytest.raises(OutputError, match=r"input 'image' has an unknown size \(None, None, "
                                          r"None, 3\); give it with --input-shape"):
        torch_format.write(model, str(tmp_path / "model.pt2"))
    assert os.listdir(tmp_path) == []


def test_without_torch_the_error_says_what_to_install(monkeypatch, tmp_path):
    real = torch_program.importlib.util.find_spec
    monkeypatch.setattr(torch_program.importlib.util, "find_spec",
                        lambda name, *args: None if name == "torch" else real(name, *args))
    fmt = torch_program.TorchFormat()
    with pytest.raises(OutputError, match=r"pip install 'caffe2keras\[export\]'"):
        fmt.write(two_inputs_three_outputs(), str(tmp_path / "model.pt2"))
    with pytest.raises(OutputError, match=r"pip install 'caffe2keras\[export\]'"):
        fmt.load(str(tmp_path / "model.pt2"))


def test_a_pt2_not_written_by_caffe2keras_is_refused(torch_format, tmp_path):
    import torch

    class Twice(torch.nn.Module):
        def forward(self, x):
            return x * 2

    path = str(tmp_path / "foreign.pt2")
    torch.export.save(torch.export.export(Twice(), (torch.ones(2, 3),)), path)
    with pytest.raises(OutputError, match="not a program written by caffe2keras"):
        torch_format.load(path)


# --- the model's way to the export process -------------------------------------------------------

def test_config_and_raw_weights_rebuild_the_model_exactly(tmp_path):
    """Every variable comes back bit for bit: a 0-d one (Caffe's scalar Scale) and a
    Dropout's seed state (its path numbered per process) included."""
    from caffe2keras.formats.torch_transfer import read_model, unnumbered, write_model
    from caffe2keras.layers import Scale

    model = two_inputs_three_outputs()
    scalar = Scale(num_axes=0, bias_term=True, name="scalar")
    dropped = keras.layers.Dropout(0.5, name="drop")(model.outputs[2])
    model = keras.Model(model.inputs, model.outputs + [scalar(dropped)])
    scalar.set_weights([np.float32(1.5), np.float32(-0.25)])
    write_model(model, str(tmp_path))
    rebuilt = read_model(str(tmp_path))
    assert [unnumbered(v.path) for v in rebuilt.variables] == \
        [unnumbered(v.path) for v in model.variables]
    for mine, theirs in zip(rebuilt.variables, model.variables):
        assert mine.shape == theirs.shape
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_a_rebuilt_model_with_other_variables_is_refused(tmp_path):
    from caffe2keras.formats.torch_transfer import ModelMismatch, read_model, write_model

    write_model(two_inputs_three_outputs(), str(tmp_path))
    manifest = json.loads((tmp_path / "weights.json").read_text())
    manifest[1]["shape"] = [99]
    (tmp_path / "weights.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelMismatch, match=r"number 1: \('conv/bias', \[6\]\) against "
                                            r"\('conv/bias', \[99\]\)"):
        read_model(str(tmp_path))


# --- DetectionOutput: NMS loop, stable ties, dynamic batch ----------------------------------------

PRIORS, CLASSES = 60, 4


def detection_model(top_k, keep_top_k):
    loc = keras.Input((PRIORS * 4,), name="loc")
    conf = keras.Input((PRIORS * CLASSES,), name="conf")
    priors = keras.Input((2, PRIORS * 4), name="priors")
    detections = DetectionOutput(num_classes=CLASSES, nms_threshold=0.45, top_k=top_k,
                                 keep_top_k=keep_top_k, confidence_threshold=0.1,
                                 code_type="center_size", name="detect")([loc, conf, priors])
    return keras.Model([loc, conf, priors], detections)


def detection_feeds(batch, seed):
    """Boxes that overlap, and scores with many exact ties (quantised to 1/8), so that NMS and
    the order of equal scores both matter."""
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0.0, 0.7, (batch, PRIORS, 2))
    sizes = rng.uniform(0.1, 0.3, (batch, PRIORS, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=-1).reshape(batch, -1)
    variances = np.full_like(boxes, 0.1)
    return {"loc": (rng.standard_normal((batch, PRIORS * 4)) * 0.5).astype(np.float32),
            "conf": (np.round(rng.uniform(0, 1, (batch, PRIORS * CLASSES)) * 8) / 8)
            .astype(np.float32),
            "priors": np.stack([boxes, variances], axis=1).astype(np.float32)}


def test_detection_output_exports_one_loop_and_matches_keras_at_any_batch(torch_format,
                                                                          tmp_path):
    model = detection_model(top_k=PRIORS, keep_top_k=25)
    path = str(tmp_path / "detect.pt2")
    torch_format.write(model, path)
    runner = torch_format.load(path)
    for batch in (1, 3):
        feeds = detection_feeds(batch, seed=batch)
        expected = keras_outputs(model, feeds)["detect"]
        actual = runner.run(feeds)["detect"]
        assert actual.shape == expected.shape == (batch, 25, 7)
        assert (expected[..., 1] >= 0).sum() > 10 * batch  # real detections, not padding
        np.testing.assert_array_equal(actual[..., :3], expected[..., :3])  # image, label, score
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    program = runner.module
    loops = [node for node in program.graph.nodes
             if node.op == "call_function" and "while_loop" in str(node.target)]
    assert len(loops) == 1  # NMS is one loop, not PRIORS unrolled steps


def test_an_ssd_with_prior_boxes_runs_any_batch_size(torch_format, tmp_path):
    """PriorBox gets its batch axis from the feature map: one program, batches 1 and 3.
    Inputs of scale 1: larger ones saturate the softmax, and which of many scores reach
    exactly 1.0 (and so which tied boxes are kept) then depends on each backend's rounding."""
    from pathlib import Path

    import caffe2keras

    folder = Path(__file__).resolve().parent.parent / "fixtures" / "ssd"
    model = caffe2keras.convert(str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"))
    assert {"PriorBox", "DetectionOutput"} <= {type(layer).__name__ for layer in model.layers}
    path = str(tmp_path / "ssd.pt2")
    torch_format.write(model, path)
    runner = torch_format.load(path)
    for batch in (1, 3):
        feeds = seeded_feeds(model, batch, seed=10 + batch, scale=1.0)
        expected, actual = keras_outputs(model, feeds), runner.run(feeds)
        for name, want in expected.items():
            assert actual[name].shape == want.shape and want.shape[0] == batch
            assert (want[..., 1] >= 0).all(axis=1).any()  # an item with all rows detections
            np.testing.assert_array_equal(actual[name][..., :2], want[..., :2])  # image, label
            assert np.max(np.abs(actual[name] - want)) <= 1e-5 * np.max(np.abs(want))
