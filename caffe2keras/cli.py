"""The ``caffe2keras`` command: thin argument parsing over the API, errors as one line."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import CaffeToKerasError

USAGE_ERROR = 2


class _UsageError(Exception):
    pass


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"expected NAME=N,C,H,W with positive sizes, got {text!r}")
    return name, shape


def _add_input_shape_option(command) -> None:
    command.add_argument("--input-shape", action="append", type=parse_input_shape, default=[],
                         metavar="NAME=N,C,H,W", help="override an input's shape, in Caffe's "
                                                      "order (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caffe2keras",
        description="Convert Caffe models (deploy.prototxt + .caffemodel) into Keras 3 models.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

    inspect = commands.add_parser(
        "inspect", help="list a net's layers with Caffe's shapes",
        description="Print every layer with its Caffe top shapes (NCHW), parameter count and "
                    "whether it converts.",
        epilog="example: caffe2keras inspect deploy.prototxt model.caffemodel")
    inspect.add_argument("prototxt")
    inspect.add_argument("caffemodel", nargs="?")
    _add_input_shape_option(inspect)

    convert = commands.add_parser(
        "convert", help="convert to a Keras .h5 or .keras file",
        description="Convert a Caffe net into a Keras model file (.h5 or .keras by extension). "
                    "The file appears only once it is complete.",
        epilog="example: caffe2keras convert deploy.prototxt model.caffemodel model.h5")
    convert.add_argument("prototxt")
    convert.add_argument("files", nargs="+", metavar="[caffemodel] output",
                         help="the weights (optional: without them, the prototxt's fillers) and "
                              "the output file")
    _add_input_shape_option(convert)
    convert.add_argument("--no-fuse-batchnorm", action="store_true",
                         help="keep BatchNorm and Scale as two Keras layers")

    verify = commands.add_parser(
        "verify", help="compare the converted model with Caffe's activations, layer by layer",
        description="Convert the net, run it on the inputs stored in REF.npz and compare every "
                    "stored blob with Caffe's. Exit code 0 only if all pass. Make REF.npz with "
                    "scripts/dump_caffe_activations.py where pycaffe is installed.",
        epilog="example: caffe2keras verify deploy.prototxt model.caffemodel --activations ref.npz")
    verify.add_argument("prototxt")
    verify.add_argument("caffemodel")
    verify.add_argument("--activations", required=True, metavar="REF.npz")
    verify.add_argument("--tolerance", type=float, default=None,
                        help="relative error allowed (of max |caffe| per blob); default: the "
                             "file's, else 1e-4")
    verify.add_argument("--fuse-batchnorm", action="store_true",
                        help="verify the fused model (BatchNorm outputs are then not compared)")

    layers = commands.add_parser(
        "layers", help="list the Caffe layer types that convert",
        description="Print the supported Caffe layer types, grouped by converter family.",
        epilog="example: caffe2keras layers --markdown")
    layers.add_argument("--markdown", action="store_true", help="print the README's table")
    return parser


def _layers(args) -> int:
    from .layer_table import layer_table_markdown, layer_table_text
    print(layer_table_markdown() if args.markdown else layer_table_text())
    return 0


def _verify(args) -> int:
    from .api import prepare
    from .verify import DEFAULT_TOLERANCE, first_failure, format_checks, load_activations, verify_net
    manifest, arrays = load_activations(args.activations)
    tolerance = args.tolerance if args.tolerance is not None else manifest.get(
        "tolerance", DEFAULT_TOLERANCE)
    net = prepare(args.prototxt, args.caffemodel, fuse_batchnorm=args.fuse_batchnorm)
    checks = verify_net(net, manifest, arrays, tolerance)
    print(format_checks(checks, tolerance))
    return 0 if first_failure(checks) is None else 1


def _inspect(args) -> int:
    from .inspect import format_report
    from .reader.loader import load_net
    net = load_net(args.prototxt, args.caffemodel, input_shapes=dict(args.input_shape))
    print(format_report(net))
    return 0


def _convert(args) -> int:
    if len(args.files) > 2:
        raise _UsageError("convert takes PROTOTXT [CAFFEMODEL] OUTPUT")
    caffemodel, output = (args.files if len(args.files) == 2 else (None, args.files[0]))
    from .api import convert_file
    start = time.perf_counter()
    net = convert_file(args.prototxt, caffemodel, output, input_shapes=dict(args.input_shape),
                       fuse_batchnorm=not args.no_fuse_batchnorm)
    for warning in net.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    size = os.path.getsize(output) / 2**20
    print(f"wrote {output}: {len(net.layers)} layers, {size:.1f} MiB, "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handlers = {"inspect": _inspect, "convert": _convert, "verify": _verify, "layers": _layers}
    try:
        return handlers[args.command](args)
    except _UsageError as error:
        parser.error(str(error))
    except CaffeToKerasError as error:
        if args.debug:
            raise
        print(f"caffe2keras: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # e.g. `caffe2keras inspect ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("caffe2keras: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
