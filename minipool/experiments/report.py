"""Tables and pictures of an experiment's records.

``results.md`` shows, per variant (and per group of runs, e.g. full and reduced
data), the mean +- standard deviation over seeds of each metric, beside the
published figure where one exists.  Pictures need matplotlib; without it the
tables are still written and a note says why there are no pictures.

>>> mean_std([1.0, 2.0, 3.0], 1, 2)
'2.00 ± 1.00'
>>> mean_std([0.5], 100, 1)
'50.0'
"""
import os
from collections import OrderedDict

import numpy as np

from minipool.experiments.runner import write_csv

__all__ = ["grouped", "mean_std", "write_tables", "write_pictures", "markdown"]


def grouped(records) -> "OrderedDict":
    """{(variant, tag): [records]} in the order the records come."""
    groups = OrderedDict()
    for r in records:
        groups.setdefault((r["spec"]["variant"], r["spec"]["tag"]), []).append(r)
    return groups


def mean_std(values, scale=1, digits=2) -> str:
    """"mean ± std" (sample std, ddof=1) of ``values`` times ``scale``; the mean alone for one value."""
    v = np.asarray(values, dtype=float) * scale
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _settings_line(settings):
    shown = {k: v for k, v in settings.items() if k != "data_dir" and v is not None}
    return ", ".join(f"{k} {v}" for k, v in shown.items())


def markdown(plan, records) -> str:
    from minipool.experiments import get_experiment
    from minipool.experiments.runner import usable_cores

    module = get_experiment(plan.name)
    groups = grouped(records)
    lines = [f"# experiment {plan.name}" + (" (QUICK MODE)" if plan.quick else ""), ""]
    if plan.quick:
        lines += ["**Quick mode: a smoke test on a few hundred images and one or two epochs. These "
                  "numbers check that the pipeline runs; they are not results and support no claim.**", ""]
    seeds = sorted({r["spec"]["seed"] for r in records})
    lines += [f"Data: {plan.settings['dataset']}; settings: {_settings_line(plan.settings)}.",
              f"{len(records)} of {len(plan.specs)} runs finished; seeds {seeds}; values are mean ± std "
              f"over seeds (std with ddof=1; a single value when there is one seed). "
              f"Machine: {usable_cores()} usable cores.", ""]
    published = getattr(module, "PUBLISHED", {})
    for tag, title in module.TAGS.items():
        names = [v for v in module.VARIANTS if (v, tag) in groups]
        if not names:
            continue
        trained = [r["metrics"] for v in names for r in groups[(v, tag)] if r["metrics"].get("train_images")]
        size = f" ({trained[0]['train_images']} training images, {trained[0]['epochs']} epochs)" if trained else ""
        lines += [f"## {title}{size}", ""]
        head = ["variant", "seeds"] + [c[1] for c in module.COLUMNS]
        if published and tag == "":
            head.append("published (different setups)")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for v in names:
            runs = groups[(v, tag)]
            row = [v, str(len(runs))] + [mean_std([r["metrics"][key] for r in runs], scale, digits)
                                         for key, _, scale, digits in module.COLUMNS]
            if published and tag == "":
                row.append(published.get(v, "-"))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Variants", ""] + [f"- **{v}**: {module.describe(v)}" for v in module.VARIANTS
                                    if any(k[0] == v for k in groups)]
    if plan.skipped:
        lines += [""] + [f"- **{v}** skipped: {why}" for v, why in plan.skipped.items()]
    extra = getattr(module, "notes", None)
    if extra is not None:
        lines += ["", extra(records)]
    return "\n".join(lines) + "\n"


def write_tables(plan, records):
    """OUT/results.csv (one row per run) and OUT/results.md (the summary)."""
    from minipool.experiments import get_experiment

    module = get_experiment(plan.name)
    os.makedirs(plan.out, exist_ok=True)
    write_csv(os.path.join(plan.out, "results.csv"), records, list(module.METRICS) + ["wall_seconds"])
    tmp = os.path.join(plan.out, "results.md.tmp")
    with open(tmp, "w") as f:
        f.write(markdown(plan, records))
    os.replace(tmp, os.path.join(plan.out, "results.md"))


def write_pictures(plan, records, log=print) -> list:
    """The experiment's pictures (PNG) in OUT; [] without matplotlib or records."""
    from minipool.experiments import get_experiment

    if not records:
        return []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no pictures (pip install matplotlib)")
        return []
    paths = get_experiment(plan.name).pictures(plan, records, plan.out, plt)
    for p in paths:
        log(f"wrote {p}")
    return paths
