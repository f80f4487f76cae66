"""Shared helpers for the kernel benchmarks (pooling, upsampling).

Each benchmark times a callable with :func:`median_time`, turns bytes moved
into GB/s, compares that with the bandwidth of a same-size ``np.copyto``
(the memory roof: no kernel that reads its input once and writes its output
once can beat a plain copy of the same bytes by much) and prints a markdown
table.  PyTorch is optional: :func:`import_torch` returns None without it.

Typical use::

    args = parse_args("pooling benchmark")
    for threads in args.threads:
        set_threads(threads, torch)
        t = median_time(lambda: F.max_pool2d(x, 2), args.repeats)
"""
import argparse
import gc
import os
import platform
import sys
import time

import numpy as np

__all__ = ["parse_args", "import_torch", "set_threads", "median_time", "median_times_in_turns",
           "in_turns", "best_in_turns", "best_time",
           "gbps", "copy_bandwidth", "roof_fraction", "markdown_table", "machine_line",
           "format_seconds"]


def parse_args(description, argv=None, default_threads=None):
    """The command line every benchmark shares.

    ``--quick`` runs few repeats (a CI smoke run); ``--threads 1,2`` picks the
    thread counts; ``--repeats`` overrides the number of timed runs.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="few repeats and small warm-up: a smoke run, not a measurement")
    parser.add_argument("--threads", default=None,
                        help="comma-separated thread counts (default: 1 and the CPU count)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per case (median reported); default 25, 3 with --quick")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    args = parser.parse_args(argv)
    if args.threads is None:
        cpus = os.cpu_count() or 1
        args.threads = default_threads or sorted({1, cpus})
    else:
        try:
            args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
        except ValueError:
            parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
        if not args.threads or min(args.threads) < 1:
            parser.error("--threads needs at least one count >= 1")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 25
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    args.warmup = 1 if args.quick else 3
    return args


def import_torch(disabled=False):
    """PyTorch if it is installed (and not disabled), else None."""
    if disabled:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def set_threads(n, torch=None):
    """Use ``n`` threads in minipool's kernels and, when given, in PyTorch."""
    import minipool

    minipool.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def median_time(fn, repeats=25, warmup=3):
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs.

    The median (not the mean) so one preempted run on a shared machine does
    not move the result; the garbage collector is off while timing.
    """
    return median_times_in_turns([fn], repeats, warmup)[0]


def in_turns(count, rounds):
    """The order in which to time ``count`` contenders for ``rounds`` rounds: each round
    every one once, a slow stretch of a shared machine then falling on all of them alike;
    the order rotates from round to round (a, b, c; b, c, a; ...), since a call right after
    a memory-heavy one (torch's, say) starts with a colder cache, and no contender may
    always be the one that follows it."""
    for r in range(rounds):
        for i in range(count):
            yield (r + i) % count


def median_times_in_turns(fns, repeats=25, warmup=3):
    """Median wall time of each callable in ``fns`` in seconds, timed ``in_turns``: their
    ratio holds even when the times drift between runs."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in in_turns(len(fns), repeats):
            start = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [float(np.median(fn_times)) for fn_times in times]


def best_time(fn, repeats, clock=time.perf_counter):
    """The fastest of ``repeats`` calls of ``fn()`` in seconds by ``clock`` (wall time, or
    ``time.thread_time`` for CPU time): the figure least moved by other work on the machine."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def best_in_turns(fns, rounds, time_one):
    """The fastest time of each of ``fns`` (name -> callable) by ``time_one(fn)`` over
    ``rounds`` rounds, timed ``in_turns``."""
    keys = list(fns)
    best = dict.fromkeys(keys, float("inf"))
    for i in in_turns(len(keys), rounds):
        best[keys[i]] = min(best[keys[i]], time_one(fns[keys[i]]))
    return best


def gbps(nbytes, seconds):
    """Bandwidth in GB/s (10^9 bytes per second) for ``nbytes`` moved in ``seconds``."""
    return nbytes / seconds / 1e9 if seconds > 0 else float("inf")


_copy_cache = {}


def copy_bandwidth(nbytes, repeats=25, warmup=3):
    """GB/s of ``np.copyto`` between two float32 arrays of ``nbytes`` each.

    Counts read + write (2 * nbytes), the same way the kernels count their
    traffic, so ``kernel GB/s / copy GB/s`` is the fraction of the roof.
    Cached per size: the roof does not depend on the kernel being measured.
    """
    key = (int(nbytes), repeats)
    if key not in _copy_cache:
        n = max(1, int(nbytes) // 4)
        src = np.random.default_rng(0).random(n, dtype=np.float32)
        dst = np.empty_like(src)
        t = median_time(lambda: np.copyto(dst, src), repeats, warmup)
        _copy_cache[key] = gbps(2 * src.nbytes, t)
    return _copy_cache[key]


def roof_fraction(kernel_gbps, nbytes, repeats=25, warmup=3):
    """``kernel_gbps`` as a fraction of a same-size ``np.copyto``'s bandwidth."""
    return kernel_gbps / copy_bandwidth(nbytes, repeats, warmup)


def format_seconds(seconds):
    """Seconds in the unit that keeps 3 significant digits readable (us or ms)."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def markdown_table(headers, rows):
    """A GitHub markdown table with columns padded to line up in a terminal."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def machine_line(torch=None):
    """One line naming the machine and versions, printed above every table."""
    import minipool

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cpus", f"python {platform.python_version()}",
             f"numpy {np.__version__}", f"minipool {minipool.__version__}"]
    if torch is not None:
        parts.append(f"torch {torch.__version__}")
    return "; ".join(parts) + f"; command: python {' '.join(sys.argv)}"
