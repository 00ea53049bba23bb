"""Upgrading V0 and V1 Caffe nets to the V2 format (caffe2keras.reader.upgrade)."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from caffe2keras.errors import StructureError
from caffe2keras.proto import caffe_pb2
from caffe2keras.reader.upgrade import net_format, upgrade_net

SOURCE = "nets/old.prototxt"


def parse(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def round_trip(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """What a binary caffemodel of ``net`` reads back as."""
    again = caffe_pb2.NetParameter()
    again.ParseFromString(net.SerializeToString())
    return again


def by_name(net: caffe_pb2.NetParameter) -> dict:
    return {layer.name: layer for layer in net.layer}


V1_NET = """
name: "v1net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 17 input_dim: 19
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  param: "conv1_w" param: "conv1_b"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 7 kernel_size: 5 pad: 2 stride: 3 group: 1 bias_term: true }
  include { phase: TEST }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.25 } }
layers {
  name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }
}
layers { name: "norm1" type: LRN bottom: "pool1" top: "norm1"
         lrn_param { local_size: 3 alpha: 0.002 beta: 0.6 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "norm1" top: "fc"
         inner_product_param { num_output: 11 } exclude { phase: TRAIN } }
layers { name: "drop" type: DROPOUT bottom: "fc" top: "fc" dropout_param { dropout_ratio: 0.3 } }
layers { name: "slice" type: SLICE bottom: "fc" top: "a" top: "b"
         slice_param { axis: 1 slice_point: 4 } }
layers { name: "sum" type: ELTWISE bottom: "a" bottom: "a" top: "sum"
         eltwise_param { operation: PROD } }
layers { name: "cat" type: CONCAT bottom: "sum" bottom: "b" top: "cat" concat_param { axis: 1 } }
layers { name: "pow" type: POWER bottom: "cat" top: "pow" power_param { power: 2 scale: 3 shift: 4 } }
layers { name: "thr" type: THRESHOLD bottom: "pow" top: "thr" threshold_param { threshold: 0.7 } }
layers { name: "prob" type: SOFTMAX_LOSS bottom: "thr" top: "prob" loss_weight: 0.5
         loss_param { ignore_label: 3 } }
"""


# ---------------------------------------------------------------- net_format

def test_net_format_tells_the_three_generations_apart():
    assert net_format(parse('layer { name: "r" type: "ReLU" }')) == "V2"
    assert net_format(caffe_pb2.NetParameter()) == "V2"
    assert net_format(parse(V1_NET)) == "V1"
    assert net_format(parse(V0_NET)) == "V0"


# ---------------------------------------------------------------- V1 -> V2

def test_v1_types_become_v2_strings():
    net = upgrade_net(parse(V1_NET), SOURCE)
    assert net_format(net) == "V2"
    assert len(net.layers) == 0
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("conv1", "Convolution"), ("relu1", "ReLU"), ("pool1", "Pooling"), ("norm1", "LRN"),
        ("fc", "InnerProduct"), ("drop", "Dropout"), ("slice", "Slice"), ("sum", "Eltwise"),
        ("cat", "Concat"), ("pow", "Power"), ("thr", "Threshold"), ("prob", "SoftmaxWithLoss"),
    ]


def test_v1_connections_and_net_fields_are_kept():
    net = upgrade_net(parse(V1_NET), SOURCE)
    layers = by_name(net)
    assert net.name == "v1net"
    assert list(net.input) == ["data"] and list(net.input_dim) == [1, 3, 17, 19]
    assert list(layers["slice"].top) == ["a", "b"]
    assert list(layers["sum"].bottom) == ["a", "a"]
    assert list(layers["relu1"].bottom) == ["conv1"] and list(layers["relu1"].top) == ["conv1"]
    assert [rule.phase for rule in layers["conv1"].include] == [caffe_pb2.TEST]
    assert [rule.phase for rule in layers["fc"].exclude] == [caffe_pb2.TRAIN]
    assert list(layers["prob"].loss_weight) == [0.5]


def test_v1_sub_params_are_copied():
    layers = by_name(upgrade_net(parse(V1_NET), SOURCE))
    conv = layers["conv1"].convolution_param
    assert (conv.num_output, list(conv.kernel_size), list(conv.pad), list(conv.stride)) == (
        7, [5], [2], [3])
    pool = layers["pool1"].pooling_param
    assert (pool.pool, pool.kernel_size, pool.stride, pool.pad) == (
        caffe_pb2.PoolingParameter.AVE, 3, 2, 1)
    lrn = layers["norm1"].lrn_param
    assert lrn.local_size == 3 and lrn.alpha == pytest.approx(0.002) and lrn.beta == pytest.approx(0.6)
    assert layers["relu1"].relu_param.negative_slope == 0.25
    assert layers["fc"].inner_product_param.num_output == 11
    assert layers["drop"].dropout_param.dropout_ratio == pytest.approx(0.3)
    assert list(layers["slice"].slice_param.slice_point) == [4]
    assert layers["sum"].eltwise_param.operation == caffe_pb2.EltwiseParameter.PROD
    assert layers["cat"].concat_param.axis == 1
    power = layers["pow"].power_param
    assert (power.power, power.scale, power.shift) == (2, 3, 4)
    assert layers["thr"].threshold_param.threshold == pytest.approx(0.7)
    assert layers["prob"].loss_param.ignore_label == 3
    # Nothing spills into sub-messages the V1 layer did not set.
    assert not layers["relu1"].HasField("convolution_param")


def test_v1_param_names_and_multipliers_become_param_specs():
    conv = by_name(upgrade_net(parse(V1_NET), SOURCE))["conv1"]
    assert [(spec.name, spec.lr_mult, spec.decay_mult) for spec in conv.param] == [
        ("conv1_w", 1, 1), ("conv1_b", 2, 0)]


def test_v1_param_specs_cover_the_longest_list():
    net = parse('layers { name: "ip" type: INNER_PRODUCT blobs_lr: 3 blobs_lr: 4 '
                'weight_decay: 5 param: "shared" blob_share_mode: PERMISSIVE }')
    specs = upgrade_net(net, SOURCE).layer[0].param
    assert len(specs) == 2
    assert (specs[0].name, specs[0].lr_mult, specs[0].decay_mult) == ("shared", 3, 5)
    assert specs[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert specs[1].lr_mult == 4
    assert not specs[1].HasField("name") and not specs[1].HasField("decay_mult")


def test_v1_without_multipliers_gets_no_param_specs():
    net = parse('layers { name: "r" type: RELU bottom: "x" top: "y" }')
    assert len(upgrade_net(net, SOURCE).layer[0].param) == 0


def _v1_net_with_blobs() -> caffe_pb2.NetParameter:
    net = parse('layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "y" '
                'inner_product_param { num_output: 2 } }')
    weights = net.layers[0].blobs.add()
    weights.shape.dim.extend([2, 3])
    weights.data.extend([0.5, -1.5, 2.25, 3.0, -4.0, 5.5])
    bias = net.layers[0].blobs.add()
    bias.num, bias.channels, bias.height, bias.width = 1, 1, 1, 2  # legacy 4-d shape
    bias.data.extend([7.0, -8.0])
    return net


def test_v1_binary_keeps_blobs():
    layer = upgrade_net(round_trip(_v1_net_with_blobs()), "nets/old.caffemodel").layer[0]
    assert layer.type == "InnerProduct"
    assert len(layer.blobs) == 2
    assert list(layer.blobs[0].shape.dim) == [2, 3]
    assert list(layer.blobs[0].data) == [0.5, -1.5, 2.25, 3.0, -4.0, 5.5]
    bias = layer.blobs[1]
    assert (bias.num, bias.channels, bias.height, bias.width) == (1, 1, 1, 2)
    assert list(bias.data) == [7.0, -8.0]


def test_upgrade_returns_a_new_message_and_leaves_the_input_alone():
    original = parse(V1_NET)
    before = original.SerializeToString()
    upgraded = upgrade_net(original, SOURCE)
    assert upgraded is not original
    assert original.SerializeToString() == before
    assert len(original.layers) == 12 and len(original.layer) == 0


def test_v1_data_layers_move_transformation_fields_into_transform_param():
    net = parse("""
      layers { name: "d" type: DATA top: "data" top: "label"
               data_param { source: "db" batch_size: 8 scale: 0.5 mean_file: "m.binaryproto"
                            crop_size: 13 mirror: true } }
      layers { name: "i" type: IMAGE_DATA top: "img" image_data_param { source: "l.txt" crop_size: 9 } }
      layers { name: "w" type: WINDOW_DATA top: "win" window_data_param { source: "w.txt" scale: 2 } }
    """)
    layers = by_name(upgrade_net(net, SOURCE))
    data = layers["d"]
    assert data.type == "Data"
    assert (data.transform_param.scale, data.transform_param.mean_file,
            data.transform_param.crop_size, data.transform_param.mirror) == (
        0.5, "m.binaryproto", 13, True)
    assert (data.data_param.source, data.data_param.batch_size) == ("db", 8)
    for moved in ("scale", "mean_file", "crop_size", "mirror"):
        assert not data.data_param.HasField(moved)
    assert layers["i"].transform_param.crop_size == 9
    assert not layers["i"].image_data_param.HasField("crop_size")
    assert layers["w"].transform_param.scale == 2
    assert layers["w"].window_data_param.source == "w.txt"


# ---------------------------------------------------------------- V1 errors

def test_mixing_layer_and_layers_is_refused():
    net = parse('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')
    with pytest.raises(StructureError, match="nets/old.prototxt: mixes 'layer' and 'layers'"):
        upgrade_net(net, SOURCE)


def test_v1_type_none_is_refused_naming_the_layer():
    net = parse('layers { name: "ghost" type: NONE bottom: "x" top: "y" }')
    with pytest.raises(StructureError, match=r"nets/old.prototxt: .*'ghost'.*NONE"):
        upgrade_net(net, SOURCE)


def test_v1_layer_without_type_is_refused_naming_the_layer():
    net = parse('layers { name: "untyped" bottom: "x" top: "y" }')
    with pytest.raises(StructureError, match="'untyped'"):
        upgrade_net(net, SOURCE)


def test_v1_unknown_type_enum_in_a_binary_is_refused_naming_the_layer():
    layer = caffe_pb2.V1LayerParameter(name="mystery")
    type_field = caffe_pb2.V1LayerParameter.DESCRIPTOR.fields_by_name["type"].number
    # Hand-encode `type: 99` (a varint field); the schema has no layer type 99.
    raw_layer = layer.SerializeToString() + bytes([type_field << 3, 99])
    layers_field = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name["layers"].number
    raw_net = bytes([layers_field << 3 | 2, len(raw_layer)]) + raw_layer
    net = caffe_pb2.NetParameter.FromString(raw_net)
    assert net.layers[0].name == "mystery" and not net.layers[0].HasField("type")
    with pytest.raises(StructureError, match=r"'mystery'.* 99"):
        upgrade_net(net, "nets/old.caffemodel")


# ---------------------------------------------------------------- V0 -> V1 -> V2

V0_NET = """
name: "v0net"
input: "data"
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer { name: "conv1" type: "conv" num_output: 6 kernelsize: 5 stride: 3 group: 2 biasterm: false
          weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0.2 }
          blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pad2" type: "padding" pad: 1 } bottom: "conv1" top: "pad2" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
         bottom: "pad2" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.002 beta: 0.6 k: 2 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 11 biasterm: true }
         bottom: "norm1" top: "fc" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "fc" top: "fc" }
layers { layer { name: "cat" type: "concat" concat_dim: 0 } bottom: "fc" bottom: "fc" top: "cat" }
layers { layer { name: "prob" type: "softmax" } bottom: "cat" top: "prob" }
"""


def test_v0_layers_get_v2_types_and_padding_layers_disappear():
    net = upgrade_net(parse(V0_NET), SOURCE)
    assert net.name == "v0net" and list(net.input) == ["data"]
    assert len(net.layers) == 0
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("conv1", "Convolution"), ("relu1", "ReLU"), ("pool1", "Pooling"), ("norm1", "LRN"),
        ("fc", "InnerProduct"), ("drop", "Dropout"), ("cat", "Concat"), ("prob", "Softmax"),
    ]


def test_v0_padding_folds_into_conv():
    conv = by_name(upgrade_net(parse(V0_NET), SOURCE))["conv1"]
    assert list(conv.bottom) == ["data"] and list(conv.top) == ["conv1"]
    param = conv.convolution_param
    assert (list(param.pad), list(param.kernel_size), list(param.stride)) == ([2], [5], [3])
    assert (param.num_output, param.group, param.bias_term) == (6, 2, False)
    assert param.weight_filler.type == "gaussian"
    assert param.weight_filler.std == pytest.approx(0.01)
    assert param.bias_filler.value == pytest.approx(0.2)
    assert [(spec.lr_mult, spec.decay_mult) for spec in conv.param] == [(1, 1), (2, 0)]


def test_v0_padding_folds_into_pool():
    pool = by_name(upgrade_net(parse(V0_NET), SOURCE))["pool1"]
    assert list(pool.bottom) == ["conv1"]
    param = pool.pooling_param
    assert (param.pad, param.kernel_size, param.stride) == (1, 3, 2)
    assert param.pool == caffe_pb2.PoolingParameter.AVE


def test_v0_flat_fields_land_in_their_sub_params():
    layers = by_name(upgrade_net(parse(V0_NET), SOURCE))
    lrn = layers["norm1"].lrn_param
    assert (lrn.local_size, lrn.k) == (3, 2)
    assert lrn.alpha == pytest.approx(0.002) and lrn.beta == pytest.approx(0.6)
    fc = layers["fc"].inner_product_param
    assert (fc.num_output, fc.bias_term) == (11, True)
    assert layers["drop"].dropout_param.dropout_ratio == pytest.approx(0.3)
    assert layers["cat"].concat_param.HasField("concat_dim")
    assert layers["cat"].concat_param.concat_dim == 0
    # Fields the V0 layer did not set stay unset rather than taking V0 defaults.
    assert not layers["relu1"].HasField("transform_param")
    assert not layers["fc"].HasField("convolution_param")


def test_v0_conv_without_padding_layer_keeps_its_own_pad():
    net = parse('input: "x" layers { layer { name: "c" type: "conv" pad: 4 kernelsize: 7 } '
                'bottom: "x" top: "c" }')
    conv = upgrade_net(net, SOURCE).layer[0].convolution_param
    assert (list(conv.pad), list(conv.kernel_size), list(conv.stride)) == ([4], [7], [])


def test_v0_data_layer_fields():
    net = parse("""
      layers { layer { name: "d" type: "data" source: "train_db" batchsize: 32 rand_skip: 5
                       scale: 0.00390625 meanfile: "mean.binaryproto" cropsize: 227 mirror: true }
               top: "data" top: "label" }
      layers { layer { name: "img" type: "images" source: "list.txt" batchsize: 4
                       new_height: 31 new_width: 37 shuffle_images: true }
               top: "img" top: "img_label" }
      layers { layer { name: "win" type: "window_data" source: "win.txt" batchsize: 2
                       det_fg_threshold: 0.6 det_bg_threshold: 0.4 det_fg_fraction: 0.3
                       det_context_pad: 16 det_crop_mode: "square" }
               top: "win" top: "win_label" }
    """)
    layers = by_name(upgrade_net(net, SOURCE))
    data = layers["d"]
    assert data.type == "Data"
    assert (data.data_param.source, data.data_param.batch_size, data.data_param.rand_skip) == (
        "train_db", 32, 5)
    transform = data.transform_param
    assert (transform.scale, transform.mean_file, transform.crop_size, transform.mirror) == (
        0.00390625, "mean.binaryproto", 227, True)
    assert not data.data_param.HasField("scale")
    images = layers["img"]
    assert images.type == "ImageData"
    param = images.image_data_param
    assert (param.source, param.batch_size, param.new_height, param.new_width, param.shuffle) == (
        "list.txt", 4, 31, 37, True)
    window = layers["win"]
    assert window.type == "WindowData"
    param = window.window_data_param
    assert (param.source, param.batch_size, param.context_pad, param.crop_mode) == (
        "win.txt", 2, 16, "square")
    assert param.fg_threshold == pytest.approx(0.6) and param.bg_threshold == pytest.approx(0.4)
    assert param.fg_fraction == pytest.approx(0.3)


def test_v0_binary_keeps_blobs():
    net = parse('input: "x" layers { layer { name: "c" type: "conv" num_output: 1 kernelsize: 1 } '
                'bottom: "x" top: "c" }')
    blob = net.layers[0].layer.blobs.add()
    blob.num, blob.channels, blob.height, blob.width = 1, 1, 1, 1
    blob.data.append(0.75)
    conv = upgrade_net(round_trip(net), "nets/old.caffemodel").layer[0]
    assert [list(b.data) for b in conv.blobs] == [[0.75]]


def test_v0_padding_feeding_a_non_conv_layer_is_refused():
    net = parse("""
      input: "x"
      layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "x" top: "p" }
      layers { layer { name: "act" type: "relu" } bottom: "p" top: "r" }
    """)
    with pytest.raises(StructureError, match=r"nets/old.prototxt: .*'pad'.*'act'"):
        upgrade_net(net, SOURCE)


def test_v0_padding_feeding_a_multi_input_layer_is_refused():
    net = parse("""
      input: "x" input: "y"
      layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "x" top: "p" }
      layers { layer { name: "c" type: "conv" } bottom: "p" bottom: "y" top: "c" }
    """)
    with pytest.raises(StructureError, match="'c'"):
        upgrade_net(net, SOURCE)


def test_v0_unknown_blob_is_refused():
    net = parse('layers { layer { name: "c" type: "conv" } bottom: "nowhere" top: "c" }')
    with pytest.raises(StructureError, match="'c'.*'nowhere'"):
        upgrade_net(net, SOURCE)


def test_v0_unknown_type_is_refused_naming_the_layer():
    net = parse('input: "x" layers { layer { name: "odd" type: "warp_drive" } bottom: "x" top: "o" }')
    with pytest.raises(StructureError, match="'odd'.*'warp_drive'"):
        upgrade_net(net, SOURCE)


def test_v1_entry_inside_a_v0_net_is_refused():
    net = parse('input: "x" layers { layer { name: "c" type: "conv" } bottom: "x" top: "c" } '
                'layers { name: "r" type: RELU bottom: "c" top: "c" }')
    with pytest.raises(StructureError, match="'r'"):
        upgrade_net(net, SOURCE)


# ---------------------------------------------------------------- V2 nets

def test_v2_net_is_returned_as_an_equal_copy():
    net = parse('name: "n" input: "x" layer { name: "c" type: "Convolution" bottom: "x" top: "c" '
                'param { lr_mult: 1 } convolution_param { num_output: 3 kernel_size: 1 } }')
    upgraded = upgrade_net(net, SOURCE)
    assert upgraded == net and upgraded is not net
    upgraded.layer[0].name = "changed"
    assert net.layer[0].name == "c"


def test_batch_norm_param_specs_from_the_old_definition_are_dropped():
    net = parse("""
      layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
              param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } }
      layer { name: "sc" type: "Scale" bottom: "x" top: "x" param { lr_mult: 1 } param { lr_mult: 2 } }
    """)
    layers = by_name(upgrade_net(net, SOURCE))
    assert len(layers["bn"].param) == 0
    assert [spec.lr_mult for spec in layers["sc"].param] == [1, 2]
    assert len(net.layer[0].param) == 3  # the input is untouched
