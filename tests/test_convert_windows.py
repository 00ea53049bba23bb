"""Im2col, SPP and Parameter against numpy transcriptions of Caffe; BatchReindex and Filter
refused with their reason, in the error and in the layer table."""

from __future__ import annotations

import numpy as np
import pytest

import caffe2keras
import caffe_ref_sequence as ref
from caffe2keras.errors import StructureError, UnsupportedLayerError
from caffe2keras.layer_table import layer_table_markdown, layer_table_text
from numpy_forward import check_conversion, normal, write_net

SHAPE = (2, 3, 11, 9)  # N, C, H, W
INPUT = ('layer { name: "data" type: "Input" top: "data" input_param { shape { '
         + " ".join(f"dim: {d}" for d in SHAPE) + " } } }\n")


def test_im2col_variants(tmp_path):
    text = 'name: "im2col"\n' + INPUT + """
layer { name: "square" type: "Im2col" bottom: "data" top: "square" convolution_param { kernel_size: 3 } }
layer { name: "rect" type: "Im2col" bottom: "data" top: "rect"
        convolution_param { kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 stride_w: 3 } }
layer { name: "dilated" type: "Im2col" bottom: "data" top: "dilated"
        convolution_param { kernel_size: 2 dilation: 2 dilation: 3 pad: 1 stride: 2 } }
"""
    x = normal(SHAPE, seed=1)
    expected = {"square": ref.im2col(x, (3, 3)),
                "rect": ref.im2col(x, (3, 2), (2, 3), (2, 1)),
                "dilated": ref.im2col(x, (2, 2), (2, 2), (1, 1), (2, 3))}
    check_conversion(tmp_path, text, None, {"data": x}, expected)


def test_spp_levels_and_modes(tmp_path):
    text = 'name: "spp"\n' + INPUT + """
layer { name: "one" type: "SPP" bottom: "data" top: "one" spp_param { pyramid_height: 1 } }
layer { name: "max3" type: "SPP" bottom: "data" top: "max3" spp_param { pyramid_height: 3 } }
layer { name: "ave3" type: "SPP" bottom: "data" top: "ave3" spp_param { pyramid_height: 3 pool: AVE } }
layer { name: "ave2" type: "SPP" bottom: "data" top: "ave2" spp_param { pyramid_height: 2 pool: AVE } }
"""
    x = normal(SHAPE, seed=2)
    expected = {"one": ref.spp(x, 1), "max3": ref.spp(x, 3), "ave3": ref.spp(x, 3, "ave"),
                "ave2": ref.spp(x, 2, "ave")}
    model = check_conversion(tmp_path, text, None, {"data": x}, expected)
    assert model.get_layer("max3").output.shape == (None, 3 * (1 + 4 + 16))


def test_im2col_with_too_many_taps_is_refused(tmp_path):
    text = ('name: "im2col"\nlayer { name: "data" type: "Input" top: "data" input_param { '
            'shape { dim: 1 dim: 1 dim: 70 dim: 70 } } }\n'
            'layer { name: "big" type: "Im2col" bottom: "data" top: "big" '
            'convolution_param { kernel_size: 65 } }\n')
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=r"'big' \(Im2col\): a 65x65 kernel has more than "
                                             r"the 4096 taps"):
        caffe2keras.convert(prototxt, None)


def test_spp_level_caffe_refuses(tmp_path):
    text = ('name: "spp"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { '
            'dim: 1 dim: 2 dim: 5 dim: 8 } } }\n'
            'layer { name: "s" type: "SPP" bottom: "data" top: "s" spp_param { pyramid_height: 3 } }\n')
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=r"'s' \(SPP\): level 2 pads 2 >= its kernel 2"):
        caffe2keras.convert(prototxt, None)


def test_parameter_is_repeated_over_the_batch(tmp_path):
    text = 'name: "param"\n' + INPUT + """
layer { name: "p4" type: "Parameter" top: "p4" parameter_param { shape { dim: 1 dim: 3 dim: 4 dim: 2 } } }
layer { name: "p2" type: "Parameter" top: "p2" parameter_param { shape { dim: 1 dim: 5 } } }
layer { name: "relu" type: "ReLU" bottom: "p4" top: "relu" }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { global_pooling: true } }
"""
    p4, p2 = normal((1, 3, 4, 2), seed=3), normal((1, 5), seed=4)
    prototxt, caffemodel = write_net(tmp_path, text, {"p4": [p4], "p2": [p2]})
    model = caffe2keras.convert(prototxt, caffemodel)
    got_p2, _, got_relu = model.predict(normal((4, 11, 9, 3), seed=5), verbose=0)  # by blob name
    np.testing.assert_array_equal(got_p2, np.repeat(p2, 4, axis=0))
    np.testing.assert_array_equal(got_relu, np.repeat(np.maximum(p4, 0).transpose(0, 2, 3, 1), 4, 0))


def test_parameter_with_a_batch_is_refused(tmp_path):
    text = 'name: "param"\n' + INPUT + (
        'layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 5 } } }\n')
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(StructureError, match=r"'p' \(Parameter\).*only a blob of shape \(1, \.\.\.\)"):
        caffe2keras.convert(prototxt, None)


def test_batch_changing_layers_are_refused_with_the_reason(tmp_path):
    text = 'name: "batch"\n' + INPUT + """
layer { name: "sel" type: "Input" top: "sel" top: "order" input_param { shape { dim: 2 } shape { dim: 2 } } }
layer { name: "filter" type: "Filter" bottom: "data" bottom: "sel" top: "kept" }
layer { name: "reindex" type: "BatchReindex" bottom: "data" bottom: "order" top: "reordered" }
"""
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(UnsupportedLayerError) as error:
        caffe2keras.convert(prototxt, None)
    assert error.value.layers == [("filter", "Filter"), ("reindex", "BatchReindex")]
    message = str(error.value)
    assert "'filter' (Filter: it selects or reorders the items of Caffe's batch" in message
    assert "'reindex' (BatchReindex: it selects or reorders" in message


def test_inspect_marks_the_refused_layers(tmp_path):
    from caffe2keras.inspect import format_report
    from caffe2keras.reader.loader import load_net
    text = 'name: "batch"\n' + INPUT + """
layer { name: "order" type: "Input" top: "order" input_param { shape { dim: 2 } } }
layer { name: "reindex" type: "BatchReindex" bottom: "data" bottom: "order" top: "reordered" }
"""
    prototxt, _ = write_net(tmp_path, text)
    report = format_report(load_net(prototxt))
    row = next(line for line in report.splitlines() if line.startswith("reindex "))
    assert row.split()[-1] == "refused"
    assert "refused: BatchReindex (it selects or reorders the items of Caffe's batch" in report
    assert "no converter for" not in report


def test_the_layer_table_lists_the_refused_types():
    row = [line for line in layer_table_markdown().splitlines() if line.startswith("| BatchReindex")]
    assert row == ["| BatchReindex, Filter | refused: it selects or reorders the items of Caffe's "
                   "batch, which no Keras model with a free batch size can compute |"]
    assert "BatchReindex, Filter\n    refused: it selects" in layer_table_text()


@pytest.mark.parametrize("cls, kwargs", [
    ("Im2col", {"kernel": (3, 2), "stride": (2, 1), "pad": (1, 0), "dilation": (1, 2),
                "output_size": (4, 5)}),
    ("SpatialPyramidPooling", {"pool": "ave", "levels": (((2, 3), (2, 3), (1, 0), (3, 3)),)}),
    ("Parameter", {"shape": (1, 4, 3)}),
])
def test_config_round_trip(cls, kwargs):
    from caffe2keras import layers
    layer = getattr(layers, cls)(**kwargs, name="x")
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
