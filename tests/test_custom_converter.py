"""A user registers a converter for a layer type caffe2keras does not know, as the README shows.

fixtures/custom_layer uses MyHardSwish, a type caffe2keras knows nothing of, standing for a user's
own layer; its golden activations come from real Caffe running the same net with the build's
HardSwish (y = x * min(max(x/6 + 1/2, 0), 1)) in its place.
"""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

import caffe2keras
from caffe2keras import Step, converter, keras_layer_name, registry, shape_rule
from caffe2keras.api import prepare
from caffe2keras.errors import UnsupportedLayerError
from caffe2keras.verify import first_failure, load_activations, verify_net

FOLDER = Path(__file__).resolve().parent.parent / "fixtures" / "custom_layer"
PROTOTXT, WEIGHTS = str(FOLDER / "deploy.prototxt"), str(FOLDER / "weights.caffemodel")


@pytest.fixture
def hard_swish_converter():
    from caffe2keras.shapes import registry as shape_registry

    @shape_rule("MyHardSwish")
    def same_shape(layer, bottom_shapes):
        return [bottom_shapes[0]]

    @converter("MyHardSwish")
    def hard_swish(layer, ctx):
        return [Step(keras.layers.Activation("hard_silu", name=keras_layer_name(layer.name)))]

    yield hard_swish
    registry.unregister("MyHardSwish")
    shape_registry.unregister("MyHardSwish")


def test_unregistered_type_is_refused_with_every_layer_named():
    with pytest.raises(UnsupportedLayerError) as error:
        caffe2keras.convert(PROTOTXT, WEIGHTS)
    assert error.value.layers == [("hswish1", "MyHardSwish"), ("hswish2", "MyHardSwish")]
    assert "'hswish1' (MyHardSwish)" in str(error.value) and "'hswish2' (MyHardSwish)" in str(error.value)


def test_registered_converter_matches_caffe(hard_swish_converter):
    manifest, arrays = load_activations(str(FOLDER / "golden.npz"))
    checks = verify_net(prepare(PROTOTXT, WEIGHTS), manifest, arrays)
    assert first_failure(checks) is None
    assert [c.layer for c in checks if c.max_abs_error is not None] == ["conv1", "hswish1", "conv2",
                                                                        "hswish2"]


def test_registering_a_type_twice_is_an_error(hard_swish_converter):
    with pytest.raises(ValueError, match="already registered"):
        converter("MyHardSwish")(lambda layer, ctx: [])


def test_a_new_type_needs_and_takes_a_shape_rule(tmp_path):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(FOLDER.joinpath("deploy.prototxt").read_text().replace('"MyHardSwish"',
                                                                               '"TheirHardSwish"'))

    @converter("TheirHardSwish")
    def mine(layer, ctx):
        return [Step(keras.layers.Activation("hard_silu", name=keras_layer_name(layer.name)))]

    try:
        with pytest.raises(caffe2keras.StructureError, match="no shape rule"):
            caffe2keras.convert(str(prototxt), WEIGHTS)

        @shape_rule("TheirHardSwish")
        def same_shape(layer, bottom_shapes):
            return [bottom_shapes[0]]

        model = caffe2keras.convert(str(prototxt), WEIGHTS)
        assert model.get_layer("hswish2").output.shape == (None, 9, 6, 4)
    finally:
        registry.unregister("TheirHardSwish")
        from caffe2keras.shapes import registry as shape_registry
        shape_registry.unregister("TheirHardSwish")
