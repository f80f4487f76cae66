"""The command line: ``python -m minipool {config,demo}``."""
import argparse
import sys


def _demo(args):
    """A tiny end-to-end check: an autograd expression and its gradcheck."""
    import numpy as np

    import minipool as mp

    x = mp.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype="float64", requires_grad=True)
    y = (x.tanh() * x.exp()).sum()
    y.backward()
    print(f"y = sum(tanh(x) * exp(x)) = {y.item():.6f}")
    print("dy/dx =\n", x.grad.numpy())
    ok = mp.gradcheck(lambda t: (t.tanh() * t.exp()).sum(), [x])
    print("gradcheck:", "passed" if ok else "FAILED")
    return 0


def _config(args):
    import minipool

    minipool.show_config()
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m minipool",
                                     description="minipool: autograd, pooling kernels, LeNet-5.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("config", help="show how minipool was built").set_defaults(run=_config)
    sub.add_parser("demo", help="a tiny autograd + gradcheck demo").set_defaults(run=_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
