"""The per-sample norms, conv1d and embedding against PyTorch CPU eager, one thread.

These ops are NumPy (the norms: one fused float64 op; conv1d: the conv2d
kernel on a height-1 image; embedding: a row gather and an ``np.add.at``
scatter), so this records where they stand rather than a kernel's speed.
Each op's minipool and PyTorch runs are interleaved in rounds and the best
CPU time (``time.thread_time``) is kept, which a shared machine disturbs
least.  float32, shapes of a tiny CNN at batch 64.

    python benchmarks/bench_norms.py
    python benchmarks/bench_norms.py --quick
"""
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MINIPOOL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time, format_seconds, import_torch, machine_line, markdown_table, parse_args  # noqa: E402


def cases(mp, torch):
    F, TF = mp.nn.functional, torch.nn.functional
    rng = np.random.default_rng(0)

    def norm_case(name, shape, channels, ours, theirs):
        arrays = [rng.standard_normal(s).astype(np.float32) for s in (shape, channels, channels)]
        return name, shape, arrays, ours, theirs

    yield norm_case("layer_norm 64x120 over 120", (64, 120), (120,),
                    lambda x, w, b: F.layer_norm(x, 120, w, b), lambda x, w, b: TF.layer_norm(x, (120,), w, b))
    yield norm_case("group_norm 64x16x14x14, 4 groups", (64, 16, 14, 14), (16,),
                    lambda x, w, b: F.group_norm(x, 4, w, b), lambda x, w, b: TF.group_norm(x, 4, w, b))
    yield norm_case("instance_norm 64x6x28x28, affine", (64, 6, 28, 28), (6,),
                    lambda x, w, b: F.instance_norm(x, None, None, w, b),
                    lambda x, w, b: TF.instance_norm(x, None, None, w, b))
    conv = [rng.standard_normal(s).astype(np.float32) for s in ((64, 16, 128), (32, 16, 5), (32,))]
    yield ("conv1d 64x16x128, 16->32, k5 pad 2", conv[0].shape, conv,
           lambda x, w, b: F.conv1d(x, w, b, padding=2), lambda x, w, b: TF.conv1d(x, w, b, padding=2))


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    torch = import_torch()
    if torch is None:
        sys.exit("bench_norms needs PyTorch (the peer it is measured against)")
    torch.set_num_threads(1)
    import minipool as mp
    repeats, rounds = (3, 1) if args.quick else (5, 3)
    print(machine_line(torch))
    rows = []
    for name, shape, arrays, ours, theirs in cases(mp, torch):
        mine = [mp.tensor(a, requires_grad=True) for a in arrays]
        peer = [torch.tensor(a, requires_grad=True) for a in arrays]
        grad = np.random.default_rng(1).standard_normal(ours(*mine).shape).astype(np.float32)
        mp_grad, torch_grad = mp.tensor(grad), torch.tensor(grad)

        def mp_forward():
            with mp.no_grad():
                ours(*mine)

        def torch_forward():
            with torch.no_grad():
                theirs(*peer)

        runs = {"mp fwd": mp_forward, "torch fwd": torch_forward,
                "mp fwd+bwd": lambda: ours(*mine).backward(mp_grad),
                "torch fwd+bwd": lambda: theirs(*peer).backward(torch_grad)}
        best = {key: float("inf") for key in runs}
        for _ in range(rounds):  # interleaved: a busy spell hits both libraries
            for key, fn in runs.items():
                best[key] = min(best[key], best_time(fn, repeats, time.thread_time))
        for p in ("fwd", "fwd+bwd"):
            ratio = best[f"torch {p}"] / best[f"mp {p}"]
            rows.append([name, p, format_seconds(best[f"mp {p}"]), format_seconds(best[f"torch {p}"]),
                         f"{ratio:.2f}x"])
    print(markdown_table(["op (float32)", "pass", "minipool", "PyTorch", "minipool speed vs PyTorch"], rows))


if __name__ == "__main__":
    main()
