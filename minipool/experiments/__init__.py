"""Experiments that measure what the course material claims about pooling and upsampling.

``python -m minipool experiment NAME`` (see ``--help``) runs one of
:data:`EXPERIMENTS` as a grid of independent, seeded runs (see
:mod:`minipool.experiments.runner`) and writes ``OUT/results.csv`` (one row
per run), ``OUT/results.md`` (mean +- std over seeds, beside the published
figure where one exists) and pictures (with matplotlib).

>>> sorted(EXPERIMENTS)
['pooling', 'shift', 'upsampling']
>>> plan = plan_experiment("pooling", quick=True, variants=["max", "avg"])
>>> [(s.variant, s.tag, s.seed) for s in plan.specs]
[('max', '', 0), ('avg', '', 0), ('max', 'small', 0), ('avg', 'small', 0)]
"""
import importlib
import os
from dataclasses import dataclass

from minipool.experiments.runner import ExperimentError, RunSpec, run_grid, usable_cores

__all__ = ["EXPERIMENTS", "ExperimentError", "RunSpec", "Plan", "plan_experiment", "run_experiment",
           "get_experiment"]

EXPERIMENTS = {"pooling": "minipool.experiments.pooling", "shift": "minipool.experiments.shift",
               "upsampling": "minipool.experiments.upsampling"}


def get_experiment(name):
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


@dataclass
class Plan:
    """What a call will run: the specs, the skipped variants with the reason, and the settings."""

    name: str
    specs: list
    skipped: dict
    settings: dict
    quick: bool
    out: str


def _positive(value, name, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExperimentError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def plan_experiment(name, quick=False, seeds=None, epochs=None, dataset=None, data_dir=None, out=None,
                    variants=None, train_size=None, test_size=None) -> Plan:
    """Check the arguments and list the runs of experiment ``name`` (nothing runs yet).

    ``seeds``: how many seeds (0 .. seeds-1; default 1 quick, 3 full); ``dataset``:
    "mnist" or "synthetic" (default: mnist when ``data_dir`` is given);
    ``variants``: a subset of the experiment's variants.
    """
    module = get_experiment(name)
    seeds = _positive(seeds, "seeds")
    epochs = _positive(epochs, "epochs")
    train_size = _positive(train_size, "train-size")
    test_size = _positive(test_size, "test-size")
    if dataset is None:
        dataset = "mnist" if data_dir else "synthetic"
    if dataset not in ("mnist", "synthetic"):
        raise ExperimentError(f"dataset must be 'mnist' or 'synthetic', got {dataset!r}")
    if dataset == "mnist":
        from minipool.data import MNIST, DatasetNotFoundError
        try:
            MNIST(data_dir, train=False)
        except (DatasetNotFoundError, OSError, ValueError) as e:
            raise ExperimentError(f"MNIST not readable from --data-dir {data_dir!r}: {e}") from None
        data_dir = os.path.abspath(data_dir) if data_dir else None
    if variants is not None:
        if isinstance(variants, str):
            variants = [v for v in variants.split(",") if v]
        unknown = [v for v in variants if v not in module.VARIANTS]
        if unknown or not variants:
            raise ExperimentError(f"unknown variant {', '.join(map(repr, unknown)) or '(none given)'} "
                                  f"for experiment {name}; choose from: {', '.join(module.VARIANTS)}")
    settings = module.settings(quick=quick, dataset=dataset, data_dir=data_dir, epochs=epochs,
                               train_size=train_size, test_size=test_size)
    wanted = list(module.VARIANTS) if variants is None else list(variants)
    missing = module.missing_variants()
    skipped = {v: missing[v] for v in wanted if v in missing}
    wanted = [v for v in wanted if v not in missing]
    n_seeds = seeds or (1 if quick else 3)
    specs = module.grid(wanted, list(range(n_seeds)), settings)
    out = out or os.path.join("runs", f"experiment-{name}{'-quick' if quick else ''}")
    return Plan(name, specs, skipped, settings, quick, out)


def run_experiment(name, quick=False, seeds=None, epochs=None, dataset=None, data_dir=None, out=None,
                   jobs=1, scheduler=None, variants=None, train_size=None, test_size=None,
                   progress="auto", log=print, threads=None):
    """Plan and run experiment ``name``; writes OUT/results.csv, OUT/results.md and pictures.
    Returns (plan, records).  ``jobs``: local worker processes (at most the usable cores);
    ``scheduler``: a Dask scheduler address instead; ``threads``: kernel threads per run
    (default cores // jobs; jobs x threads may not exceed the usable cores)."""
    from minipool.experiments import report

    jobs = _positive(jobs, "jobs", allow_none=False)
    cores = usable_cores()
    if jobs > cores:
        raise ExperimentError(f"jobs {jobs} exceeds the {cores} usable cores (each job gets "
                              f"cores // jobs kernel threads; more jobs than cores would oversubscribe)")
    threads = _positive(threads, "threads")
    if threads is not None and scheduler is None and jobs * threads > cores:
        raise ExperimentError(f"jobs {jobs} x threads {threads} exceeds the {cores} usable cores")
    if scheduler is not None and jobs != 1:
        raise ExperimentError("give --jobs or --scheduler, not both (the Dask workers set the parallelism)")
    plan = plan_experiment(name, quick, seeds, epochs, dataset, data_dir, out, variants, train_size, test_size)
    for v, why in plan.skipped.items():
        log(f"skipping variant {v}: {why}")
    log(f"experiment {name}{' (quick)' if quick else ''}: {len(plan.specs)} runs on {plan.settings['dataset']} "
        f"-> {plan.out}")
    records = run_grid(plan.specs, plan.out, jobs=jobs, scheduler=scheduler, progress=progress, log=log,
                       threads=threads, on_record=lambda recs: report.write_tables(plan, recs))
    report.write_tables(plan, records)
    report.write_pictures(plan, records, log=log)
    log(f"wrote {os.path.join(plan.out, 'results.csv')} and {os.path.join(plan.out, 'results.md')}")
    return plan, records
