"""Each converter module declares the Keras layer classes it emits (``KERAS_LAYERS``, read by
the README's formats table): the declaration is exactly what its code names, and covers what
the converters really build for every golden net."""

from __future__ import annotations

import inspect
import re
from collections import defaultdict
from pathlib import Path

import pytest

from caffe2keras import registry
from caffe2keras.api import prepare
from caffe2keras.build import build_model

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KERAS_CLASS = re.compile(r"(?<![\w.])(?:keras\.layers|custom_layers)\.([A-Z]\w*)")


def families():
    return [module for module, _ in registry.converters_by_module()]


@pytest.mark.parametrize("module", families(), ids=lambda module: module.__name__)
def test_declared_keras_layers_are_the_ones_the_code_names(module):
    source = inspect.getsource(module)
    named = set(KERAS_CLASS.findall(source))
    if "caffe_order_reshape(" in source:  # converters/common.py's helper emits these
        named |= {"Permute", "Reshape"}
    assert set(module.KERAS_LAYERS) == named


def test_what_the_converters_build_is_declared(monkeypatch):
    declared = {module.__name__: set(module.KERAS_LAYERS) for module in families()}
    built = defaultdict(set)
    for type_, function in list(registry._CONVERTERS.items()):
        def recording(layer, ctx, function=function):
            steps = function(layer, ctx)
            built[function.__module__].update(type(step.layer).__name__ for step in steps)
            return steps
        monkeypatch.setitem(registry._CONVERTERS, type_, recording)
    names = [p.name for p in sorted(FIXTURES.iterdir())
             if (p / "golden.npz").is_file() and (p / "deploy.prototxt").is_file()
             and p.name != "custom_layer"]
    assert len(names) >= 30
    for name in names:
        folder = FIXTURES / name
        for options in ({"fuse_batchnorm": False}, {"fold_batchnorm": True}):
            build_model(prepare(str(folder / "deploy.prototxt"), str(folder / "weights.caffemodel"),
                                **options))
    for module, classes in built.items():
        assert classes <= declared[module], (module, classes - declared[module])
