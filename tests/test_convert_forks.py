"""The MobileNet forks' depthwise convolutions: ConvolutionDepthwise (farmingyard, ignores
num_output and group) and DepthwiseConvolution (yonghenglh6, a Convolution with group = C)
convert to exactly the model of the BVLC Convolution with group = num_output = C, and match
caffe_ref's convolution; what the forks cannot run is refused."""

from __future__ import annotations

import numpy as np
import pytest

import caffe2keras
import caffe_ref as ref
from caffe2keras.errors import StructureError, WeightsMismatchError
from numpy_forward import check_conversion, normal, write_net

N, C, H, W = 2, 5, 11, 8
GEOMETRY = "kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 2 stride_w: 1 dilation: 2"


def net(type_, param):
    return (f'name: "dw"\ninput: "data"\ninput_shape {{ dim: {N} dim: {C} dim: {H} dim: {W} }}\n'
            f'layer {{ name: "dw/1" type: "{type_}" bottom: "data" top: "dw/1" '
            f'convolution_param {{ {param} }} }}\n')


def weights(bias=True):
    kernel = normal((C, 1, 3, 2), seed=31)
    return [kernel, normal((C,), seed=32)] if bias else [kernel]


FORK_PARAMS = {
    # farmingyard's layer ignores num_output and group: whatever they say, one filter per channel
    "ConvolutionDepthwise": f"num_output: 7 group: 1 {GEOMETRY}",
    "DepthwiseConvolution": f"num_output: {C} group: {C} {GEOMETRY}",
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("type_", list(FORK_PARAMS))
def test_fork_depthwise_is_the_grouped_convolution(tmp_path, type_, bias):
    blobs = weights(bias)
    term = "" if bias else " bias_term: false"
    x = normal((N, C, H, W), seed=33)
    want = ref.convolution(x, blobs[0], blobs[1] if bias else None, stride=(2, 1), pad=(2, 1),
                           dilation=(2, 2), group=C)
    (tmp_path / "fork").mkdir()
    (tmp_path / "bvlc").mkdir()
    fork = check_conversion(tmp_path / "fork", net(type_, FORK_PARAMS[type_] + term),
                            {"dw/1": blobs}, {"data": x}, {"dw/1": want})
    bvlc = check_conversion(tmp_path / "bvlc",
                            net("Convolution", f"num_output: {C} group: {C} {GEOMETRY}{term}"),
                            {"dw/1": blobs}, {"data": x}, {"dw/1": want})
    # the identical model: the same layers, configurations and weights
    assert [type(layer).__name__ for layer in fork.layers] == \
        [type(layer).__name__ for layer in bvlc.layers]
    for a, b in zip(fork.layers, bvlc.layers):
        assert a.get_config() == b.get_config()
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_yonghenglh6_needs_one_filter_per_channel(tmp_path):
    prototxt, _ = write_net(tmp_path, net("DepthwiseConvolution", "num_output: 10 group: 5 "
                                                                  "kernel_size: 3"))
    with pytest.raises(StructureError, match=r"'dw/1' \(DepthwiseConvolution\).*group \(5\) "
                                             r"and num_output \(10\)"):
        caffe2keras.convert(prototxt)


def test_farmingyard_weights_must_be_one_filter_per_channel(tmp_path):
    """The fork allocates C x 1 x kh x kw whatever num_output says; other blobs are refused."""
    blobs = [normal((7, 1, 3, 2), seed=1), normal((7,), seed=2)]
    prototxt, caffemodel = write_net(tmp_path, net("ConvolutionDepthwise",
                                                   f"num_output: 7 {GEOMETRY}"), {"dw/1": blobs})
    with pytest.raises(WeightsMismatchError, match=r"'dw/1'.*\(7, 1, 3, 2\), expected "
                                                   r"\(5, 1, 3, 2\)"):
        caffe2keras.convert(prototxt, caffemodel)
