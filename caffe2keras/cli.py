"""The ``caffe2keras`` command: thin argument parsing over the API, errors as one line."""

from __future__ import annotations

import argparse
import sys
import textwrap

from . import __version__
from .errors import CaffeToKerasError
from .formats import format_names
from .quiet import silenced

USAGE_ERROR = 2
VERIFY_FAILED = 1
INTERNAL_ERROR = 70  # EX_SOFTWARE
INTERRUPTED = 130


class UsageError(Exception):
    """Bad or missing command-line arguments (exit code 2)."""

    def __init__(self, prog: str, message: str):
        self.prog = prog
        super().__init__(message)


def exit_codes() -> list[tuple[int, str]]:
    """Every exit code of the command and what it means, from the error classes."""
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = [(0, "success (verify: every blob within the tolerance)"),
             (VERIFY_FAILED, "verify: a blob differs from Caffe's beyond the tolerance"),
             (USAGE_ERROR, "usage error: bad or missing arguments")]
    for cls in sorted(set(subclasses(CaffeToKerasError)), key=lambda c: c.exit_code):
        doc = " ".join((cls.__doc__ or "").split()).split(". ")[0].rstrip(".")
        codes.append((cls.exit_code, f"{cls.__name__}: {doc[0].lower()}{doc[1:]}"))
    codes.append((INTERNAL_ERROR, "internal error, a bug (--debug shows the traceback)"))
    codes.append((INTERRUPTED, "interrupted"))
    return codes


EXIT_CODES_START = "<!-- exit-codes:start (generated from caffe2keras.cli.exit_codes) -->"
EXIT_CODES_END = "<!-- exit-codes:end -->"


def exit_codes_markdown() -> str:
    """The README's exit-code table."""
    rows = ["| exit code | meaning |", "| --- | --- |"]
    rows += [f"| {code} | {meaning} |" for code, meaning in exit_codes()]
    return "\n".join(rows)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(self.prog, message)


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"expected NAME=N,C,H,W with positive sizes, got {text!r}")
    return name, shape


def _layer_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected LAYER[,LAYER...], got {text!r}")
    return names


def _channel_swap(text: str) -> tuple[int, ...]:
    """A permutation, or () for "none"."""
    if text.lower() == "none":
        return ()
    try:
        order = tuple(int(i) for i in text.split(","))
    except ValueError:
        order = ()
    if sorted(order) != list(range(len(order))) or not order:
        raise argparse.ArgumentTypeError(f"expected a permutation like 2,1,0 or 'none', "
                                         f"got {text!r}")
    return order


def _nonzero_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value == 0.0 or value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite nonzero number, got {text!r}")
    return value


def _add_input_shape_option(command) -> None:
    command.add_argument("--input-shape", action="append", type=parse_input_shape, default=[],
                         metavar="NAME=N,C,H,W", help="override an input's shape, in Caffe's "
                                                      "order (repeatable)")


def _command(commands, name: str, summary: str, description: str, examples: list[str]):
    command = commands.add_parser(
        name, help=summary, description=textwrap.fill(description, 78),
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the traceback of an error, and the libraries' log lines "
                              "and warnings")
    return command


def _parser() -> argparse.ArgumentParser:
    codes = "\n".join(textwrap.fill(f"{code:<4} {meaning}", 78, initial_indent="  ",
                                     subsequent_indent=" " * 7) for code, meaning in exit_codes())
    parser = _Parser(
        prog="caffe2keras",
        description=textwrap.fill("Convert Caffe models (deploy.prototxt + .caffemodel) into "
                                  "Keras 3 models that compute Caffe's numbers.", 78),
        epilog=f"Run `caffe2keras COMMAND --help` for a command's options and examples.\n\n"
               f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error, and the libraries' own log lines "
                             "and warnings (TensorFlow, Keras, ...), silenced otherwise")
    parser.add_argument("--version", action="version", version=f"caffe2keras {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    convert = _command(
        commands, "convert", "convert to Keras, ONNX, LiteRT, OpenVINO or torch",
        "Convert a Caffe net into a Keras model, written by the output's extension (or "
        "--format): .keras or .h5, a TensorFlow SavedModel for serving (a folder path ending "
        "in '/'), or an artifact for a runtime: .onnx (ONNX Runtime), .tflite (LiteRT), .xml "
        "(OpenVINO IR, with its .bin), .pt2 (torch.export). A runtime artifact is loaded in its "
        "runtime and compared with the Keras model before it is kept (--no-check skips that). "
        "The output appears only once it is complete; a failed run leaves none and keeps an "
        "existing one. Ends with a summary on stderr; a progress line is drawn while it runs "
        "on a terminal.",
        ["caffe2keras convert deploy.prototxt model.caffemodel model.keras",
         "caffe2keras convert deploy.prototxt model.keras           # weights from the fillers",
         "caffe2keras convert deploy.prototxt model.caffemodel fc7.keras --outputs relu7",
         "caffe2keras convert deploy.prototxt model.caffemodel model.keras \\\n"
         "      --preprocess --mean mean.binaryproto                 # takes RGB in [0, 255]",
         "caffe2keras convert deploy.prototxt model.caffemodel model.keras --fold-batchnorm",
         "caffe2keras convert deploy.prototxt model.caffemodel serving/model/   # SavedModel",
         "caffe2keras convert deploy.prototxt model.caffemodel model.onnx       # ONNX Runtime",
         "caffe2keras convert deploy.prototxt model.caffemodel model.xml        # OpenVINO IR"])
    convert.usage = "%(prog)s [options] PROTOTXT [CAFFEMODEL] OUTPUT"
    convert.add_argument("prototxt", metavar="PROTOTXT", help="the net (deploy.prototxt)")
    convert.add_argument("files", nargs="+", metavar="[CAFFEMODEL] OUTPUT",
                         help="the weights (optional: without them, the prototxt's fillers) and "
                              "the output: a .keras, .h5, .onnx, .tflite, .xml or .pt2 file, or "
                              "a folder path ending in '/'")
    convert.add_argument("--format", choices=format_names(),
                         help="the output format (default: by the output's extension, which "
                              "must then agree)")
    convert.add_argument("--no-check", action="store_true",
                         help="do not run a runtime artifact in its runtime to compare it with "
                              "the Keras model")
    _add_input_shape_option(convert)
    convert.add_argument("--outputs", type=_layer_list, metavar="LAYER[,LAYER...]",
                         help="return these layers' outputs; layers not needed for them are "
                              "dropped and their weights never read")
    convert.add_argument("--fold-batchnorm", action="store_true",
                         help="fold BatchNorm and Scale into the convolution before them "
                              "(faster inference, same numbers to float round-off)")
    convert.add_argument("--no-fuse-batchnorm", action="store_true",
                         help="keep BatchNorm and Scale as two Keras layers")
    group = convert.add_argument_group("preprocessing", textwrap.fill(
        "Embed Caffe's input transform as the model's first layer, so that the model takes raw "
        "images: channel swap, then raw scale, minus the mean, times the scale (Caffe's order). "
        "The options need --preprocess.", 78))
    group.add_argument("--preprocess", action="store_true",
                       help="embed the transform (default: RGB -> BGR only)")
    group.add_argument("--mean", metavar="FILE|V[,V...]",
                       help="mean in the net's channel order: a .binaryproto or .npy image (a "
                            "larger one is center-cropped to the input) or per-channel values "
                            "such as 104,117,123")
    group.add_argument("--scale", type=_nonzero_float, metavar="S",
                       help="multiply after subtracting the mean (transform_param scale, "
                            "e.g. 0.017)")
    group.add_argument("--raw-scale", type=_nonzero_float, metavar="S",
                       help="multiply before subtracting the mean (pycaffe's raw_scale: 255 "
                            "for images in [0, 1])")
    group.add_argument("--channel-swap", type=_channel_swap, metavar="ORDER|none",
                       help="input channel for each net channel (default 2,1,0: RGB -> BGR)")

    inspect = _command(
        commands, "inspect", "list a net's layers with Caffe's shapes",
        "Print every layer with its Caffe top shapes (NCHW), parameter count and whether it "
        "converts. Needs no Keras (and does not load TensorFlow).",
        ["caffe2keras inspect deploy.prototxt model.caffemodel",
         "caffe2keras inspect deploy.prototxt --input-shape data=1,3,300,300"])
    inspect.add_argument("prototxt")
    inspect.add_argument("caffemodel", nargs="?")
    _add_input_shape_option(inspect)

    verify = _command(
        commands, "verify", "compare a converted model or artifact with Caffe's activations",
        "Convert the net, run it on the inputs stored in REF.npz and compare every stored blob "
        "with Caffe's; with --runtime, the model (every stored blob an output) is exported to "
        "that format and run in its runtime. Given one ARTIFACT instead (.onnx, .tflite, .xml, "
        ".pt2, .keras, .h5), run it in its runtime and compare each of its outputs with the "
        "stored blob of the same layer. Exit code 0 only if all pass, 1 if some blob differs. "
        "Make REF.npz with scripts/dump_caffe_activations.py where pycaffe is installed.",
        ["caffe2keras verify deploy.prototxt model.caffemodel --activations ref.npz",
         "caffe2keras verify deploy.prototxt model.caffemodel --activations ref.npz "
         "--fold-batchnorm",
         "caffe2keras verify deploy.prototxt model.caffemodel --activations ref.npz "
         "--runtime openvino",
         "caffe2keras verify model.onnx --activations ref.npz"])
    verify.usage = "%(prog)s [options] (PROTOTXT CAFFEMODEL | ARTIFACT) --activations REF.npz"
    verify.add_argument("paths", nargs="+", metavar="PROTOTXT CAFFEMODEL | ARTIFACT",
                        help="the Caffe net and its weights, or an exported artifact")
    verify.add_argument("--runtime", choices=[n for n in format_names() if n != "savedmodel"],
                        help="export to this format and run it in its runtime (with PROTOTXT "
                             "CAFFEMODEL); with an ARTIFACT, its format when the extension "
                             "does not say")
    verify.add_argument("--activations", required=True, metavar="REF.npz")
    verify.add_argument("--tolerance", type=float, default=None, metavar="R",
                        help="relative error allowed (of max |caffe| per blob; ArgMax indices "
                             "must be equal, each Softmax probability is relative to itself); "
                             "default: the file's, else 1e-4")
    verify.add_argument("--fuse-batchnorm", action="store_true",
                        help="verify the fused model (BatchNorm outputs are then not compared)")
    verify.add_argument("--fold-batchnorm", action="store_true",
                        help="verify the folded model (convolution and BatchNorm outputs are "
                             "then not compared)")

    layers = _command(
        commands, "layers", "list the Caffe layer types that convert",
        "Print the supported Caffe layer types, grouped by converter family.",
        ["caffe2keras layers", "caffe2keras layers --markdown   # the README's table",
         "caffe2keras layers --formats   # what each runtime format can express"])
    layers.add_argument("--markdown", action="store_true", help="print the README's table")
    layers.add_argument("--formats", action="store_true",
                        help="which runtime formats (ONNX, LiteRT, OpenVINO, torch) express each "
                             "layer family")

    mean = _command(
        commands, "mean", "show a mean .binaryproto and convert it to .npy",
        "Print a mean file's shape and per-channel values (usable as --mean V,V,V), and "
        "write it as a (C, H, W) float32 .npy when OUTPUT is given.",
        ["caffe2keras mean mean.binaryproto",
         "caffe2keras mean mean.binaryproto mean.npy"])
    mean.add_argument("mean", metavar="MEAN", help="a .binaryproto (or .npy) mean")
    mean.add_argument("output", nargs="?", metavar="OUTPUT.npy")
    return parser


def _layers(args) -> int:
    from .layer_table import (formats_table_markdown, formats_table_text, layer_table_markdown,
                              layer_table_text)
    if args.formats:
        print(formats_table_markdown() if args.markdown else formats_table_text())
    else:
        print(layer_table_markdown() if args.markdown else layer_table_text())
    return 0


def _verify(args) -> int:
    from .api import prepare
    from .verify import (DEFAULT_TOLERANCE, first_failure, format_checks, load_activations,
                         verify_artifact, verify_net)
    if len(args.paths) > 2:
        raise UsageError("caffe2keras verify", "expected PROTOTXT CAFFEMODEL or ARTIFACT, got "
                                               f"{len(args.paths)} paths")
    manifest, arrays = load_activations(args.activations)
    tolerance = args.tolerance if args.tolerance is not None else manifest.get(
        "tolerance", DEFAULT_TOLERANCE)
    if len(args.paths) == 1:
        if args.fuse_batchnorm or args.fold_batchnorm:
            raise UsageError("caffe2keras verify", "--fuse-batchnorm and --fold-batchnorm "
                                                   "apply to a Caffe net, not to an artifact")
        checks = verify_artifact(args.paths[0], manifest, arrays, tolerance, args.runtime)
    else:
        net = prepare(*args.paths, fuse_batchnorm=args.fuse_batchnorm,
                      fold_batchnorm=args.fold_batchnorm)
        checks = verify_net(net, manifest, arrays, tolerance, runtime=args.runtime)
    print(format_checks(checks, tolerance))
    return 0 if first_failure(checks) is None else VERIFY_FAILED


def _inspect(args) -> int:
    from .inspect import format_report
    from .reader.loader import load_net
    net = load_net(args.prototxt, args.caffemodel, input_shapes=dict(args.input_shape))
    print(format_report(net))
    return 0


def _mean(args) -> int:
    from .preprocess import channel_means, read_mean, save_mean
    array, _ = read_mean(args.mean)
    shape = "x".join(map(str, array.shape))
    print(f"{args.mean}: {shape} ({'C' if array.ndim == 1 else 'C, H, W'})")
    print(f"per-channel mean, in the file's channel order: "
          f"{','.join(f'{v:.6g}' for v in channel_means(array))}")
    if args.output:
        save_mean(array, args.output)
        print(f"wrote {args.output}")
    return 0


def _preprocess_options(args):
    options = {"--mean": args.mean, "--scale": args.scale, "--raw-scale": args.raw_scale,
               "--channel-swap": args.channel_swap}
    given = [flag for flag, value in options.items() if value is not None]
    if not args.preprocess:
        if given:
            raise UsageError("caffe2keras convert", f"{', '.join(given)} need(s) --preprocess")
        return None
    from .preprocess import RGB_TO_BGR, Preprocess, parse_mean
    swap = RGB_TO_BGR if args.channel_swap is None else args.channel_swap or None
    return Preprocess(mean=None if args.mean is None else parse_mean(args.mean),
                      scale=args.scale or 1.0, raw_scale=args.raw_scale or 1.0,
                      channel_swap=swap)


def _convert(args) -> int:
    if len(args.files) > 2:
        raise UsageError("caffe2keras convert", "expected PROTOTXT [CAFFEMODEL] OUTPUT, got "
                                                f"{len(args.files) + 1} paths")
    caffemodel, output = (args.files if len(args.files) == 2 else (None, args.files[0]))
    preprocess = _preprocess_options(args)
    from .api import convert_file
    from .progress import Progress
    from .summary import format_summary
    with Progress(sys.stderr) as progress:
        report = convert_file(args.prototxt, caffemodel, output,
                              input_shapes=dict(args.input_shape),
                              fuse_batchnorm=not args.no_fuse_batchnorm, outputs=args.outputs,
                              fold_batchnorm=args.fold_batchnorm, preprocess=preprocess,
                              format=args.format, check=not args.no_check, progress=progress)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"caffe2keras: converted {args.prototxt}", file=sys.stderr)
    print(format_summary(report), file=sys.stderr)
    return 0


HANDLERS = {"inspect": _inspect, "convert": _convert, "verify": _verify, "layers": _layers,
            "mean": _mean}


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code (see ``exit_codes``). Raises only with --debug."""
    parser = _parser()
    debug = False
    try:
        args = parser.parse_args(argv)
        debug = args.debug
        if args.command is None:  # bare `caffe2keras`: the help, as with --help
            parser.print_help()
            return 0
        if debug:
            return HANDLERS[args.command](args)
        with silenced():  # before TensorFlow loads
            return HANDLERS[args.command](args)
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else 0
    except UsageError as error:
        print(f"{error.prog}: error: {error} (see `{error.prog} --help`)", file=sys.stderr)
        return USAGE_ERROR
    except CaffeToKerasError as error:
        if debug:
            raise
        print(f"caffe2keras: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # e.g. `caffe2keras inspect ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("caffe2keras: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # a bug: one line, the traceback with --debug
        if debug:
            raise
        message = " ".join(str(error).split())  # one line, whatever the library wrote
        print(f"caffe2keras: internal error: {type(error).__name__}: {message} (run again "
              "with --debug for the traceback, and please report it)", file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
