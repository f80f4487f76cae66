"""A/B of conv2d's Winograd engine in one process: minipool with ``use_winograd(1)`` (the
default: Winograd where ``_winograd_win`` picks it) against ``use_winograd(0)`` (the
engines before it), and PyTorch, on the 3x3 rows of bench_conv.py's sweep (batch 64,
padding 1); forward, and forward + backward (weight, bias and, except for first layers,
input gradients).  The three are interleaved (on and off taking turns to run first), each
timed REPEATS times; the table shows the minimum: CPU time of the calling thread
(``time.thread_time``) at 1 thread, so that other processes on a busy machine count less,
and wall time at 2 threads.

    python benchmarks/bench_winograd.py THREADS [REPEATS]
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minipool as mp  # noqa: E402
import minipool.nn.functional as F  # noqa: E402
from minipool._kernels import conv2d as kernels  # noqa: E402
from minipool.ops.conv import ConvGeometry  # noqa: E402

# (N, C, H, W, O): the 3x3 padding-1 rows of bench_conv.py's SWEEP_SHAPES
ROWS = [(64, 3, 32, 32, 32), (64, 32, 16, 16, 64), (64, 64, 8, 8, 128), (64, 1, 28, 28, 16),
        (64, 16, 32, 32, 16), (64, 32, 32, 32, 32), (64, 128, 8, 8, 128),
        (64, 128, 4, 4, 256), (64, 256, 4, 4, 256)]


def main(threads, repeats):
    import torch
    mp.set_num_threads(threads)
    torch.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    rng = np.random.default_rng(0)
    print(f"{threads} thread(s), min of {repeats} interleaved runs, "
          f"{'CPU' if threads == 1 else 'wall'} time in ms; speed-up = torch / minipool")
    print("| layer | Winograd | fwd on / off / torch | on vs off | vs torch on / off "
          "| f+b on / off / torch | on vs off | vs torch on / off |")
    print("|---|---|---|---|---|---|---|---|")
    for N, C, H, W, O in ROWS:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((O, C, 3, 3)) * 0.1).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        g = rng.standard_normal((N, O, H, W)).astype(np.float32)
        input_grad = C > 3  # first layers need no input gradient
        tx = torch.tensor(x, requires_grad=input_grad)
        tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        tg = torch.tensor(g)

        def mp_forward():
            with mp.no_grad():
                F.conv2d(mp.tensor(x), mp.tensor(w), mp.tensor(b), padding=1)

        def mp_train():
            F.conv2d(mp.tensor(x, requires_grad=input_grad), mp.tensor(w, requires_grad=True),
                     mp.tensor(b, requires_grad=True), padding=1).backward(g)

        def torch_forward():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, tb, padding=1)

        def torch_train():
            torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(tg)
            tx.grad = tw.grad = tb.grad = None

        def timed(fn):
            start = clock()
            fn()
            return clock() - start

        times = {key: [] for key in ("on_f", "off_f", "torch_f", "on_t", "off_t", "torch_t")}
        previous = kernels.use_winograd(1)
        try:
            for r in range(repeats):  # on and off alternate which runs first after torch
                for mode, tag in ((1, "on"), (0, "off"))[::1 if r % 2 else -1]:
                    kernels.use_winograd(mode)
                    times[tag + "_f"].append(timed(mp_forward))
                    times[tag + "_t"].append(timed(mp_train))
                times["torch_f"].append(timed(torch_forward))
                times["torch_t"].append(timed(torch_train))
        finally:
            kernels.use_winograd(previous)
        t = {key: min(v) * 1e3 for key, v in times.items()}
        picked = kernels.uses_winograd(C, H, W, O, ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, H, W, 1))
        print(f"| {C}->{O} on {H}x{W} | {'yes' if picked else 'no'} "
              f"| {t['on_f']:.2f} / {t['off_f']:.2f} / {t['torch_f']:.2f} "
              f"| {t['off_f'] / t['on_f']:.2f}x "
              f"| {t['torch_f'] / t['on_f']:.2f}x / {t['torch_f'] / t['off_f']:.2f}x "
              f"| {t['on_t']:.2f} / {t['off_t']:.2f} / {t['torch_t']:.2f} "
              f"| {t['off_t'] / t['on_t']:.2f}x "
              f"| {t['torch_t'] / t['on_t']:.2f}x / {t['torch_t'] / t['off_t']:.2f}x |", flush=True)


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 3:
        sys.exit(__doc__)
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 9)
