"""Dump real-Caffe activations of any model in the golden format (see golden_format.py).

Usage (under pycaffe):
    python scripts/dump_caffe_activations.py DEPLOY WEIGHTS OUT.npz \\
        [--input NAME=file.npy ...] [--seed S] [--layers NAME,NAME,...] [--net-name NAME]

Inputs not given with --input are standard normal, of the declared shape, drawn in input
order from numpy RandomState(S).  A given input may have another shape than the declared
one (the net is reshaped).  Every top of every layer is recorded unless --layers names the
layers to keep.  The manifest's weights_seed is null (the weights come from WEIGHTS).
"""

import argparse
import os
import sys

import numpy as np

import golden_format as gf


def parse_inputs(pairs):
    inputs = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--input expects NAME=file.npy, got {pair!r}")
        inputs[name] = np.load(path, allow_pickle=False).astype(np.float32)
    return inputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deploy", help="the net definition (.prototxt)")
    parser.add_argument("weights", help="the trained weights (.caffemodel)")
    parser.add_argument("out", help="the .npz to write")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                        help="the value of an input blob (repeatable)")
    parser.add_argument("--seed", type=int, default=0,
                        help="RandomState seed for inputs not given (default 0)")
    parser.add_argument("--layers", help="comma-separated layer names to record (default: all)")
    parser.add_argument("--net-name", help="the manifest's net name (default: the prototxt's "
                                           "name, else the file name)")
    args = parser.parse_args(argv)

    import caffe  # after golden_format set the glog / BLAS environment

    param = gf.read_prototxt(args.deploy)
    net = caffe.Net(args.deploy, caffe.TEST, weights=args.weights)
    names = gf.input_names(net)
    given = parse_inputs(args.input)
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise SystemExit(f"not an input of the net: {', '.join(unknown)} "
                         f"(inputs: {', '.join(names)})")
    rng = np.random.RandomState(args.seed)
    inputs = {}
    for name in names:
        if name in given:
            inputs[name] = given[name]
        else:
            inputs[name] = rng.standard_normal(net.blobs[name].data.shape).astype(np.float32)

    declared = gf.declared_layer_names(param)
    keep = None
    if args.layers:
        keep = {name.strip() for name in args.layers.split(",") if name.strip()}
        missing = sorted(keep - declared)
        if missing:
            raise SystemExit(f"no such layer(s): {', '.join(missing)}")
    entries, arrays = gf.record(net, inputs, declared, keep)
    net_name = args.net_name or param.name or os.path.splitext(os.path.basename(args.deploy))[0]
    gf.write_golden(args.out, gf.manifest(net_name, None, args.seed, inputs, entries),
                    inputs, arrays)
    print(f"{args.out}: {len(inputs)} input(s), {len(entries)} blobs", file=sys.stderr)


if __name__ == "__main__":
    main()
