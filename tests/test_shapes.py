"""Shape inference against hand-computed values from Caffe's formulas.

Shapes are asymmetric on purpose (N != C != H != W, pad_h != pad_w, ...) so that a
rule reading the wrong axis or the wrong field gives a different number.
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2keras.errors import StructureError, WeightsMismatchError
from caffe2keras.ir import Layer, Net
from caffe2keras.proto import caffe_pb2
from caffe2keras.shapes import blob_rule, has_shape_rule, infer_shapes, shape_rule


def make_layer(text: str, blobs=()) -> Layer:
    p = text_format.Parse(text, caffe_pb2.LayerParameter())
    return Layer(p.name, p.type, list(p.bottom), list(p.top), p,
                 [np.zeros(s, np.float32) for s in blobs])


def run(inputs: dict, *layers: Layer, strict: bool = True) -> Net:
    net = Net("test", dict(inputs), list(layers))
    infer_shapes(net, strict=strict)
    return net


def tops(text: str, *bottoms, blobs=()) -> list[tuple]:
    """Top shapes of one layer whose bottoms are named b0, b1, ... in ``text``."""
    layer = make_layer(text, blobs)
    net = run({f"b{i}": s for i, s in enumerate(bottoms)}, layer)
    return [net.shapes[t] for t in layer.tops]


def one(text: str, *bottoms, blobs=()) -> tuple:
    (shape,) = tops(text, *bottoms, blobs=blobs)
    return shape


def conv(params: str, type_: str = "Convolution") -> str:
    return f'name: "conv" type: "{type_}" bottom: "b0" top: "t" convolution_param {{ {params} }}'


def pool(params: str) -> str:
    return f'name: "pool5" type: "Pooling" bottom: "b0" top: "t" pooling_param {{ {params} }}'


# --------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------

def test_convolution_hw_fields():
    # H: (13 + 2*1 - 3)//2 + 1 = 7;  W: (17 + 2*2 - 5)//3 + 1 = 6
    text = conv("num_output: 8 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 2 stride_h: 2 stride_w: 3")
    assert one(text, (2, 3, 13, 17)) == (2, 8, 7, 6)


def test_convolution_per_axis_repeated_fields():
    # H: (10 + 0 - 3)//1 + 1 = 8;  W: (12 + 2 - 5)//2 + 1 = 5
    text = conv("num_output: 5 kernel_size: 3 kernel_size: 5 stride: 1 stride: 2 pad: 0 pad: 1")
    assert one(text, (2, 3, 10, 12)) == (2, 5, 8, 5)


def test_convolution_dilation_per_axis():
    # extent_h = 2*(3-1)+1 = 5 -> 11-5+1 = 7;  extent_w = 3*(3-1)+1 = 7 -> 19-7+1 = 13
    text = conv("num_output: 6 kernel_size: 3 dilation: 2 dilation: 3")
    assert one(text, (1, 4, 11, 19)) == (1, 6, 7, 13)


def test_convolution_3d_and_axis():
    # three spatial axes: 5-3+1, 6-3+1, 7-3+1
    assert one(conv("num_output: 4 kernel_size: 3"), (2, 3, 5, 6, 7)) == (2, 4, 3, 4, 5)
    # axis 2: channels are shape[2] = 4, spatial (9, 10) -> (7, 8); leading (2, 3) kept
    assert one(conv("num_output: 6 kernel_size: 3 axis: 2"), (2, 3, 4, 9, 10)) == (2, 3, 6, 7, 8)


def test_convolution_blobs_with_group():
    text = conv("num_output: 6 kernel_h: 3 kernel_w: 2 group: 2")
    # weights (C_out, C_in/g, kh, kw) = (6, 4/2, 3, 2)
    assert one(text, (1, 4, 5, 7), blobs=[(6, 2, 3, 2), (6,)]) == (1, 6, 3, 6)
    message = r"'conv'.*blob 0.*\(6, 4, 3, 2\).*\(6, 2, 3, 2\)"
    with pytest.raises(WeightsMismatchError, match=message):
        one(text, (1, 4, 5, 7), blobs=[(6, 4, 3, 2), (6,)])


def test_convolution_without_bias_takes_one_blob():
    text = conv("num_output: 6 kernel_size: 1 bias_term: false")
    assert one(text, (1, 4, 5, 7), blobs=[(6, 4, 1, 1)]) == (1, 6, 5, 7)
    with pytest.raises(WeightsMismatchError, match="has 2 weight blob"):
        one(text, (1, 4, 5, 7), blobs=[(6, 4, 1, 1), (6,)])


def test_convolution_several_bottoms():
    layer = make_layer('name: "c" type: "Convolution" bottom: "x" bottom: "y" top: "tx" top: "ty" '
                       'convolution_param { num_output: 2 kernel_size: 3 }')
    net = run({"x": (1, 3, 6, 8), "y": (1, 3, 6, 8)}, layer)
    assert net.shapes["tx"] == net.shapes["ty"] == (1, 2, 4, 6)


@pytest.mark.parametrize("params, shape, message", [
    # extent 7 > 4 + 2*1
    ("num_output: 2 kernel_size: 7 pad: 1", (1, 3, 4, 9), "larger than the padded input"),
    ("num_output: 2 kernel_size: 1 group: 2", (1, 3, 4, 9), "group 2 must divide"),
    ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 3, 4, 9), "not both"),
    ("num_output: 2", (1, 3, 4, 9), "kernel_size must be given"),
    ("num_output: 2 kernel_size: 1 stride: 1 stride: 1 stride: 1", (1, 3, 4, 9), "stride"),
])
def test_convolution_errors(params, shape, message):
    with pytest.raises(StructureError, match=r"^layer 'conv' \(Convolution\): .*" + message):
        one(conv(params), shape)


# --------------------------------------------------------------------------
# Deconvolution
# --------------------------------------------------------------------------

def test_deconvolution_shape_and_blobs():
    # H: 2*(5-1) + 4 - 2*1 = 10;  W: 3*(7-1) + 3 - 0 = 21; weights (C_in, C_out/g, kh, kw)
    text = conv("num_output: 6 kernel_h: 4 kernel_w: 3 stride_h: 2 stride_w: 3 pad_h: 1 group: 2",
                "Deconvolution")
    assert one(text, (2, 4, 5, 7), blobs=[(4, 3, 4, 3), (6,)]) == (2, 6, 10, 21)


def test_deconvolution_dilation():
    # H: 1*(3-1) + 2*(3-1) + 1 = 7;  W: 1*(4-1) + 5 = 8
    assert one(conv("num_output: 5 kernel_size: 3 dilation: 2", "Deconvolution"),
               (1, 2, 3, 4)) == (1, 5, 7, 8)


def test_deconvolution_cropping_everything_is_an_error():
    # 1*(1-1) + 1 - 2*1 = -1
    with pytest.raises(StructureError, match=r"'conv' \(Deconvolution\).*not positive"):
        one(conv("num_output: 2 kernel_size: 1 pad: 1", "Deconvolution"), (1, 2, 1, 3))


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------

def test_pooling_ceil_without_clip():
    # H: ceil((13+2-3)/2)+1 = 7, (7-1)*2 = 12 >= 13+1? no -> 7
    # W: ceil((6+2-3)/2)+1 = ceil(2.5)+1 = 4, (4-1)*2 = 6 >= 6+1? no -> 4
    assert one(pool("pool: MAX kernel_size: 3 stride: 2 pad: 1"), (2, 5, 13, 6)) == (2, 5, 7, 4)


def test_pooling_clip_rule_triggers():
    # H=5: ceil((5+2-2)/3)+1 = 3, (3-1)*3 = 6 >= 5+1 -> 2
    # W=8: ceil((8+2-2)/3)+1 = 4, (4-1)*3 = 9 >= 8+1 -> 3
    assert one(pool("pool: AVE kernel_size: 2 stride: 3 pad: 1"), (1, 2, 5, 8)) == (1, 2, 2, 3)


def test_pooling_clip_applies_to_the_unpadded_axis_too():
    # pad_h=1 turns the clip on for both axes.
    # H: ceil((4+2-2)/1)+1 = 5, 4 >= 5? no -> 5;  W: ceil((5-1)/3)+1 = 3, 6 >= 5+0 -> 2
    text = pool("kernel_h: 2 kernel_w: 1 stride_h: 1 stride_w: 3 pad_h: 1 pad_w: 0")
    assert one(text, (1, 1, 4, 5)) == (1, 1, 5, 2)
    # without any padding there is no clip: H (4-2)/1+1 = 3, W ceil(4/3)+1 = 3
    text = pool("kernel_h: 2 kernel_w: 1 stride_h: 1 stride_w: 3")
    assert one(text, (1, 1, 4, 5)) == (1, 1, 3, 3)


@pytest.mark.parametrize("mode, expected", [
    ("", (1, 1, 3, 5)),                   # W: ceil((10-3)/2)+1 = 5
    ("ceil_mode: false", (1, 1, 3, 4)),   # W: floor(3.5)+1 = 4
    ("round_mode: FLOOR", (1, 1, 3, 4)),
    ("ceil_mode: true", (1, 1, 3, 5)),
])
def test_pooling_round_mode(mode, expected):
    # H: (7-3)/2+1 = 3 either way
    assert one(pool(f"kernel_size: 3 stride: 2 {mode}"), (1, 1, 7, 10)) == expected


def test_pooling_stride_hw_and_global():
    # H: ceil((4-2)/1)+1 = 3; W: ceil((9-2)/2)+1 = 5
    assert one(pool("kernel_size: 2 stride_h: 1 stride_w: 2"), (1, 3, 4, 9)) == (1, 3, 3, 5)
    assert one(pool("pool: AVE global_pooling: true"), (2, 7, 5, 9)) == (2, 7, 1, 1)


def test_pooling_mask_top():
    text = ('name: "p" type: "Pooling" bottom: "b0" top: "t" top: "mask" '
            'pooling_param { kernel_size: 2 stride: 2 }')
    assert tops(text, (1, 3, 6, 9)) == [(1, 3, 3, 5), (1, 3, 3, 5)]


@pytest.mark.parametrize("params, shape, message", [
    ("kernel_size: 5", (1, 1, 2, 9), "larger than the padded input height"),
    ("kernel_size: 2 pad: 2", (1, 1, 6, 9), "must be smaller than the kernel"),
    ("global_pooling: true kernel_size: 2", (1, 1, 6, 9), "takes no kernel size"),
    ("global_pooling: true stride: 2", (1, 1, 6, 9), "pad 0 and stride 1"),
    ("kernel_size: 3 pad_h: 1", (1, 1, 6, 9), "both pad_h and pad_w"),
    ("kernel_h: 3", (1, 1, 6, 9), "kernel_size or both"),
    ("pool: STOCHASTIC kernel_size: 3 pad: 1", (1, 1, 6, 9), "STOCHASTIC"),
    ("kernel_size: 2 ceil_mode: true round_mode: FLOOR", (1, 1, 6, 9), "disagree"),
    ("kernel_size: 2", (1, 6, 9), "must have 4 axes"),
])
def test_pooling_errors(params, shape, message):
    with pytest.raises(StructureError, match=r"^layer 'pool5' \(Pooling\): .*" + message):
        one(pool(params), shape)


# --------------------------------------------------------------------------
# InnerProduct, Embed
# --------------------------------------------------------------------------

def ip(params: str) -> str:
    return (f'name: "fc" type: "InnerProduct" bottom: "b0" top: "t" '
            f'inner_product_param {{ {params} }}')


def test_inner_product_shapes_and_blobs():
    # K = 3*4*5 = 60
    assert one(ip("num_output: 7"), (2, 3, 4, 5), blobs=[(7, 60), (7,)]) == (2, 7)
    assert one(ip("num_output: 7 transpose: true"), (2, 3, 4, 5), blobs=[(60, 7), (7,)]) == (2, 7)
    # axis 2: K = 4*5 = 20, leading (2, 3) kept; axis -1: K = 5
    assert one(ip("num_output: 7 axis: 2"), (2, 3, 4, 5), blobs=[(7, 20), (7,)]) == (2, 3, 7)
    assert one(ip("num_output: 7 axis: -1 bias_term: false"), (2, 3, 4, 5),
               blobs=[(7, 5)]) == (2, 3, 4, 7)


def test_inner_product_legacy_blobs_are_reshaped():
    layer = make_layer(ip("num_output: 7"), blobs=[(1, 1, 7, 60), (1, 1, 1, 7)])
    run({"b0": (2, 3, 4, 5)}, layer)
    assert [b.shape for b in layer.blobs] == [(7, 60), (7,)]


@pytest.mark.parametrize("blobs, message", [
    ([(60, 7), (7,)], r"blob 0 has shape \(60, 7\), expected \(7, 60\)"),      # needs transpose
    ([(1, 1, 60, 7), (7,)], r"blob 0 has shape \(1, 1, 60, 7\)"),              # legacy, swapped
    ([(1, 7, 60), (7,)], r"blob 0 has shape \(1, 7, 60\)"),                    # not 4-D legacy
    ([(7, 60), (8,)], r"blob 1 has shape \(8,\), expected \(7,\)"),
    ([(7, 60)], r"has 1 weight blob\(s\), Caffe expects 2"),
])
def test_inner_product_weight_mismatch(blobs, message):
    with pytest.raises(WeightsMismatchError, match=r"^layer 'fc' \(InnerProduct\): " + message):
        one(ip("num_output: 7"), (2, 3, 4, 5), blobs=blobs)


def test_embed():
    text = ('name: "e" type: "Embed" bottom: "b0" top: "t" '
            'embed_param { num_output: 8 input_dim: 100 }')
    assert one(text, (4, 6), blobs=[(100, 8), (8,)]) == (4, 6, 8)
    with pytest.raises(WeightsMismatchError, match=r"expected \(100, 8\)"):
        one(text, (4, 6), blobs=[(8, 100), (8,)])


# --------------------------------------------------------------------------
# Normalisation and per-channel parameters
# --------------------------------------------------------------------------

def test_lrn():
    text = ('name: "n" type: "LRN" bottom: "b0" top: "t" '
            'lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL }')
    assert one(text, (2, 5, 6, 7)) == (2, 5, 6, 7)
    with pytest.raises(StructureError, match="local_size must be odd"):
        one('name: "n" type: "LRN" bottom: "b0" top: "t" lrn_param { local_size: 4 }', (2, 5, 6, 7))


BN = 'name: "bn" type: "BatchNorm" bottom: "b0" top: "t"'


def test_batch_norm_blobs():
    assert one(BN, (2, 6, 3, 4), blobs=[(6,), (6,), (1,)]) == (2, 6, 3, 4)
    layer = make_layer(BN, blobs=[(1, 1, 1, 6), (1, 1, 1, 6), (1, 1, 1, 1)])
    run({"b0": (2, 6, 3, 4)}, layer)
    assert [b.shape for b in layer.blobs] == [(6,), (6,), (1,)]
    with pytest.raises(WeightsMismatchError, match=r"blob 1 has shape \(3,\), expected \(6,\)"):
        one(BN, (2, 6, 3, 4), blobs=[(6,), (3,), (1,)])
    with pytest.raises(WeightsMismatchError, match="has 2 weight blob"):
        one(BN, (2, 6, 3, 4), blobs=[(6,), (6,)])


def test_batch_norm_extra_blobs_warn():
    net = run({"b0": (2, 6, 3, 4)}, make_layer(BN, blobs=[(6,), (6,), (1,), (6,)]))
    assert len(net.warnings) == 1 and "'bn'" in net.warnings[0]


def scale(params: str, bottoms=("b0",), type_="Scale") -> str:
    field = "scale_param" if type_ == "Scale" else "bias_param"
    bottom = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'name: "s" type: "{type_}" {bottom} top: "t" {field} {{ {params} }}'


@pytest.mark.parametrize("params, blobs", [
    ("bias_term: true", [(6,), (6,)]),
    ("axis: 2 num_axes: 2", [(3, 4)]),
    ("num_axes: -1 bias_term: true", [(6, 3, 4), (6, 3, 4)]),
    ("num_axes: 0", [()]),
    ("axis: -2", [(3,)]),
])
def test_scale_learned_blobs(params, blobs):
    assert one(scale(params), (2, 6, 3, 4), blobs=blobs) == (2, 6, 3, 4)
    wrong = [tuple(d + 1 for d in blobs[0]) or (2,)] + blobs[1:]
    with pytest.raises(WeightsMismatchError, match="blob 0"):
        one(scale(params), (2, 6, 3, 4), blobs=wrong)


def test_scale_two_bottoms():
    text = scale("bias_term: true", ("b0", "b1"))
    # the only blob is the bias, shaped like the second bottom's span of the input
    assert one(text, (2, 6, 3, 4), (6, 3), blobs=[(6, 3)]) == (2, 6, 3, 4)
    with pytest.raises(StructureError, match=r"'s' \(Scale\): second bottom \(6, 4\)"):
        one(text, (2, 6, 3, 4), (6, 4))


def test_scale_axes_past_the_end():
    with pytest.raises(StructureError, match="extends past"):
        one(scale("axis: 2 num_axes: 3"), (2, 6, 3, 4))


def test_bias():
    assert one(scale("axis: 1", type_="Bias"), (2, 6, 3, 4), blobs=[(6,)]) == (2, 6, 3, 4)
    with pytest.raises(WeightsMismatchError, match="has 1 weight blob"):
        one(scale("", ("b0", "b1"), "Bias"), (2, 6, 3, 4), (6,), blobs=[(6,)])


@pytest.mark.parametrize("type_, field", [("PReLU", "prelu_param"), ("Normalize", "norm_param")])
def test_channel_shared_blobs(type_, field):
    per_channel = f'name: "a" type: "{type_}" bottom: "b0" top: "t"'
    shared = per_channel + f" {field} {{ channel_shared: true }}"
    if type_ == "Normalize":   # SSD's default is channel_shared: true
        per_channel += f" {field} {{ channel_shared: false }}"
    assert one(per_channel, (2, 6, 3, 4), blobs=[(6,)]) == (2, 6, 3, 4)
    layer = make_layer(shared, blobs=[()])   # Caffe stores a 0-axis blob
    run({"b0": (2, 6, 3, 4)}, layer)
    assert layer.blobs[0].shape == (1,)
    with pytest.raises(WeightsMismatchError, match=r"expected \(1,\)"):
        one(shared, (2, 6, 3, 4), blobs=[(6,)])
    with pytest.raises(WeightsMismatchError, match=r"expected \(6,\)"):
        one(per_channel, (2, 6, 3, 4), blobs=[(1,)])


def test_mvn_reshapes_to_four_axes():
    text = 'name: "m" type: "MVN" bottom: "b0" top: "t"'
    assert one(text, (2, 6, 3, 4)) == (2, 6, 3, 4)
    assert one(text, (5, 7)) == (5, 7, 1, 1)


# --------------------------------------------------------------------------
# Same-shape layers, Softmax, Eltwise, Axpy
# --------------------------------------------------------------------------

@pytest.mark.parametrize("type_", ["ReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "Power", "Exp",
                                   "Log", "BNLL", "Threshold", "Dropout", "ReLU6", "HardSwish",
                                   "HardSigmoid", "Swish", "Clip"])
def test_same_shape_layers(type_):
    assert one(f'name: "a" type: "{type_}" bottom: "b0" top: "t"', (2, 3, 4, 5)) == (2, 3, 4, 5)
    with pytest.raises(StructureError, match="takes 1 bottom"):
        one(f'name: "a" type: "{type_}" bottom: "b0" bottom: "b1" top: "t"', (2, 3), (2, 3))


def test_exp_base_must_be_positive():
    with pytest.raises(StructureError, match="base must be positive"):
        one('name: "e" type: "Exp" bottom: "b0" top: "t" exp_param { base: -2 }', (2, 3))


def test_softmax_axis():
    text = 'name: "s" type: "Softmax" bottom: "b0" top: "t" softmax_param { axis: %d }'
    assert one(text % -1, (2, 3, 4, 5)) == (2, 3, 4, 5)
    with pytest.raises(StructureError, match="axis 4 is out of range"):
        one(text % 4, (2, 3, 4, 5))


ELT = 'name: "e" type: "Eltwise" bottom: "b0" bottom: "b1" top: "t"'


def test_eltwise():
    text = ELT + " eltwise_param { coeff: 1 coeff: -1 }"
    assert one(text, (2, 3, 4, 5), (2, 3, 4, 5)) == (2, 3, 4, 5)
    message = r"'e' \(Eltwise\): all bottoms must have the same shape"
    with pytest.raises(StructureError, match=message):
        one(ELT, (2, 3, 4, 5), (2, 3, 5, 4))
    with pytest.raises(StructureError, match="one coeff per bottom"):
        one(ELT + " eltwise_param { coeff: 1 }", (2, 3), (2, 3))
    with pytest.raises(StructureError, match="only allowed for SUM"):
        one(ELT + " eltwise_param { operation: PROD coeff: 1 coeff: 1 }", (2, 3), (2, 3))


def test_axpy():
    text = 'name: "a" type: "Axpy" bottom: "b0" bottom: "b1" bottom: "b2" top: "t"'
    assert one(text, (2, 6, 1, 1), (2, 6, 3, 4), (2, 6, 3, 4)) == (2, 6, 3, 4)
    with pytest.raises(StructureError, match="must be"):
        one(text, (2, 5, 1, 1), (2, 6, 3, 4), (2, 6, 3, 4))


# --------------------------------------------------------------------------
# Routing and rearranging
# --------------------------------------------------------------------------

CONCAT = 'name: "cat" type: "Concat" bottom: "b0" bottom: "b1" top: "t"'


def test_concat():
    assert one(CONCAT, (2, 3, 4, 5), (2, 7, 4, 5)) == (2, 10, 4, 5)
    assert one(CONCAT + " concat_param { axis: -1 }", (2, 3, 4, 5), (2, 3, 4, 6)) == (2, 3, 4, 11)
    legacy = CONCAT + " concat_param { concat_dim: 2 }"
    assert one(legacy, (2, 3, 4, 5), (2, 3, 1, 5)) == (2, 3, 5, 5)
    with pytest.raises(StructureError, match=r"'cat' \(Concat\): bottoms .* differ"):
        one(CONCAT, (2, 3, 4, 5), (2, 3, 4, 6))
    with pytest.raises(StructureError, match="not both"):
        one(CONCAT + " concat_param { axis: 1 concat_dim: 1 }", (2, 3), (2, 3))


def test_split_and_silence():
    split = make_layer('name: "s" type: "Split" bottom: "x" top: "a" top: "b" top: "c"')
    silence = make_layer('name: "q" type: "Silence" bottom: "a" bottom: "b"')
    net = run({"x": (2, 3, 4)}, split, silence)
    assert net.shapes == {"x": (2, 3, 4), "a": (2, 3, 4), "b": (2, 3, 4), "c": (2, 3, 4)}


@pytest.mark.parametrize("params, expected", [
    ("", (2, 60)),
    ("axis: 2 end_axis: 3", (2, 3, 20)),
    ("axis: 1 end_axis: 2", (2, 12, 5)),
])
def test_flatten(params, expected):
    text = f'name: "f" type: "Flatten" bottom: "b0" top: "t" flatten_param {{ {params} }}'
    assert one(text, (2, 3, 4, 5)) == expected


def reshape(params: str) -> str:
    return f'name: "r" type: "Reshape" bottom: "b0" top: "t" reshape_param {{ {params} }}'


@pytest.mark.parametrize("params, expected", [
    ("shape { dim: 0 dim: -1 }", (2, 60)),
    ("shape { dim: 0 dim: 4 dim: -1 }", (2, 4, 15)),         # 120 / (2*4) = 15
    ("shape { dim: 12 } axis: 1 num_axes: 2", (2, 12, 5)),
    ("shape { dim: 1 } axis: -1 num_axes: 0", (2, 3, 4, 5, 1)),
    # start 2, end 3: (2, 3) + (0 -> input axis 2 = 4, -1 -> 120/(2*3*4*5) = 1) + (5,)
    ("shape { dim: 0 dim: -1 } axis: 2 num_axes: 1", (2, 3, 4, 1, 5)),
])
def test_reshape(params, expected):
    assert one(reshape(params), (2, 3, 4, 5)) == expected


@pytest.mark.parametrize("params, message", [
    ("shape { dim: 7 dim: -1 }", "not divisible by 7"),
    ("shape { dim: 2 dim: 3 dim: 4 dim: 6 }", "holds 144 elements"),
    ("shape { dim: -1 dim: -1 }", "more than one -1"),
    ("shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 0 }", "no input axis to copy"),
])
def test_reshape_errors(params, message):
    with pytest.raises(StructureError, match=r"^layer 'r' \(Reshape\): .*" + message):
        one(reshape(params), (2, 3, 4, 5))


def slice_layer(params: str, n_tops: int) -> str:
    top = " ".join(f'top: "t{i}"' for i in range(n_tops))
    return f'name: "sl" type: "Slice" bottom: "b0" {top} slice_param {{ {params} }}'


def test_slice():
    assert tops(slice_layer("slice_point: 2 slice_point: 7", 3), (2, 9, 4, 5)) == [
        (2, 2, 4, 5), (2, 5, 4, 5), (2, 2, 4, 5)]
    assert tops(slice_layer("axis: -1", 3), (2, 9, 4, 6)) == [(2, 9, 4, 2)] * 3
    assert tops(slice_layer("slice_dim: 2 slice_point: 1", 2), (2, 9, 4, 5)) == [
        (2, 9, 1, 5), (2, 9, 3, 5)]


@pytest.mark.parametrize("params, n_tops, message", [
    ("slice_point: 9", 2, "must increase strictly"),       # a point at the end: empty slice
    ("slice_point: 5 slice_point: 3", 3, "must increase strictly"),
    ("slice_point: 3", 3, "1 slice points for 3 tops"),
    ("", 2, "cannot be split evenly"),
])
def test_slice_errors(params, n_tops, message):
    with pytest.raises(StructureError, match=r"'sl' \(Slice\)"):
        tops(slice_layer(params, n_tops), (2, 9, 4, 5))
    with pytest.raises(StructureError, match=message):
        tops(slice_layer(params, n_tops), (2, 9, 4, 5))


CROP = 'name: "crop" type: "Crop" bottom: "b0" bottom: "b1" top: "t"'


def test_crop():
    per_axis = CROP + " crop_param { offset: 1 offset: 2 }"
    assert one(per_axis, (2, 3, 10, 12), (1, 1, 7, 8)) == (2, 3, 7, 8)
    assert one(CROP + " crop_param { axis: 1 }", (2, 3, 10, 12), (5, 2, 6, 6)) == (2, 2, 6, 6)
    with pytest.raises(StructureError, match=r"'crop' \(Crop\): crop to 11"):
        one(CROP, (2, 3, 10, 12), (1, 1, 11, 8))
    # offset 4: 10 - 4 = 6 < 7
    with pytest.raises(StructureError, match="offset 4"):
        one(CROP + " crop_param { offset: 4 }", (2, 3, 10, 12), (1, 1, 7, 8))


def test_permute():
    text = 'name: "p" type: "Permute" bottom: "b0" top: "t" permute_param { %s }'
    assert one(text % "order: 0 order: 2 order: 3 order: 1", (2, 3, 4, 5)) == (2, 4, 5, 3)
    assert one(text % "order: 0 order: 2", (2, 3, 4, 5)) == (2, 4, 3, 5)   # 1, 3 follow
    with pytest.raises(StructureError, match="not a permutation"):
        one(text % "order: 0 order: 0", (2, 3, 4, 5))


def test_tile_and_reduction():
    tile = 'name: "t" type: "Tile" bottom: "b0" top: "t" tile_param { axis: 1 %s }'
    assert one(tile % "tiles: 3", (2, 3, 4)) == (2, 9, 4)
    with pytest.raises(StructureError, match="tiles must be given"):
        one(tile % "", (2, 3, 4))
    red = 'name: "r" type: "Reduction" bottom: "b0" top: "t" reduction_param { %s }'
    assert one(red % "axis: 2", (2, 3, 4, 5)) == (2, 3)
    assert one(red % "", (2, 3, 4, 5)) == ()


@pytest.mark.parametrize("params, shape, expected", [
    ("top_k: 2", (2, 10, 3), (2, 1, 2)),                     # at least 3 axes: (N, 1, k)
    ("top_k: 2 out_max_val: true", (2, 10, 3), (2, 2, 2)),   # index and value
    ("", (2, 10, 3, 4), (2, 1, 1, 1)),
    ("top_k: 3 axis: 1", (2, 10, 3, 4), (2, 3, 3, 4)),
    ("out_max_val: true axis: -1", (2, 10, 3, 4), (2, 10, 3, 1)),
])
def test_argmax(params, shape, expected):
    text = f'name: "am" type: "ArgMax" bottom: "b0" top: "t" argmax_param {{ {params} }}'
    assert one(text, shape) == expected


def test_argmax_top_k_too_large():
    with pytest.raises(StructureError, match="top_k 5 exceeds axis 2 of size 3"):
        one('name: "am" type: "ArgMax" bottom: "b0" top: "t" argmax_param { top_k: 5 axis: 2 }',
            (2, 10, 3, 4))


def test_input_layer():
    layer = make_layer('name: "in" type: "Input" top: "x" top: "y" '
                       'input_param { shape { dim: 1 dim: 3 dim: 8 dim: 9 } '
                       'shape { dim: 1 dim: 5 } }')
    net = run({}, layer)
    assert (net.shapes["x"], net.shapes["y"]) == ((1, 3, 8, 9), (1, 5))


# --------------------------------------------------------------------------
# Detection, resizing, channel shuffles
# --------------------------------------------------------------------------

def prior_box(params: str) -> str:
    return (f'name: "pb" type: "PriorBox" bottom: "b0" bottom: "b1" top: "t" '
            f'prior_box_param {{ {params} }}')


@pytest.mark.parametrize("params, priors", [
    ("min_size: 30 max_size: 60 aspect_ratio: 2", 4),                  # [1, 2, 1/2] + max
    ("min_size: 30 max_size: 60 aspect_ratio: 2 aspect_ratio: 3", 6),  # [1, 2, 1/2, 3, 1/3] + max
    ("min_size: 30 aspect_ratio: 2 aspect_ratio: 0.5", 3),             # 0.5 already there
    ("min_size: 30 aspect_ratio: 2 aspect_ratio: 3 flip: false", 3),   # [1, 2, 3]
    ("min_size: 30 aspect_ratio: 1", 1),                               # 1 is always there
    ("min_size: 30 min_size: 60 max_size: 60 max_size: 90 aspect_ratio: 2", 8),  # 3*2 + 2
])
def test_prior_box(params, priors):
    # feature map 3x5: 3*5*priors*4 values
    assert one(prior_box(params), (1, 8, 3, 5), (1, 3, 300, 500)) == (1, 2, 3 * 5 * priors * 4)


@pytest.mark.parametrize("params, message", [
    ("aspect_ratio: 2", "min_size is required"),
    ("min_size: 30 max_size: 20", "greater than its min_size"),
])
def test_prior_box_errors(params, message):
    with pytest.raises(StructureError, match=message):
        one(prior_box(params), (1, 8, 3, 5), (1, 3, 300, 500))


DETECT = ('name: "det" type: "DetectionOutput" bottom: "b0" bottom: "b1" bottom: "b2" top: "t" '
          'detection_output_param { num_classes: 21 %s }')


def test_detection_output():
    # priors (1, 2, 240): 60 boxes -> 240 locations, 60*21 = 1260 confidences per item
    assert one(DETECT % "", (2, 240), (2, 1260), (1, 2, 240)) == (1, 1, 1, 7)
    # share_location false: 60*21*4 = 5040 locations
    assert one(DETECT % "share_location: false", (2, 5040), (2, 1260), (1, 2, 240)) == (1, 1, 1, 7)
    with pytest.raises(StructureError, match=r"'det' \(DetectionOutput\): 60 priors need 1260"):
        one(DETECT % "", (2, 240), (2, 1200), (1, 2, 240))


def test_upsample():
    text = 'name: "u" type: "Upsample" bottom: "b0" top: "t" upsample_param { scale: 2 %s }'
    assert one(text % "", (2, 3, 4, 5)) == (2, 3, 8, 10)
    assert one(text % "dims_num: 3", (2, 3, 5)) == (2, 3, 10)
    with pytest.raises(StructureError, match="dims_num must be 3 or 4"):
        one(text % "dims_num: 5", (2, 3, 4, 5))


INTERP = 'name: "i" type: "Interp" bottom: "b0" top: "t" interp_param { %s }'


@pytest.mark.parametrize("params, expected", [
    ("zoom_factor: 2", (1, 3, 17, 25)),                    # 9 + 8*1, 13 + 12*1
    ("shrink_factor: 2", (1, 3, 5, 7)),                    # (9-1)//2+1, (13-1)//2+1
    ("shrink_factor: 2 zoom_factor: 3", (1, 3, 13, 19)),   # 5 + 4*2, 7 + 6*2
    ("height: 20 width: 30", (1, 3, 20, 30)),
    ("zoom_factor: 2 height: 20 width: 30", (1, 3, 17, 25)),  # a factor wins over height/width
    ("zoom_factor: 2 pad_beg: -1 pad_end: -2", (1, 3, 11, 19)),  # eff 6 -> 6+5, eff 10 -> 10+9
])
def test_interp(params, expected):
    assert one(INTERP % params, (1, 3, 9, 13)) == expected


def test_interp_second_bottom_and_errors():
    text = 'name: "i" type: "Interp" bottom: "b0" bottom: "b1" top: "t"'
    assert one(text, (1, 3, 9, 13), (1, 8, 21, 33)) == (1, 3, 21, 33)
    with pytest.raises(StructureError, match="may only crop"):
        one(INTERP % "zoom_factor: 2 pad_beg: 1", (1, 3, 9, 13))
    with pytest.raises(StructureError, match="give zoom_factor"):
        one(INTERP % "", (1, 3, 9, 13))


def test_shuffle_pixel_shuffle_and_pad():
    shuffle = ('name: "s" type: "ShuffleChannel" bottom: "b0" top: "t" '
               'shuffle_channel_param { group: %d }')
    assert one(shuffle % 3, (2, 6, 3, 4)) == (2, 6, 3, 4)
    with pytest.raises(StructureError, match="group 4 must divide"):
        one(shuffle % 4, (2, 6, 3, 4))
    pixel = ('name: "ps" type: "PixelShuffle" bottom: "b0" top: "t" '
             'pixelshuffle_param { upscale_factor: 3 }')
    assert one(pixel, (1, 18, 3, 4)) == (1, 2, 9, 12)
    pad = 'name: "pd" type: "Pad" bottom: "b0" top: "t" pad_param { pad_u: 1 pad_d: 2 pad_l: 3 }'
    assert one(pad, (1, 3, 4, 5)) == (1, 3, 7, 8)


# --------------------------------------------------------------------------
# The walk itself
# --------------------------------------------------------------------------

@pytest.mark.parametrize("shape, message", [
    ((1, -3, 4, 4), "not positive"),
    ((1, 0, 4, 4), "not positive"),
    ((2**16, 2**16, 2), "more than Caffe's limit"),
    ((2**31,), "more than Caffe's limit"),
    ((1, 3.0, 4, 4), "not a sequence of integers"),
])
def test_bad_input_shapes(shape, message):
    with pytest.raises(StructureError, match=r"^input 'data': .*" + message):
        run({"data": shape})


def test_largest_input_is_accepted():
    assert run({"data": (2**31 - 1,)}).shapes == {"data": (2**31 - 1,)}


def test_output_larger_than_caffe_allows():
    # (2**15, 2) tiled 2**16 times on axis 0 -> (2**31, 2): 2**32 elements > 2**31 - 1
    text = 'name: "t" type: "Tile" bottom: "b0" top: "t" tile_param { axis: 0 tiles: 65536 }'
    with pytest.raises(StructureError, match=r"^layer 't' \(Tile\): top 't': .*limit"):
        one(text, (2**15, 2))


def test_unknown_type_strict_and_lenient():
    layers = [
        make_layer('name: "odd" type: "MysteryLayer" bottom: "x" top: "m"'),
        make_layer('name: "after" type: "ReLU" bottom: "m" top: "r"'),
        make_layer('name: "side" type: "TanH" bottom: "x" top: "s"'),
    ]
    with pytest.raises(StructureError, match=r"'odd' \(MysteryLayer\): no shape rule"):
        run({"x": (2, 3)}, *layers)
    net = run({"x": (2, 3)}, *layers, strict=False)
    assert net.shapes == {"x": (2, 3), "s": (2, 3)}


def test_dangling_bottom():
    with pytest.raises(StructureError, match=r"'r' \(ReLU\): bottom 'nowhere'"):
        run({"x": (2, 3)}, make_layer('name: "r" type: "ReLU" bottom: "nowhere" top: "t"'))


def test_top_count_mismatch():
    message = r"'r' \(ReLU\): produces 1 top\(s\), the layer lists 2"
    with pytest.raises(StructureError, match=message):
        run({"x": (2, 3)}, make_layer('name: "r" type: "ReLU" bottom: "x" top: "a" top: "b"'))


def test_blobs_on_a_parameterless_layer():
    with pytest.raises(WeightsMismatchError, match=r"'r' \(ReLU\): has 1 weight blob"):
        one('name: "r" type: "ReLU" bottom: "b0" top: "t"', (2, 3), blobs=[(3,)])


def test_chain_fills_every_value():
    net = run(
        {"b0": (2, 3, 13, 17)},
        make_layer(conv("num_output: 8 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 2 "
                        "stride_h: 2 stride_w: 3")),
        make_layer('name: "relu" type: "ReLU" bottom: "t" top: "r"'),
        make_layer('name: "pool" type: "Pooling" bottom: "r" top: "p" '
                   'pooling_param { kernel_size: 3 stride: 2 pad: 1 }'),
        make_layer(ip("num_output: 10").replace('"b0"', '"p"').replace('top: "t"', 'top: "fc"'),
                   blobs=[(10, 128), (10,)]),
    )
    # conv (2, 8, 7, 6); pool H ceil(6/2)+1 = 4, W ceil(5/2)+1 = 4; K = 8*4*4 = 128
    assert net.shapes == {"b0": (2, 3, 13, 17), "t": (2, 8, 7, 6), "r": (2, 8, 7, 6),
                          "p": (2, 8, 4, 4), "fc": (2, 10)}


def test_registry():
    assert has_shape_rule("Convolution") and has_shape_rule("Axpy")
    assert not has_shape_rule("MysteryLayer")
    with pytest.raises(ValueError, match="registered twice"):
        shape_rule("ReLU")(lambda layer, bottoms: [])
    with pytest.raises(ValueError, match="registered twice"):
        blob_rule("InnerProduct")(lambda layer, bottoms: [])
