"""The grid runner: every (experiment, variant, setting, seed) is one independent run.

A run is described by a :class:`RunSpec` (plain data, so it travels to a worker
process or a Dask worker) and executed by :func:`execute`, which returns a
record ``{"spec", "metrics", "artifacts"}``.  :func:`run_grid` runs the specs
that have no finished record yet -- serially, over ``jobs`` local processes or
on a Dask cluster -- writes each record to ``OUT/runs/<key>.json`` the moment
it ends (so an interrupted grid resumes where it stopped), and rewrites
``OUT/results.csv`` and ``OUT/results.md`` after every run.

Every run seeds its own generators from its spec, so its numbers do not depend
on where or next to what it ran: serial, ``--jobs N`` and Dask give the same
results (only the timing columns differ).

>>> spec = RunSpec("pooling", "max", 0, {"epochs": 1})
>>> spec.key  # doctest: +ELLIPSIS
'pooling-max-s0-...'
"""
import concurrent.futures
import csv
import hashlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field

__all__ = ["RunSpec", "ExperimentError", "execute", "run_grid", "usable_cores", "threads_per_job",
           "load_records", "write_csv", "TIMING_METRICS"]

# metrics that measure the machine, not the method: never compared between runs
TIMING_METRICS = ("seconds_per_epoch", "train_seconds", "ms_per_image", "wall_seconds")


class ExperimentError(ValueError):
    """Bad experiment arguments (unknown name or variant, seeds <= 0, ...)."""


@dataclass(frozen=True)
class RunSpec:
    """One run: ``experiment``, ``variant``, ``seed`` and the ``settings`` that shape its
    numbers (epochs, data sizes, ...).  ``tag`` tells apart runs of one variant under
    different settings (e.g. the reduced-data run)."""

    experiment: str
    variant: str
    seed: int
    settings: dict = field(default_factory=dict, compare=False, hash=False)
    tag: str = ""

    @property
    def key(self) -> str:
        """A file name: readable parts plus a hash of the settings, so a changed setting is a new run."""
        digest = hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:8]
        tag = f"-{self.tag}" if self.tag else ""
        return f"{self.experiment}-{self.variant}{tag}-s{self.seed}-{digest}"

    def as_dict(self) -> dict:
        return {"experiment": self.experiment, "variant": self.variant, "tag": self.tag,
                "seed": self.seed, "settings": self.settings}

    @classmethod
    def from_dict(cls, d):
        return cls(d["experiment"], d["variant"], int(d["seed"]), dict(d["settings"]), d.get("tag", ""))


# --------------------------------------------------------------------------- executing one run
def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_job(jobs: int, cores: int = None) -> int:
    """Kernel threads for each of ``jobs`` concurrent runs so that jobs x threads <= cores.

    >>> threads_per_job(1, 2), threads_per_job(2, 2), threads_per_job(3, 8)
    (2, 1, 2)
    """
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, jobs))


def execute(spec, threads=None) -> dict:
    """Run one spec (a RunSpec or its dict) with ``threads`` kernel threads; returns its record."""
    import minipool
    from minipool.experiments import get_experiment

    if isinstance(spec, dict):
        spec = RunSpec.from_dict(spec)
    before = minipool.get_num_threads()
    if threads is not None:
        minipool.set_num_threads(int(threads))
    try:
        tick = time.perf_counter()
        metrics, artifacts = get_experiment(spec.experiment).run(spec)
        metrics["wall_seconds"] = time.perf_counter() - tick
    finally:
        minipool.set_num_threads(before)
    return {"spec": spec.as_dict(), "metrics": metrics, "artifacts": artifacts,
            "threads": threads, "minipool_version": minipool.__version__}


def _dask_execute(spec, threads=None):
    """A Dask task: ``threads`` kernel threads, by default as many as the worker's cores allow
    for its task slots."""
    if threads is not None:
        return execute(spec, threads)
    try:
        from distributed import get_worker
        slots = get_worker().state.nthreads
    except Exception:  # not on a worker (e.g. a synchronous scheduler)
        slots = 1
    return execute(spec, threads_per_job(slots))


def _init_worker(threads):
    import minipool

    minipool.set_num_threads(threads)


# --------------------------------------------------------------------------- files
def _record_path(out, spec):
    return os.path.join(out, "runs", spec.key + ".json")


def _write_json_atomic(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def load_records(out, specs) -> dict:
    """{key: record} of the specs that already have a finished record in ``out``."""
    done = {}
    for spec in specs:
        path = _record_path(out, spec)
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue  # missing, or cut short by a crash: run it again
        if RunSpec.from_dict(record.get("spec", {"experiment": "", "variant": "", "seed": -1,
                                                 "settings": {}})).as_dict() == spec.as_dict():
            done[spec.key] = record
    return done


def write_csv(path, records, metric_names):
    """One row per run: experiment, variant, tag, seed, then the metrics."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["experiment", "variant", "tag", "seed"] + list(metric_names))
        for r in records:
            s, m = r["spec"], r["metrics"]
            w.writerow([s["experiment"], s["variant"], s["tag"], s["seed"]]
                       + [_csv_value(m.get(k)) for k in metric_names])
    os.replace(tmp, path)


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # full precision: the CSV is the data, the .md the summary
    return v


# --------------------------------------------------------------------------- progress
class _Progress:
    def __init__(self, mode, total, already, log):
        self.mode, self.total, self.done, self.log, self.bar = mode, total, already, log, None
        if mode == "auto":
            self.mode = "bar" if sys.stderr.isatty() else "lines"
        if self.mode == "bar":
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=already, unit="run", dynamic_ncols=True)
            except ImportError:
                self.mode = "lines"

    def update(self, record, summary):
        self.done += 1
        s = record["spec"]
        text = f"{s['experiment']} {s['variant']}{' ' + s['tag'] if s['tag'] else ''} seed {s['seed']}: {summary}"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text[:60])
        elif self.mode == "lines":
            self.log(f"[{self.done}/{self.total}] {text}")

    def close(self):
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- the grid
def run_grid(specs, out, jobs=1, scheduler=None, progress="auto", log=print, on_record=None, dask_timeout=30,
             threads=None):
    """Run every spec of ``specs`` that has no finished record in ``out``; returns all records in
    grid order.  ``jobs`` > 1: local worker processes (spawned, ``cores // jobs`` kernel threads
    each); ``scheduler``: a Dask scheduler address (or a ``distributed.Client``).
    ``threads``: kernel threads per run (default ``cores // jobs``; on Dask, the worker's cores
    over its task slots).  ``on_record(records_so_far)`` is called after each finished run
    (it rewrites the tables)."""
    from minipool.experiments import get_experiment

    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    records = load_records(out, specs)
    todo = [s for s in specs if s.key not in records]
    if records:
        log(f"{len(records)} of {len(specs)} runs already finished in {out}: skipping them")
    bar = _Progress(progress, len(specs), len(records), log)

    def finished(record):
        spec = RunSpec.from_dict(record["spec"])
        _write_json_atomic(_record_path(out, spec), record)
        records[spec.key] = record
        bar.update(record, get_experiment(spec.experiment).summary(record["metrics"]))
        if on_record is not None:
            on_record([records[s.key] for s in specs if s.key in records])

    try:
        if todo and scheduler is not None:
            _run_dask(todo, scheduler, finished, dask_timeout, threads)
        elif todo and jobs <= 1:
            for spec in todo:
                finished(execute(spec, threads or threads_per_job(1)))
        elif todo:
            _run_processes(todo, jobs, finished, threads)
    finally:
        bar.close()
    return [records[s.key] for s in specs if s.key in records]


def _run_processes(todo, jobs, finished, threads=None):
    threads = threads or threads_per_job(jobs)
    # spawn, not fork: a forked child of a process whose OpenMP team is running can hang
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx,
                                                initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(execute, spec.as_dict(), threads) for spec in todo]
        try:
            for fut in concurrent.futures.as_completed(futures):
                finished(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _run_dask(todo, scheduler, finished, timeout=30, threads=None):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ExperimentError("--scheduler needs Dask's distributed scheduler: "
                              "pip install 'minipool[dask]'") from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout=timeout) if own else scheduler
    except (OSError, TimeoutError) as e:
        raise ExperimentError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from None
    try:
        futures = [client.submit(_dask_execute, spec.as_dict(), threads, pure=False, key=f"minipool-{spec.key}")
                   for spec in todo]
        for fut in as_completed(futures):
            finished(fut.result())
    finally:
        if own:
            client.close()
