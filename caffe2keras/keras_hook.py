"""Register our custom layers with Keras without importing Keras ourselves.

Keras finds custom classes for ``load_model`` only once they are registered, and
registering needs the classes, which need Keras. Importing Keras from
``import caffe2keras`` would cost seconds (it brings TensorFlow), so instead: if Keras
is already imported, register now; otherwise register the moment Keras finishes
importing, through a one-shot import hook.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def _register() -> None:
    import caffe2keras.layers  # noqa: F401  (the decorators register the classes)


class _AfterKerasLoads(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level ``keras`` module to run ``_register`` after it."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # one shot; lets the normal finders locate keras
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            _register()

        loader.exec_module = exec_module
        return spec


def register_layers_when_keras_loads() -> None:
    if "keras" in sys.modules:
        _register()
    elif not any(isinstance(finder, _AfterKerasLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasLoads())
