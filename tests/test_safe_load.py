"""Converted models run no code when loaded: no Lambda layer anywhere, and every fixture's
model loads with ``keras.models.load_model(path, safe_mode=True)`` in a fresh process
(which imports caffe2keras for its layer classes, nothing else) and computes what the
model that was saved computes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from caffe2keras.api import convert

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
NEEDS_USER_CONVERTER = {"custom_layer"}  # tests/test_custom_converter.py covers it
NAMES = sorted(p.name for p in FIXTURES.iterdir()
               if (p / "deploy.prototxt").exists() and (p / "weights.caffemodel").exists()
               and p.name not in NEEDS_USER_CONVERTER)

LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import caffe2keras  # registers the custom layers with Keras, as a user's program would
    import keras

    def layers(model):
        for layer in model.layers:
            yield layer
            if hasattr(layer, "layers"):
                yield from layers(layer)

    failures = []
    for case in json.load(open(sys.argv[1])):
        try:
            model = keras.models.load_model(case["path"], safe_mode=True, compile=False)
            lambdas = [l.name for l in layers(model) if isinstance(l, keras.layers.Lambda)]
            assert not lambdas, f"Lambda layers {lambdas}"
            data = np.load(case["arrays"])
            inputs = [data[f"in{i}"] for i in range(case["inputs"])]
            outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for i, got in enumerate(outputs):
                want = data[f"out{i}"]
                scale = max(float(np.nanmax(np.abs(want))), 1.0)
                assert np.allclose(got, want, rtol=1e-5, atol=1e-5 * scale, equal_nan=True), \\
                    f"output {i} differs by {float(np.nanmax(np.abs(got - want)))}"
        except Exception as error:
            failures.append(f"{case['name']}: {type(error).__name__}: {error}")
    print("\\n".join(failures))
    sys.exit(1 if failures else 0)
""")


def _walk(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk(layer)


def test_every_fixture_loads_in_safe_mode_in_a_fresh_process(tmp_path):
    import keras
    cases = []
    for name in NAMES:
        folder = FIXTURES / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert(str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"))
        lambdas = [layer.name for layer in _walk(model) if isinstance(layer, keras.layers.Lambda)]
        assert not lambdas, (name, lambdas)
        rng = np.random.default_rng(len(cases))
        inputs = [rng.standard_normal((2, *tensor.shape[1:])).astype(np.float32)
                  for tensor in model.inputs]
        outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        arrays = tmp_path / f"{name}.npz"
        np.savez(arrays, **{f"in{i}": x for i, x in enumerate(inputs)},
                 **{f"out{i}": np.asarray(y) for i, y in enumerate(outputs)})
        path = tmp_path / f"{name}.keras"
        model.save(path)
        cases.append({"name": name, "path": str(path), "arrays": str(arrays),
                      "inputs": len(inputs)})
    manifest = tmp_path / "cases.json"
    manifest.write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, "-c", LOADER, str(manifest)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert len(cases) == len(NAMES) >= 30


@pytest.mark.parametrize("module", ["converters", "layers"])
def test_no_converter_or_custom_layer_uses_lambda(module):
    for path in (ROOT / "caffe2keras" / module).glob("*.py"):
        assert "Lambda" not in path.read_text(), path
