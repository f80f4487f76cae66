"""Linear layers and optimizer steps: minipool against PyTorch CPU, each in a process of its own.

Linear: forward, and forward + backward (input and weight gradients, bias), on
LeNet-5's fc1, an MLP's layers and a larger square one, median wall time, with
the GFLOP/s this gives against the sgemm roof (one large float32 GEMM through
NumPy's OpenBLAS at the same thread count, as in bench_conv.py).  Optimizer:
one ``step()`` of SGD with momentum and of Adam over the MLP's parameters
(784-512-512-10, 670,000 values).  Every process gets ``OPENBLAS_NUM_THREADS``,
``MINIPOOL_NUM_THREADS`` and ``OMP_NUM_THREADS`` before NumPy and PyTorch load.

    python benchmarks/bench_linear.py                 # 1 and 2 threads
    python benchmarks/bench_linear.py --threads 2 --repeats 51
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import format_seconds, import_torch, machine_line, markdown_table, median_time  # noqa: E402
from bench_conv import sgemm_roof  # noqa: E402

# (name, batch, in_features, out_features)
LINEAR_SHAPES = [
    ("LeNet-5 fc1 400->120", 64, 400, 120),
    ("MLP 784->512", 64, 784, 512),
    ("MLP 512->512", 64, 512, 512),
    ("CIFAR-shaped 2048->10", 64, 2048, 10),
    ("1024->1024, batch 256", 256, 1024, 1024),
]
MLP_PARAMETERS = [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)]


def measure(library, repeats):
    """Every row on ``library`` ("minipool", "torch" or "roof") in this process."""
    if library == "roof":
        return {"roof": sgemm_roof(repeats, 3)}
    lib = __import__(library)
    rng = np.random.default_rng(0)
    to_tensor = lib.tensor if library == "minipool" else lib.from_numpy
    F = lib.nn.functional
    rows = {}
    for name, batch, fan_in, fan_out in LINEAR_SHAPES:
        x = to_tensor(rng.standard_normal((batch, fan_in)).astype(np.float32))
        w = to_tensor(rng.standard_normal((fan_out, fan_in)).astype(np.float32) / fan_in ** 0.5)
        b = to_tensor(np.zeros(fan_out, np.float32))
        x.requires_grad_(True)
        w.requires_grad_(True)
        b.requires_grad_(True)

        def forward():
            with lib.no_grad():
                F.linear(x, w, b)

        def train():
            x.grad = w.grad = b.grad = None
            F.linear(x, w, b).sum().backward()
        rows[name] = {"forward": median_time(forward, repeats), "train": median_time(train, repeats)}
    for optimizer in ("SGD momentum 0.9", "Adam"):
        params = [lib.nn.Parameter(to_tensor(rng.standard_normal(s).astype(np.float32)))
                  for s in MLP_PARAMETERS]
        for p in params:
            p.grad = to_tensor(rng.standard_normal(p.shape).astype(np.float32))
        opt = (lib.optim.SGD(params, lr=0.01, momentum=0.9) if optimizer.startswith("SGD")
               else lib.optim.Adam(params))
        rows[optimizer] = {"step": median_time(opt.step, repeats)}
    return rows


def run_worker(library, threads, repeats):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), MINIPOOL_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", library,
                           "--repeats", str(repeats)], env=env, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{library} at {threads} threads failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker != "roof":
            lib = __import__(args.worker)
            lib.set_num_threads(int(os.environ["MINIPOOL_NUM_THREADS"]))
        print(json.dumps(measure(args.worker, args.repeats)))
        return 0
    torch = import_torch()
    print(machine_line(torch))
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        roof = run_worker("roof", threads, args.repeats)["roof"]
        ours = run_worker("minipool", threads, args.repeats)
        theirs = run_worker("torch", threads, args.repeats) if torch is not None else {}
        for name, batch, fan_in, fan_out in LINEAR_SHAPES:
            flops = 2 * batch * fan_in * fan_out
            for mode, times in (("forward", 1), ("train", 3)):
                mine = ours[name][mode]
                peer = theirs.get(name, {}).get(mode)
                rate = times * flops / mine / 1e9
                rows.append([name, "fwd" if mode == "forward" else "fwd+bwd", threads,
                             format_seconds(mine), "-" if peer is None else format_seconds(peer),
                             "-" if peer is None else f"{peer / mine:.2f}x",
                             f"{rate:.0f} ({rate / roof:.0%} of {roof:.0f})"])
        for name in ("SGD momentum 0.9", "Adam"):
            mine, peer = ours[name]["step"], theirs.get(name, {}).get("step")
            rows.append([f"{name} step, 670k parameters", "step", threads, format_seconds(mine),
                         "-" if peer is None else format_seconds(peer),
                         "-" if peer is None else f"{peer / mine:.2f}x", ""])
    print(f"median of {args.repeats} calls per figure; each library (and the sgemm roof) in a "
          "process of its own\n")
    print(markdown_table(["case (float32)", "pass", "threads", "minipool", "PyTorch",
                          "minipool speed-up", "GFLOP/s (of the sgemm roof)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
