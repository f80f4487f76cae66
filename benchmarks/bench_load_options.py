"""Which way of running 2 threads survives a busy machine: the options measured side by side.

Each option is the plain training loop of ``_user_loop.py`` (LeNet-5 or the
CIFAR-shaped net) with one environment setting, run quiet and with ``--busy``
spinning processes, in alternation (median of ``--repeats`` processes).  The
settings:

* ``adaptive + load team`` -- minipool's default: kernels size their team from
  the cores other processes leave free (``minipool.set_adaptive_threads``), and
  long conv2d calls keep both threads under load on the load-tolerant team
  (``minipool/_kernels/load_team.h``, ``_config.kernel_team``);
* ``adaptive only`` -- ``MINIPOOL_LOAD_TEAM=never``: the shrunk team only (before the load team);
* ``load team always`` -- ``MINIPOOL_LOAD_TEAM=always``: conv2d on the load team
  even on a quiet machine (what it costs there);
* ``fixed`` -- ``MINIPOOL_ADAPTIVE_THREADS=0``: always 2 threads on OpenMP, its
  default wait policy;
* ``passive`` -- fixed, plus ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once);
* ``spin1000`` -- fixed, plus ``GOMP_SPINCOUNT=1000`` (idle threads spin briefly);
* ``1 thread`` -- the reference a 2-thread run must not fall below under load.

``--pin`` runs the benchmark on the first two CPUs it may use and pins the
spinning process(es) to the last of them, so "one busy core" is the same core
every time (Linux).  The decisive command for the CIFAR-shaped net:

    python benchmarks/bench_load_options.py --net cifar --busy 1 --pin --repeats 5
    python benchmarks/bench_load_options.py --busy 1            # LeNet-5, all options
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_line, markdown_table  # noqa: E402
from bench_user_loop import SPIN, WORKER  # noqa: E402

OPTIONS = {
    "adaptive + load team (default)": ({}, 2),
    "adaptive only (MINIPOOL_LOAD_TEAM=never)": ({"MINIPOOL_LOAD_TEAM": "never"}, 2),
    "load team always (MINIPOOL_LOAD_TEAM=always)": ({"MINIPOOL_LOAD_TEAM": "always"}, 2),
    "fixed team": ({"MINIPOOL_ADAPTIVE_THREADS": "0"}, 2),
    "fixed + OMP_WAIT_POLICY=PASSIVE": ({"MINIPOOL_ADAPTIVE_THREADS": "0", "OMP_WAIT_POLICY": "PASSIVE"}, 2),
    "fixed + GOMP_SPINCOUNT=1000": ({"MINIPOOL_ADAPTIVE_THREADS": "0", "GOMP_SPINCOUNT": "1000"}, 2),
    "1 thread": ({}, 1),
}
ONE_THREAD = "1 thread"


def pinned_cpus(pin):
    """(CPUs for the benchmark, CPUs for the spinners) or (None, None) without ``--pin``."""
    if not pin:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))[:2]
    return set(cpus), {cpus[-1]}


def run(env, threads, net, seconds, cpus):
    done = subprocess.run([sys.executable, WORKER, "minipool", net, "train", str(threads), str(seconds)],
                          env=dict(os.environ, **env), capture_output=True, text=True, timeout=600,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return float(done.stdout.strip().splitlines()[-1])


class Spinners:
    """``n`` processes spinning for the duration of a ``with`` block, on ``cpus`` if given."""

    def __init__(self, n, cpus):
        self.n, self.cpus, self.procs = n, cpus, []

    def __enter__(self):
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", SPIN],
                preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None))
        time.sleep(0.5)  # let them settle on their cores
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--busy", type=int, default=1)
    parser.add_argument("--net", default="lenet", choices=["lenet", "cifar"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pin", action="store_true",
                        help="benchmark on the first 2 CPUs, spinners on the second (Linux)")
    parser.add_argument("--options", default=None,
                        help="comma-separated option numbers (1-based, in the table's order; "
                             "'1 thread' is always measured)")
    args = parser.parse_args(argv)
    names = list(OPTIONS)
    if args.options:
        names = [names[int(i) - 1] for i in args.options.split(",")]
    if ONE_THREAD not in names:
        names.append(ONE_THREAD)
    bench_cpus, spin_cpus = pinned_cpus(args.pin)
    results, spread = {}, {}
    for load in (0, args.busy):
        with Spinners(load, spin_cpus):
            rates = {name: [] for name in names}
            for _ in range(args.repeats):
                for name in names:
                    env, threads = OPTIONS[name]
                    rates[name].append(run(env, threads, args.net, args.seconds, bench_cpus))
            for name in names:
                results[name, load] = statistics.median(rates[name])
                spread[name, load] = (min(rates[name]), max(rates[name]))
                print(f"  {name} busy={load}: {results[name, load]:.0f} "
                      f"(all: {', '.join(f'{r:.0f}' for r in rates[name])})", file=sys.stderr, flush=True)
    print(machine_line(None))
    print(f"{args.net} training, plain loop, batch 64; images/s, median (min-max) of {args.repeats} "
          f"alternating processes of {args.seconds:g} s; busy = {args.busy} spinning process(es)"
          + (f"; benchmark on CPUs {sorted(bench_cpus)}, spinners on {sorted(spin_cpus)}" if args.pin else "")
          + "\n")
    one_loaded = results[ONE_THREAD, args.busy]
    rows = []
    for name in names:
        quiet, loaded = results[name, 0], results[name, args.busy]
        rows.append([name, f"{quiet:,.0f} ({spread[name, 0][0]:,.0f}-{spread[name, 0][1]:,.0f})",
                     f"{loaded:,.0f} ({spread[name, args.busy][0]:,.0f}-{spread[name, args.busy][1]:,.0f})",
                     f"{loaded / quiet:.0%}", f"{loaded / one_loaded:.0%}"])
    print(markdown_table(["option", "quiet img/s", "busy img/s", "kept of its quiet speed",
                          "of 1 thread under the same load"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
