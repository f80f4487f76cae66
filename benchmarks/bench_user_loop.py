"""A user's own training loop: minipool against PyTorch, each in its own plain process.

Every figure comes from ``benchmarks/_user_loop.py``, a script that does what
a user's script does (import, ``set_num_threads``, ``nn.Sequential``, loop) and
nothing else: no BLAS or malloc settings, no trainer internals.  Libraries run
in alternation (minipool, PyTorch, minipool, ...) so a burst of outside load
hits both; each figure is the median over ``--repeats`` processes.  With
``--busy N`` the benchmark also starts N processes that spin on a core each,
measures again, and stops them: how much of its quiet speed each library
keeps on a busy machine.

    python benchmarks/bench_user_loop.py                      # LeNet-5, the CIFAR-shaped net, an MLP
    python benchmarks/bench_user_loop.py --busy 1             # + with one core taken
    python benchmarks/bench_user_loop.py --nets lenet --modes train --threads 2 --repeats 3
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import import_torch, machine_line, markdown_table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_user_loop.py")
NETS = {"lenet": "LeNet-5 (1x28x28)", "cifar": "CIFAR-shaped (3x32x32, conv 32/64/128)",
        "mlp": "MLP (784-512-512-10)"}
SPIN = "import time\nwhile True:\n    pass\n"


def run_worker(library, net, mode, threads, seconds):
    done = subprocess.run([sys.executable, WORKER, library, net, mode, str(threads), str(seconds)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{library} {net} {mode} failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def measure(libraries, net, mode, threads, seconds, repeats):
    """{library: median images/s} over ``repeats`` alternating processes."""
    rates = {lib: [] for lib in libraries}
    for _ in range(repeats):
        for lib in libraries:
            rates[lib].append(run_worker(lib, net, mode, threads, seconds))
    return {lib: statistics.median(values) for lib, values in rates.items()}


class BusyCores:
    """N processes spinning on the CPU for the duration of a ``with`` block."""

    def __init__(self, n):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(self.n)]
        time.sleep(0.5)  # let them settle on their cores
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="lenet,cifar,mlp")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--busy", type=int, default=0, help="also measure with N busy processes")
    parser.add_argument("--busy-modes", default=None, help="modes to measure under load (default: --modes)")
    parser.add_argument("--repeats", type=int, default=5, help="processes per figure (median)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per process")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    torch = None if args.no_torch else import_torch()
    libraries = ["minipool"] + (["torch"] if torch is not None else [])
    threads = [int(t) for t in args.threads.split(",")]
    loads = [0] + ([args.busy] if args.busy else [])

    results = {}
    for load in loads:
        with BusyCores(load):
            modes = args.modes if load == 0 or args.busy_modes is None else args.busy_modes
            for net in args.nets.split(","):
                for mode in modes.split(","):
                    for t in threads:
                        results[net, mode, t, load] = measure(libraries, net, mode, t, args.seconds,
                                                              args.repeats)
                        print(f"  measured {net} {mode} threads={t} busy={load}: {results[net, mode, t, load]}",
                              file=sys.stderr, flush=True)

    print(machine_line(torch))
    print(f"plain-script loops, batch 64, SGD with momentum; images/s, median of {args.repeats} "
          f"alternating processes of {args.seconds:g} s each\n")
    rows = []
    for (net, mode, t, load), rate in results.items():
        ours = rate["minipool"]
        theirs = rate.get("torch")
        row = [NETS[net], mode, t, "quiet" if load == 0 else f"{load} busy", f"{ours:,.0f}",
               "-" if theirs is None else f"{theirs:,.0f}",
               "-" if theirs is None else f"{ours / theirs:.2f}x"]
        if load:
            quiet = results[net, mode, t, 0]
            kept = f"{ours / quiet['minipool']:.0%}"
            if theirs is not None:
                kept += f" / {theirs / quiet['torch']:.0%}"
            one = results.get((net, mode, 1, load))
            kept += f"; vs 1 thread under load {ours / one['minipool']:.0%}" if one and t != 1 else ""
            row.append(kept)
        else:
            row.append("")
        rows.append(row)
    print(markdown_table(["net", "mode", "threads", "machine", "minipool img/s", "PyTorch img/s",
                          "minipool / PyTorch", "kept of quiet speed (minipool / PyTorch)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
