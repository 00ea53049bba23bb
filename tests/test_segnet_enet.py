"""SegNet and ENet, as published (tests/forks/SOURCES.md), with seeded weights written by our
writer: converted at full size, every blob against the numpy transcription of
caffe-segnet's / caffe-enet's layers (tests/fork_forward.py) and BVLC's (numpy_forward)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pytest

from caffe2keras.api import prepare
from caffe2keras.build import build_graph
from caffe2keras.ir import Net
from caffe2keras.shapes import infer_shapes
from fork_forward import forward
from numpy_forward import assert_close, to_caffe, to_keras, write_net
from test_convert_segmentation import every_blob
from zoo_nets import generate_input, generate_weights

FORKS = Path(__file__).resolve().parent / "forks"
SHA256 = {  # SOURCES.md's
    "segnet_basic_inference.prototxt":
        "186c47944c6190b6d1918799fa818349e825916012e3fddacc46ce8b6fd2c7e5",
    "segnet_inference.prototxt":
        "a9af0b387190aca006f90cb28f2c6487e68b4cc595f633d4db88de077796b105",
    "enet_deploy_final.prototxt":
        "e93331af261c79f7ceeb82bbd955023fe2ea897ef60968fbdcbfe9cdde3825a4",
}
CAMVID = (1, 3, 360, 480)
DATA_LAYER = re.compile(r'layer \{\s*name: "data"\s*type: "DenseImageData".*?\n\}\n', re.S)


def published(name: str) -> str:
    data = (FORKS / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256[name], f"{name} is not the published file"
    return data.decode()


def without_image_data(text: str, shape=CAMVID) -> str:
    """SegNet's DenseImageData layer (it reads image files) replaced by an Input of ``shape``."""
    dims = " ".join(f"dim: {d}" for d in shape)
    replaced, count = DATA_LAYER.subn(
        f'layer {{\n  name: "data"\n  type: "Input"\n  top: "data"\n'
        f'  input_param {{ shape {{ {dims} }} }}\n}}\n', text, count=1)
    assert count == 1, "no DenseImageData layer"
    return replaced


def seeded_weights(folder, text: str, seed: int):
    """Seeded blobs of the shapes our shape rules give (BN's scale and shift drawn like Scale's:
    near 1 and near 0), written with the net as a caffemodel. Returns the two paths."""
    prototxt, _ = write_net(folder, text)
    layers = [{"name": layer.name, "type": "Scale" if layer.type == "BN" else layer.type,
               "shapes": [blob.shape for blob in layer.blobs]}
              for layer in prepare(prototxt, fuse_batchnorm=False).layers]
    return write_net(folder, text, generate_weights(layers, seed))


def _relative(got, want) -> float:
    scale = max(float(np.max(np.abs(want))), 1e-30)
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def layer_by_layer(net, want) -> float:
    """Each layer converted alone (an unpooling with the Pooling that makes its mask) and fed
    the reference's own bottoms: every top against the reference. Returns the largest
    relative error."""
    import keras

    worst = 0.0
    producers = net.producers()
    for layer in net.layers:
        group = [layer]
        if layer.type in ("Upsample", "MaxUnPool") and len(layer.bottoms) == 2:
            group.insert(0, producers[layer.bottoms[1]])
        made = {top for member in group for top in member.tops}
        feeds = list(dict.fromkeys(b for member in group for b in member.bottoms
                                   if b not in made))
        one = Net(name=layer.name, inputs={v: net.shapes[v] for v in feeds},
                  layers=[dataclasses.replace(member, blobs=[np.array(b) for b in member.blobs])
                          for member in group])
        infer_shapes(one)
        model_inputs, tensors = build_graph(one)
        model = keras.Model(model_inputs, [tensors[top] for top in layer.tops])
        outputs = model([to_keras(want[v]) for v in feeds])
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for top, output in zip(layer.tops, outputs):
            got = to_caffe(keras.ops.convert_to_numpy(output))
            assert_close(got, want[top], f"{layer.name} alone: {top}", rtol=1e-4)
            worst = max(worst, _relative(got, want[top]))
    return worst


def near_tie_flips(net, layer, got, want) -> int:
    """Where the converted model's mask of Pooling ``layer`` names another pixel than the
    reference's: both pixels must hold the same value to round-off (a near tie, decided by the
    last bits of the layers before). Returns how many."""
    mask = layer.tops[1]
    differ = np.argwhere(got[mask] != want[mask])
    x = want[layer.bottoms[0]]
    plane = x.reshape(x.shape[0], x.shape[1], -1)
    bound = 1e-5 * float(np.max(np.abs(x)))
    for n, c, i, j in differ:
        ours, theirs = int(got[mask][n, c, i, j]), int(want[mask][n, c, i, j])
        gap = abs(float(plane[n, c, ours]) - float(plane[n, c, theirs]))
        assert gap <= bound, f"{layer.name}: mask {ours} vs {theirs}, not a tie ({gap:.3g})"
    return len(differ)


def end_to_end(net, got, want) -> tuple[float, int, int]:
    """The whole converted model against the reference, blob by blob. A near-tie flip of a
    mask moves one value to the other pixel of its window in the unpooled map; blobs
    downstream of such a mask are then not compared here (layer_by_layer covers them).
    Returns (largest relative error, blobs compared, near-tie flips)."""
    worst, compared, flips, tainted = 0.0, 0, 0, set()
    for layer in net.layers:
        if tainted.intersection(layer.bottoms):
            tainted.update(layer.tops)
            continue
        for index, top in enumerate(layer.tops):
            if layer.type == "Pooling" and index == 1:
                count = near_tie_flips(net, layer, got, want)
                flips += count
                if count:
                    tainted.add(top)
                continue
            assert_close(got[top], want[top], top, rtol=1e-4)
            worst = max(worst, _relative(got[top], want[top]))
            compared += 1
    return worst, compared, flips


def check_against_numpy(folder, text: str, seed: int) -> dict:
    prototxt, caffemodel = seeded_weights(folder, text, seed)
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)
    inputs = {name: generate_input(shape, seed) for name, shape in net.inputs.items()}
    start = time.perf_counter()
    want = forward(net, inputs)
    numpy_seconds = time.perf_counter() - start
    start = time.perf_counter()
    alone = layer_by_layer(net, want)
    alone_seconds = time.perf_counter() - start
    net = prepare(prototxt, caffemodel, fuse_batchnorm=False)  # building handed the blobs back
    start = time.perf_counter()
    got = every_blob(net, inputs)
    keras_seconds = time.perf_counter() - start
    worst, compared, flips = end_to_end(net, got, want)
    print(f"\n{net.name}: {len(net.layers)} layers; each layer alone: worst relative error "
          f"{alone:.3g} ({alone_seconds:.0f} s); whole model: {compared} blobs compared, worst "
          f"{worst:.3g}, {flips} near-tie mask flips; numpy {numpy_seconds:.0f} s, Keras "
          f"build + predict {keras_seconds:.0f} s")
    return {"net": net, "got": got, "want": want, "alone": alone, "worst": worst,
            "flips": flips}


def test_segnet_basic(tmp_path):
    """SegNet-Basic at CamVid's 360 x 480: LRN, 7x7 convolutions, BN (INFERENCE), pooling
    masks, Upsample by scale 2 with pad_out_h (45 -> 23 -> 45 rows)."""
    result = check_against_numpy(tmp_path, without_image_data(
        published("segnet_basic_inference.prototxt")), seed=6101)
    net = result["net"]
    assert result["got"][net.layer("upsample4").tops[0]].shape == (1, 64, 45, 60)
    assert result["got"][net.outputs[-1]].shape == (1, 11, 360, 480)


def test_segnet(tmp_path):
    """SegNet (VGG-16 encoder, 29.4 M parameters) at CamVid's 360 x 480: Upsample to the
    upsample_h x upsample_w its file gives (23 x 30 after the ceil-mode 5th pooling)."""
    result = check_against_numpy(tmp_path, without_image_data(
        published("segnet_inference.prototxt")), seed=6103)
    net = result["net"]
    assert result["got"][net.layer("upsample5").tops[0]].shape == (1, 512, 23, 30)
    assert result["got"][net.outputs[-1]].shape == (1, 11, 360, 480)


def test_enet(tmp_path):
    """ENet at its published 512 x 1024: PReLU, dilated and asymmetric convolutions, BN,
    pooling masks, Upsample by them, Deconvolution, Concat, Eltwise."""
    result = check_against_numpy(tmp_path, published("enet_deploy_final.prototxt"), seed=6102)
    assert result["got"][result["net"].outputs[0]].shape == (1, 19, 512, 1024)
