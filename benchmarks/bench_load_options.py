"""Which way of running 2 threads survives a busy machine: the options measured side by side.

Each option is the plain LeNet-5 training loop of ``_user_loop.py`` with one
environment setting, run quiet and with ``--busy`` spinning processes, in
alternation (median of ``--repeats`` processes).  The settings:

* ``adaptive`` -- minipool's default: kernels size their team from the cores
  other processes leave free (``minipool.set_adaptive_threads``);
* ``fixed`` -- ``MINIPOOL_ADAPTIVE_THREADS=0``: always 2 threads, OpenMP's
  default wait policy;
* ``passive`` -- fixed, plus ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once);
* ``spin1000`` -- fixed, plus ``GOMP_SPINCOUNT=1000`` (idle threads spin briefly);
* ``1 thread`` -- the reference a 2-thread run must not fall below under load.

    python benchmarks/bench_load_options.py --busy 1
"""
import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_line, markdown_table  # noqa: E402
from bench_user_loop import WORKER, BusyCores  # noqa: E402

OPTIONS = {
    "adaptive (default)": ({}, 2),
    "fixed team": ({"MINIPOOL_ADAPTIVE_THREADS": "0"}, 2),
    "fixed + OMP_WAIT_POLICY=PASSIVE": ({"MINIPOOL_ADAPTIVE_THREADS": "0", "OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "fixed + GOMP_SPINCOUNT=1000": ({"MINIPOOL_ADAPTIVE_THREADS": "0", "GOMP_SPINCOUNT": "1000"}, 2),
    "1 thread": ({}, 1),
}


def run(env, threads, net, seconds):
    done = subprocess.run([sys.executable, WORKER, "minipool", net, "train", str(threads), str(seconds)],
                          env=dict(os.environ, **env), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--busy", type=int, default=1)
    parser.add_argument("--net", default="lenet", choices=["lenet", "cifar"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    results = {}
    for load in (0, args.busy):
        with BusyCores(load):
            rates = {name: [] for name in OPTIONS}
            for _ in range(args.repeats):
                for name, (env, threads) in OPTIONS.items():
                    rates[name].append(run(env, threads, args.net, args.seconds))
            for name in OPTIONS:
                results[name, load] = statistics.median(rates[name])
                print(f"  {name} busy={load}: {results[name, load]:.0f}", file=sys.stderr, flush=True)
    print(machine_line(None))
    print(f"{args.net} training, plain loop, batch 64; images/s, median of {args.repeats} alternating "
          f"processes of {args.seconds:g} s; busy = {args.busy} spinning process(es)\n")
    one_loaded = results["1 thread", args.busy]
    rows = []
    for name in OPTIONS:
        quiet, loaded = results[name, 0], results[name, args.busy]
        rows.append([name, f"{quiet:,.0f}", f"{loaded:,.0f}", f"{loaded / quiet:.0%}",
                     f"{loaded / one_loaded:.0%}"])
    print(markdown_table(["option", "quiet img/s", "busy img/s", "kept of its quiet speed",
                          "of 1 thread under the same load"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
