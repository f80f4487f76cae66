"""LeNet-5 throughput: minipool against the same model in PyTorch CPU eager.

Training = forward + cross-entropy + backward + SGD(momentum) step on a batch
of 64 1x32x32 images; inference = forward under no_grad.  Both frameworks run
the same weights on the same data with the same thread count (default 2).
Prints a markdown table of images/s and the ratio minipool / PyTorch, and the
load average (on a shared 2-core machine, other processes distort the numbers:
run it on a quiet machine).  Nothing process-wide is set beyond the thread
count: this is what ``import minipool`` gives any script.  Both libraries share
one process here; ``bench_user_loop.py`` runs each in a process of its own.
``--profile`` adds a cProfile of minipool's training steps: where the time goes.

    python benchmarks/bench_lenet.py                 # batch 64, 2 threads
    python benchmarks/bench_lenet.py --profile       # + the top functions
"""
import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import import_torch, machine_line, markdown_table, median_time, set_threads  # noqa: E402

import minipool as mp  # noqa: E402
import minipool.nn.functional as F  # noqa: E402
from minipool import optim  # noqa: E402
from minipool.models.lenet import LeNet5, lenet5_torch  # noqa: E402

TARGETS = {"training": 1.5, "inference": 1.0}


def minipool_steps(batch, x, y):
    model = LeNet5(seed=0)
    opt = optim.SGD(list(model.parameters()), lr=0.01, momentum=0.9)
    xt, yt = mp.tensor(x), mp.tensor(y)

    def train_step():
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with mp.no_grad():
            model(xt)

    return model, train_step, infer


def torch_steps(torch, model_state, x, y):
    model = lenet5_torch(torch, model_state)  # the same network and weights, in PyTorch layers
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def train_step():
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(xt)

    return train_step, infer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs (best reported)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile minipool's training steps")
    args = parser.parse_args(argv)
    torch = import_torch(args.no_torch)
    set_threads(args.threads, torch)

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else ()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    model, mp_train, mp_infer = minipool_steps(args.batch, x, y)
    cases = {"training": [mp_train], "inference": [mp_infer]}
    if torch is not None:
        t_train, t_infer = torch_steps(torch, model.state_dict(), x, y)
        cases["training"].append(t_train)
        cases["inference"].append(t_infer)

    def rates(fns):
        """Images/s of each function, timed in alternation (minipool, PyTorch, minipool, ...)
        so a burst of load from other processes hits both; the best run of each is kept,
        since interference can only slow a run down."""
        for fn in fns:
            fn()  # warm-up
        best = [0.0] * len(fns)
        for _ in range(args.repeats):
            for i, fn in enumerate(fns):
                seconds = median_time(lambda: [fn() for _ in range(args.steps)], 1, warmup=0)
                best[i] = max(best[i], args.batch * args.steps / seconds)
        return best

    rows = []
    for mode, fns in cases.items():
        measured = rates(fns)
        ours = measured[0]
        if len(fns) > 1:
            theirs = measured[1]
            ratio = ours / theirs
            verdict = "met" if ratio >= TARGETS[mode] else "NOT met"
            rows.append([mode, f"{ours:,.0f}", f"{theirs:,.0f}", f"{ratio:.2f}x",
                         f">= {TARGETS[mode]}x ({verdict})"])
        else:
            rows.append([mode, f"{ours:,.0f}", "-", "-", f">= {TARGETS[mode]}x"])
    print(machine_line(torch))
    if hasattr(os, "getloadavg"):  # other processes on a 2-core machine distort every number
        print("load average before: " + " ".join(f"{v:.2f}" for v in load_before)
              + " | after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"LeNet-5, batch {args.batch}, {args.threads} threads, images/s (best of {args.repeats} alternating runs of {args.steps} "
          f"steps)\n")
    print(markdown_table(["mode", "minipool img/s", "PyTorch img/s", "minipool / PyTorch", "target"], rows))

    if args.profile:
        profiler = cProfile.Profile(time.process_time)  # CPU time: steadier on a shared machine
        profiler.enable()
        for _ in range(args.steps * 3):
            mp_train()
        profiler.disable()
        print(f"\ncProfile (CPU seconds) of {args.steps * 3} minipool training steps, top 25 by own time:")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
