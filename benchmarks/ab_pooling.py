"""A/B of bench_pooling.py's rows: this checkout's minipool against another built checkout's,
in ONE process.

Both packages are imported into this process (the other first; its modules are kept and
taken out of ``sys.modules``, then this checkout's are imported), so both run on the same
core, the same OpenMP runtime and the same allocator state.  Each round times a row on
one build, then the other (the order alternating), the minimum of ``--inner`` calls each;
the table gives the median over rounds and the minimum over all calls, as new / old time
(< 1: this checkout is faster).  Build the other checkout in place first
(``python setup.py build_ext --inplace``).

    python benchmarks/ab_pooling.py --old ../minipool-4141b00 --threads 1,2 --rounds 41
"""
import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {"32x64x56x56": (32, 64, 56, 56), "LeNet 64x6x28x28": (64, 6, 28, 28)}
CASES = ["max 2x2 fwd train", "max 2x2 fwd infer", "max 2x2 bwd", "max 3x3 s2 p1 fwd train",
         "avg 2x2 fwd", "avg 2x2 bwd"]


class Build:
    """One checkout's minipool, its modules kept apart from the other's."""

    def __init__(self, root):
        sys.path.insert(0, root)
        try:
            import minipool
            import minipool.nn.functional  # noqa: F401
        finally:
            sys.path.remove(root)
        self.modules = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "minipool"}
        for name in self.modules:
            del sys.modules[name]
        if not minipool.__file__.startswith(os.path.abspath(root)):
            raise SystemExit(f"imported {minipool.__file__}, not the checkout at {root}")
        self.mp, self.F = minipool, minipool.nn.functional
        self.root = root

    def enter(self):
        """Make this build's modules the ones ``import minipool...`` finds (lazy imports
        inside its functions)."""
        for name in [k for k in sys.modules if k.split(".")[0] == "minipool"]:
            del sys.modules[name]
        sys.modules.update(self.modules)

    def runner(self, case, x_np, data_format):
        """A no-argument callable running ``case`` on this build."""
        mp, F = self.mp, self.F
        kernel = 3 if case.startswith("max 3x3") else 2
        pool = (lambda x: F.avg_pool2d(x, 2, data_format=data_format)) if case.startswith("avg") \
            else (lambda x: F.max_pool2d(x, kernel, 2, kernel - 2, data_format=data_format))
        x = mp.tensor(x_np, requires_grad="infer" not in case)
        if case.endswith("bwd"):
            y = pool(x)
            ctx, grad = y.grad_fn, np.ones(y.shape, np.float32)
            return lambda: type(ctx).backward(ctx, grad)
        if "infer" in case:
            def infer():
                with mp.no_grad():
                    pool(x)
            return infer
        return lambda: pool(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the other checkout (built in place)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--inner", type=int, default=5, help="calls per round (minimum taken)")
    parser.add_argument("--only", default="", help="run only the rows whose 'input case layout' "
                        "contains this text (e.g. 'LeNet 64x6x28x28 avg 2x2 bwd')")
    args = parser.parse_args(argv)
    old, new = Build(os.path.abspath(args.old)), Build(HERE)
    print(f"old: {old.root}; new: {new.root}; {args.rounds} rounds, min of {args.inner} calls "
          f"each, alternating; ratio = new / old time\n")
    print("| threads | input | case | layout | old (median) | new (median) | ratio | "
          "ratio of minima |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        for build in (old, new):
            build.enter()
            build.mp.set_num_threads(threads)
        for shape_name, shape in SHAPES.items():
            first = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            last = np.ascontiguousarray(first.transpose(0, 2, 3, 1))
            for case in CASES:
                for layout, x_np in (("NCHW", first), ("NHWC", last)):
                    if args.only not in f"{shape_name} {case} {layout}":
                        continue
                    fmt = "channels_first" if layout == "NCHW" else "channels_last"
                    runs = []
                    for build in (old, new):
                        build.enter()
                        runs.append(build.runner(case, x_np, fmt))
                    times = ([], [])
                    for r in range(args.rounds + 2):
                        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                            (old, new)[i].enter()
                            seconds = best_time(runs[i], args.inner)
                            if r >= 2:  # two rounds of warm-up
                                times[i].append(seconds)
                    med = [statistics.median(t) for t in times]
                    low = [min(t) for t in times]
                    print(f"| {threads} | {shape_name} | {case} | {layout} | {med[0] * 1e6:.1f} us "
                          f"| {med[1] * 1e6:.1f} us | {med[1] / med[0]:.3f} "
                          f"| {low[1] / low[0]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
