#!/usr/bin/env python
"""Fuzz caffe2keras with hostile inputs and report every crash.

    python scripts/fuzz.py --cases 100000           # a campaign
    python scripts/fuzz.py --cases 500 --build-rate 0
    python scripts/fuzz.py --replay fuzz-crashes/<case>   # rerun a saved case, with its traceback

A *crash* is an exception outside ``caffe2keras.errors``, a case running longer than
``--timeout`` seconds, or the process growing beyond ``--memory-mb``. Clean errors from our
hierarchy and successful conversions are both fine.

Cases are drawn by hypothesis, in batches with a fixed seed each (the run is reproducible
from ``--seed``), by the strategies and mutators of ``fuzz_cases.py``, from four generators:

- ``net``: a net assembled from the fixtures' own layers (types, parameters, input forms,
  include rules) rewired at random, with some fields set to edge values (0, -1, 2**31 - 1,
  NaN, inf...); converted without weights, then with a caffemodel made for it from the
  shapes Caffe would allocate: right shapes, wrong ones, missing or extra blobs, legacy
  4-D dims, double data, NaN/Inf values, sometimes byte-mutated as well; one net in four
  whose types all have V1 names is written in the V1 format;
- ``text``: a fixture's prototxt (or a V0-format net made in code) with text mutations (spans deleted, repeated or cut off;
  tokens, extreme numbers, deep nesting inserted);
- ``bytes``: a fixture's caffemodel with byte mutations (bit flips, truncation, spans
  deleted or repeated, random bytes, varints replaced, a splice with another caffemodel)
  and protobuf-aware ones (a field's length, number or wire type changed, a field
  repeated or deleted);
- ``swap``: files in the wrong place: a prototxt as weights, weights as a prototxt, random
  bytes, an empty file, another net's weights.

Each case runs ``caffe2keras.api.prepare`` (read, upgrade, shapes, fillers, passes) and the
``inspect`` report (mutated weights are also read as a mean file); with probability ``--build-rate`` a case that prepares also builds the
Keras model, which must hold no Lambda layer. A share ``--export-rate`` of the built models is
also written in one of the runtime formats (ONNX, LiteRT, OpenVINO, torch, in turn), checked in
its runtime as ``convert`` does: a written artifact that fails its own check is a crash too,
and so is an export running over ``--export-timeout`` seconds; a layer the format refuses by
name is a clean error.

Cases run one at a time in a worker process that this process watches (time, memory) and
restarts after a hang or a blow-up. Each distinct crash site is saved under ``--out`` with
its inputs and traceback; the summary lists them and the exit code is 1 if there were any.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed as hypothesis_seed, settings  # noqa: E402

from fuzz_cases import (SEEDS, Seeds, case_strategy, load_seeds, mutate_bytes,  # noqa: E402
                        mutate_text, weights_message)
from caffe2keras.errors import CaffeToKerasError  # noqa: E402


# ------------------------------------------------------------------ running one case

class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that runs too long (not an Exception: nothing in the
    library may swallow it)."""


@dataclass
class Options:
    timeout: float = 10.0
    memory_mb: int = 2048
    build_rate: float = 0.05
    export_rate: float = 0.5  # of the built models
    export_timeout: float = 120.0
    out: Path = Path("fuzz-crashes")
    inject: str | None = None  # for testing this harness: "exception", "hang" or "memory"


@dataclass
class Tally:
    cases: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    builds: int = 0
    exports: dict[str, int] = field(default_factory=dict)  # format -> artifacts written
    crashes: dict[str, dict] = field(default_factory=dict)  # signature -> {count, example}


class Runner:
    """Runs cases in this process: writes their files, calls the library, classifies."""

    def __init__(self, seeds: Seeds, options: Options, workdir: Path, tally: Tally, report=None):
        self.seeds, self.options, self.workdir, self.tally = seeds, options, workdir, tally
        self.report = report or (lambda line: None)
        self.builds_since_clear = 0
        self.stop = False  # set after a memory blow-up: this process must be replaced

    # -- files ------------------------------------------------------------------
    def _write(self, name: str, content) -> str:
        path = self.workdir / name
        if isinstance(content, str):
            path.write_bytes(content.encode("utf-8", "surrogatepass"))
        else:
            path.write_bytes(content)
        return str(path)

    def _files(self, case) -> list[tuple[str, str | None]]:
        """The (prototxt, caffemodel) runs of a case; a net case may add a second run whose
        weights are made from the first run's result (done in ``run``)."""
        deploy, weights = self.seeds.fixtures[case["fixture"]]
        other = self.seeds.fixtures[case["other"]][1]
        kind = case["kind"]
        if kind == "net":
            return [(self._write("net.prototxt", case["text"]), None)]
        if kind == "text":
            text = mutate_text(self.seeds.texts[deploy], case["text_ops"])
            return [(self._write("deploy.prototxt", text), weights if case["with_weights"] else None)]
        if kind == "bytes":
            data = mutate_bytes(self.seeds.weights[weights], case["byte_ops"], self.seeds.weights[other])
            return [(deploy, self._write("weights.caffemodel", data))]
        swap = case["swap"]
        if swap == "prototxt_as_weights":
            return [(deploy, deploy)]
        if swap == "weights_as_prototxt":
            return [(weights, None)]
        if swap == "both_weights":
            return [(weights, weights)]
        if swap == "random":
            data = bytes.fromhex(case["random"])
            return [(deploy, self._write("random.caffemodel", data)),
                    (self._write("random.prototxt", data), None)]
        if swap == "empty":
            return [(deploy, self._write("empty.caffemodel", b"")),
                    (self._write("empty.prototxt", b""), None)]
        return [(deploy, other)]

    # -- the library calls --------------------------------------------------------
    def _target(self, prototxt: str, caffemodel: str | None, case, build: bool):
        from caffe2keras.api import prepare
        from caffe2keras.inspect import format_report
        from caffe2keras.reader.binary import read_mean_file
        from caffe2keras.reader.loader import load_net
        outputs = None
        if case.get("outputs") and case.get("layer_names"):
            outputs = [case["layer_names"][case["fixture"] % len(case["layer_names"])]]
        if caffemodel is not None and case["kind"] in ("bytes", "swap"):
            try:  # the same bytes as a mean file (a BlobProto)
                read_mean_file(caffemodel)
            except CaffeToKerasError:
                pass
        format_report(load_net(prototxt, caffemodel))
        net = prepare(prototxt, caffemodel, fuse_batchnorm=case["fuse"], outputs=outputs)
        if build and sum(b.size for layer in net.layers for b in layer.blobs) < 2**22:
            model = self._build(net)
            export = _export_choice(case["build_draw"], self.options)
            if export is not None:
                self._export(model, export)
        return net

    def _export(self, model, format_name: str) -> None:
        """Write and check one artifact; its own check failing is a finding, not a clean error."""
        from caffe2keras.errors import ExportCheckError
        from caffe2keras.formats import get_format
        from caffe2keras.formats.write import write_artifact
        fmt = get_format(format_name)
        signal.setitimer(signal.ITIMER_REAL, self.options.export_timeout)
        try:
            write_artifact(model, str(self.workdir / f"model{fmt.extensions[0]}"), fmt)
        except ExportCheckError as error:
            raise AssertionError(f"the {format_name} artifact fails its check: {error}") from None
        self.tally.exports[format_name] = self.tally.exports.get(format_name, 0) + 1

    def _build(self, net):
        import keras
        from caffe2keras.build import build_model
        model = build_model(net)
        self.tally.builds += 1
        lambdas = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Lambda)]
        if lambdas:
            raise AssertionError(f"the converted model has Lambda layers: {lambdas}")
        self.builds_since_clear += 1
        if self.builds_since_clear >= 25:
            keras.backend.clear_session()
            self.builds_since_clear = 0
        return model

    def _weights_for(self, case) -> str | None:
        """A caffemodel for a generated net, from the blobs its filler run produced."""
        from caffe2keras.api import prepare
        net = prepare(str(self.workdir / "net.prototxt"), fuse_batchnorm=False)
        blobs = {layer.name: list(layer.blobs) for layer in net.layers if layer.blobs}
        types = {layer.name: layer.type for layer in net.layers}
        ops = case["weight_ops"] if case["weights"] in ("mutated", "bytes") else []
        data = weights_message(blobs, types, ops)
        if case["weights"] == "bytes":
            data = mutate_bytes(data, case["byte_ops"], self.seeds.weights[self.seeds.fixtures[case["other"]][1]])
        return self._write("net.caffemodel", data)

    # -- one case -------------------------------------------------------------------
    def run(self, number: int, case) -> str:
        """Run case ``number``; return "ok", "error" or "crash"."""
        for stale in self.workdir.iterdir():
            stale.unlink()
        (self.workdir / "case.json").write_text(json.dumps(case, default=repr))
        self.report(f"B {number}")
        build = case["build_draw"] < self.options.build_rate
        status = "ok"
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.options.timeout)
        try:
            self._inject(number)
            runs = self._files(case)
            if case["kind"] == "net" and case.get("text_ops"):
                text = mutate_text(case["text"], case["text_ops"])
                runs = [(self._write("net.prototxt", text), None)]
            for prototxt, caffemodel in runs:
                try:
                    self._target(prototxt, caffemodel, case, build)
                except CaffeToKerasError as error:
                    self.tally.errors[type(error).__name__] = self.tally.errors.get(type(error).__name__, 0) + 1
                    status = "error"
                    continue
                if case["kind"] == "net" and case["weights"] != "none" and caffemodel is None:
                    try:
                        self._target(prototxt, self._weights_for(case), case, build)
                    except CaffeToKerasError as error:
                        name = type(error).__name__
                        self.tally.errors[name] = self.tally.errors.get(name, 0) + 1
                        status = "error"
        except CaseTimeout:
            status = self._crash(number, case, "hang", f"the case ran over {self.options.timeout} s",
                                 traceback.format_exc())
        except Exception as error:  # noqa: BLE001  (anything outside our hierarchy is the finding)
            status = self._crash(number, case, type(error).__name__, str(error)[:300],
                                 traceback.format_exc())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if status != "crash" and peak_mb > self.options.memory_mb:
            status = self._crash(number, case, "memory", f"peak RSS {peak_mb:.0f} MB", "")
        if peak_mb > self.options.memory_mb:
            self.stop = True  # the high-water mark stays: later cases could not be judged
        self.tally.cases += 1
        self.tally.ok += status == "ok"
        self.report(f"E {number} {status}")
        return status

    def _inject(self, number: int) -> None:
        if self.options.inject and number == 3:
            if self.options.inject == "exception":
                raise ZeroDivisionError("injected")
            if self.options.inject == "hang":
                while True:
                    time.sleep(0.01)
            if self.options.inject == "memory":
                hog = []
                while True:
                    hog.append(np.ones(2**25, np.uint8))

    def _crash(self, number: int, case, kind: str, message: str, trace: str) -> str:
        site = _crash_site(trace) if trace else kind
        signature = f"{kind} at {site}"
        entry = self.tally.crashes.setdefault(signature, {"count": 0, "example": None,
                                                          "message": message})
        entry["count"] += 1
        if entry["example"] is None:
            entry["example"] = str(save_case(self.options.out, number, self.workdir, kind,
                                             message, trace))
        return "crash"


RUNTIME_FORMATS = ("onnx", "tflite", "openvino", "torch")


def _export_choice(build_draw: float, options: Options) -> str | None:
    """The format a built case is exported to, or None: drawn from the case's own build draw
    (uniform below build_rate when it builds), so a replayed case exports alike."""
    if options.build_rate <= 0 or options.export_rate <= 0:
        return None
    share = build_draw / options.build_rate / options.export_rate  # uniform in [0, 1) if chosen
    return RUNTIME_FORMATS[int(share * len(RUNTIME_FORMATS))] if share < 1 else None


def _alarm(signum, frame):
    raise CaseTimeout()


def _crash_site(trace: str) -> str:
    """file:line of the innermost frame in caffe2keras (else the innermost frame)."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', trace)
    ours = [f for f in frames if "/caffe2keras/" in f[0]] or frames
    if not ours:
        return "?"
    path, line, function = ours[-1]
    return f"{Path(path).name}:{line} ({function})"


def save_case(out: Path, number: int, workdir: Path, kind: str, message: str, trace: str) -> Path:
    folder = out / f"case-{number}-{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    for item in workdir.iterdir():
        shutil.copy(item, folder / item.name)
    (folder / "crash.txt").write_text(f"{kind}: {message}\n\n{trace}")
    return folder


# ------------------------------------------------------------------ batches (one process)

def run_batches(options: Options, seed: int, first_batch: int, cases: int, batch_size: int,
                report=None, workdir: Path | None = None, tally: Tally | None = None) -> Tally:
    """Run ``cases`` cases in this process, ``batch_size`` per hypothesis run, batch ``b``
    drawn with seed ``(seed, b)``. Returns the tally. Stops early after a memory blow-up."""
    seeds = load_seeds()
    SEEDS[:] = [seeds]
    tally = Tally() if tally is None else tally
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="c2k-fuzz-")) if own else workdir
    runner = Runner(seeds, options, workdir, tally, report)
    batch, number = first_batch, first_batch * batch_size
    try:
        while tally.cases < cases and not runner.stop:
            count = min(batch_size, cases - tally.cases)
            start = number

            @hypothesis_seed(seed * 1_000_003 + batch)
            @settings(max_examples=count, database=None, deadline=None, derandomize=False,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                      print_blob=False)
            @given(case_strategy())
            def batch_run(case):
                nonlocal number
                if number - start < count and not runner.stop:
                    runner.run(number, case)
                    number += 1

            batch_run()
            if number == start:  # hypothesis produced nothing more: do not spin
                break
            batch += 1
            number = batch * batch_size
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return tally


# ------------------------------------------------------------------ the supervisor

def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def supervise(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    done = 0
    batch = 0
    totals = {"ok": 0, "error": 0, "crash": 0}
    crashes: dict[str, dict] = {}
    errors: dict[str, int] = {}
    builds = 0
    exports: dict[str, int] = {}
    workdir = Path(tempfile.mkdtemp(prefix="c2k-fuzz-"))
    last_print = time.time()
    try:
        while done < args.cases:
            read_end, write_end = os.pipe()
            summary = out / ".worker-summary.json"
            command = [sys.executable, __file__, "--worker", "--report-fd", str(write_end),
                       "--cases", str(args.cases - done), "--seed", str(args.seed),
                       "--first-batch", str(batch), "--batch-size", str(args.batch_size),
                       "--timeout", str(args.timeout), "--memory-mb", str(args.memory_mb),
                       "--build-rate", str(args.build_rate), "--out", str(out),
                       "--export-rate", str(args.export_rate),
                       "--export-timeout", str(args.export_timeout),
                       "--workdir", str(workdir), "--summary", str(summary)]
            if args.inject:
                command += ["--inject", args.inject]
            worker = subprocess.Popen(command, pass_fds=(write_end,), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL if not args.verbose else None)
            os.close(write_end)
            current, since, buffer, killed = None, time.time(), b"", None
            last = batch * args.batch_size - 1
            with os.fdopen(read_end, "rb", buffering=0) as pipe:
                while True:
                    ready, _, _ = select.select([pipe], [], [], 0.02)
                    if ready:
                        chunk = pipe.read(65536)
                        if not chunk:
                            break
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            parts = line.decode().split()
                            if parts[0] == "B":
                                current, since = int(parts[1]), time.time()
                                last = current
                            elif parts[0] == "E":
                                totals[parts[2]] += 1
                                done += 1
                                current = None
                    patience = max(args.timeout, args.export_timeout) + 10
                    if current is not None and time.time() - since > patience:
                        killed = ("hang", f"no answer for {patience:.0f} s")
                    elif _rss_mb(worker.pid) > args.memory_mb:
                        killed = ("memory", f"RSS over {args.memory_mb} MB")
                    if killed:
                        worker.kill()
                        break
                    if time.time() - last_print > 30:
                        last_print = time.time()
                        print(f"{done} cases, {time.time() - started:.0f} s, "
                              f"{totals['crash']} crashes", file=sys.stderr, flush=True)
            worker.wait()
            if summary.exists():
                part = json.loads(summary.read_text())
                summary.unlink()
                builds += part["builds"]
                for name, n in part["exports"].items():
                    exports[name] = exports.get(name, 0) + n
                for name, n in part["errors"].items():
                    errors[name] = errors.get(name, 0) + n
                for signature, entry in part["crashes"].items():
                    merged = crashes.setdefault(signature, {"count": 0, "example": entry["example"],
                                                            "message": entry["message"]})
                    merged["count"] += entry["count"]
            if killed and current is not None:
                kind, message = killed
                folder = save_case(out, current, workdir, kind, message, "")
                entry = crashes.setdefault(f"{kind} (killed by the supervisor)",
                                           {"count": 0, "example": str(folder), "message": message})
                entry["count"] += 1
                totals["crash"] += 1
                done += 1
            elif worker.returncode != 0 and not killed:
                if last < batch * args.batch_size:  # it died before its first case
                    print(f"the worker fails to start (exit {worker.returncode}); run with "
                          "--verbose to see why", file=sys.stderr)
                    return 2
                print(f"worker exited with {worker.returncode}; restarting", file=sys.stderr)
                if current is not None:
                    folder = save_case(out, current, workdir, "died", f"exit {worker.returncode}", "")
                    crashes.setdefault("worker died", {"count": 0, "example": str(folder),
                                                       "message": str(worker.returncode)})["count"] += 1
                    totals["crash"] += 1
                    done += 1
            batch = last // args.batch_size + 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.time() - started
    print(f"{done} cases in {elapsed:.0f} s ({done / max(elapsed, 1e-9):.0f}/s): {totals['ok']} "
          f"converted, {totals['error']} refused with a clean error, {builds} Keras builds, "
          f"{totals['crash']} crashes")
    if exports:
        print("artifacts written and checked: "
              + ", ".join(f"{k} {v}" for k, v in sorted(exports.items())))
    if errors:
        print("clean errors: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
    for signature, entry in sorted(crashes.items(), key=lambda item: -item[1]["count"]):
        print(f"CRASH x{entry['count']}: {signature}: {entry['message']}\n    example: {entry['example']}")
    return 1 if crashes else 0


def worker_main(args) -> int:
    report_file = os.fdopen(args.report_fd, "w", buffering=1)

    def report(line: str) -> None:
        report_file.write(line + "\n")

    options = Options(timeout=args.timeout, memory_mb=args.memory_mb, build_rate=args.build_rate,
                      export_rate=args.export_rate, export_timeout=args.export_timeout,
                      out=Path(args.out), inject=args.inject)
    workdir = Path(args.workdir)
    tally = Tally()
    summary = Path(args.summary)

    def save(*_):
        summary.write_text(json.dumps({"builds": tally.builds, "exports": tally.exports,
                                       "errors": tally.errors,
                                       "crashes": tally.crashes}))

    # The supervisor may kill this process; keep the summary current after every crash.
    try:
        run_batches(options, args.seed, args.first_batch, args.cases, args.batch_size,
                    report=lambda line: (report(line), line.endswith("crash") and save()),
                    workdir=workdir, tally=tally)
    finally:
        save()
    return 0


def replay(folder: str) -> int:
    """Rerun a saved case in this process (its files are made again from case.json)."""
    case = json.loads((Path(folder) / "case.json").read_text())
    seeds = load_seeds()
    SEEDS[:] = [seeds]
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as out:
        tally = Tally()
        runner = Runner(seeds, Options(timeout=60, build_rate=1.0, out=Path(out)), Path(work), tally)
        status = runner.run(0, case)
        print(status)
        for signature, entry in tally.crashes.items():
            print(signature, entry["message"])
            print((Path(entry["example"]) / "crash.txt").read_text())
    return 0 if status != "crash" else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--build-rate", type=float, default=0.05,
                        help="share of the cases that prepare which also build the Keras model")
    parser.add_argument("--export-rate", type=float, default=0.5,
                        help="share of the built models also written (and checked) in a runtime "
                             "format, the formats in turn")
    parser.add_argument("--export-timeout", type=float, default=120.0,
                        help="seconds for one export and its check")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", default="fuzz-crashes")
    parser.add_argument("--replay", metavar="CASE_FOLDER")
    parser.add_argument("--verbose", action="store_true", help="show the worker's stderr")
    parser.add_argument("--inject", choices=["exception", "hang", "memory"], help=argparse.SUPPRESS)
    for hidden in ("--report-fd", "--first-batch"):
        parser.add_argument(hidden, type=int, default=0, help=argparse.SUPPRESS)
    for hidden in ("--workdir", "--summary"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    if args.worker:
        return worker_main(args)
    return supervise(args)


if __name__ == "__main__":
    sys.exit(main())
