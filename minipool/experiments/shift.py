"""``experiment shift``: how much a small translation of the digit changes the answer.

Each pooling kind's network is trained as in ``experiment pooling`` (full
training set).  Then every test digit is moved by d = 1..4 pixels right, left,
down and up (zero fill; the 28x28 digits have empty borders) and measured:

* **consistency(d)**: the fraction of (digit, direction) pairs whose predicted
  class equals the unshifted digit's (Zhang 2019 measures consistency between
  two random shifts of an image; here one side is always the unshifted digit);
* **map change(d)**: how far the last pooled feature maps (pool2, 16x5x5) move,
  ||m(shifted) - m(original)|| / ||m(original)||, averaged over digits and
  directions (0 = invariant).

A picture shows one digit's first pooled maps (pool1) under shifts of 0..4
pixels for every pooling kind: the course's edge-shift example, measured.

>>> shifted(np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3), 1, "right")[0, 0]
array([[0., 0., 1.],
       [0., 3., 4.],
       [0., 6., 7.]], dtype=float32)
"""
import numpy as np

from minipool.experiments import pooling, training
from minipool.experiments.runner import RunSpec
from minipool.tensor import Tensor, no_grad

NAME = "shift"
VARIANTS = pooling.VARIANTS
SHIFTS = (1, 2, 3, 4)
DIRECTIONS = ("right", "left", "down", "up")
METRICS = (("test_error", "consistency") + tuple(f"consistency_{d}" for d in SHIFTS)
           + tuple(f"map_change_{d}" for d in SHIFTS) + ("seconds_per_epoch", "train_images", "epochs"))
TAGS = {"": "shift consistency and pooled-map change"}
COLUMNS = ((("test_error", "test error %", 100, 2), ("consistency", "consistency % (d=1..4)", 100, 2))
           + tuple((f"consistency_{d}", f"cons. d={d} %", 100, 2) for d in SHIFTS)
           + tuple((f"map_change_{d}", f"map change d={d}", 1, 3) for d in SHIFTS))
PUBLISHED = {}
describe = pooling.describe
missing_variants = pooling.missing_variants


def settings(quick, dataset, data_dir, epochs, train_size, test_size):
    s = pooling.settings(quick, dataset, data_dir, epochs, train_size, test_size)
    s["shift_images"] = 300 if quick else 2000
    return s


def grid(variants, seeds, s):
    keep = {k: s[k] for k in ("dataset", "data_dir", "train_size", "test_size", "epochs", "batch_size", "lr",
                              "shift_images")}
    return [RunSpec(NAME, v, seed, keep) for seed in seeds for v in variants]


def shifted(images, d, direction):
    """(n, 1, H, W) images moved by ``d`` pixels towards ``direction``, zero-filled."""
    out = np.zeros_like(images)
    if direction == "right":
        out[..., :, d:] = images[..., :, :-d]
    elif direction == "left":
        out[..., :, :-d] = images[..., :, d:]
    elif direction == "down":
        out[..., d:, :] = images[..., :-d, :]
    elif direction == "up":
        out[..., :-d, :] = images[..., d:, :]
    else:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return out


def _reset_pool_randomness(model):
    """Fractional pooling draws its windows on every call, in evaluation too: give every
    evaluation the same draws, so a shift is the only thing that differs."""
    for pool in (model.pool1, model.pool2):
        if getattr(pool, "generator", None) is not None and model.pooling == "fractional":
            pool.generator = np.random.default_rng(0xF4AC)


def _outputs(model, images, batch_size=500):
    """(predicted classes, pool1 maps, pool2 maps) of raw [0, 1] 28x28 images, in eval mode."""
    _reset_pool_randomness(model)
    model.eval()
    preds, maps1, maps2 = [], [], []
    with no_grad():
        for start in range(0, len(images), batch_size):
            x = Tensor(training.lenet_input(images[start:start + batch_size]))
            p1, p2 = model.feature_maps(x)
            preds.append(model(x)._data.argmax(axis=1))
            maps1.append(p1._data)
            maps2.append(p2._data.reshape(len(p2._data), -1))
    model.train()
    return np.concatenate(preds), np.concatenate(maps1), np.concatenate(maps2)


def run(spec):
    s = spec.settings
    model, _, ytr, xte, yte, seconds = pooling.train_model(spec.variant, spec.seed, s)
    raw = training.load_digits(s["dataset"], s["data_dir"], s["train_size"], s["test_size"])[2]
    test_error = training.error_rate(model, xte, yte)
    images = raw[:s["shift_images"]]
    base_pred, base_map1, base_map2 = _outputs(model, images)
    base_norm = np.maximum(np.linalg.norm(base_map2, axis=1), 1e-12)
    metrics = {"test_error": test_error, "seconds_per_epoch": seconds, "train_images": int(len(ytr)),
               "epochs": s["epochs"]}
    for d in SHIFTS:
        same, change = [], []
        for direction in DIRECTIONS:
            pred, _, map2 = _outputs(model, shifted(images, d, direction))
            same.append(pred == base_pred)
            change.append(np.linalg.norm(map2 - base_map2, axis=1) / base_norm)
        metrics[f"consistency_{d}"] = float(np.mean(same))
        metrics[f"map_change_{d}"] = float(np.mean(change))
    metrics["consistency"] = float(np.mean([metrics[f"consistency_{d}"] for d in SHIFTS]))
    artifacts = {}
    if spec.seed == 0:
        digit = images[:1]
        _, m1, _ = _outputs(model, digit)
        channel = int(np.argmax(m1[0].reshape(m1.shape[1], -1).var(axis=1)))  # the busiest map
        maps = [m1[0, channel]] + [_outputs(model, shifted(digit, d, "right"))[1][0, channel] for d in SHIFTS]
        artifacts = {"channel": channel, "digit": np.round(digit[0, 0], 4).tolist(),
                     "maps": [np.round(m, 5).tolist() for m in maps]}
    return metrics, artifacts


def summary(m):
    return (f"test error {100 * m['test_error']:.2f}%, consistency {100 * m['consistency']:.2f}%, "
            f"map change d=1 {m['map_change_1']:.3f}")


def notes(records):
    return ("consistency(d): the digit is moved by d pixels right, left, down and up (zero fill) and the "
            "prediction compared with the unshifted digit's; map change(d): relative L2 distance of the "
            "pool2 maps (16x5x5) before and after the shift. Fractional pooling's windows are drawn once per "
            "evaluation (the same draws for the original and the shifted digits).")


def pictures(plan, records, out, plt):
    """One digit's busiest pool1 map under shifts of 0..4 pixels to the right, per pooling kind;
    and consistency against shift distance."""
    rows = [(r["spec"]["variant"], r["artifacts"]) for r in records if r["spec"]["seed"] == 0 and r.get("artifacts")]
    paths = []
    if rows:
        fig, axes = plt.subplots(len(rows) + 1, len(SHIFTS) + 1, figsize=(7.5, 1.35 * (len(rows) + 1)),
                                 squeeze=False)
        digit = np.asarray(rows[0][1]["digit"])
        for j, d in enumerate((0,) + SHIFTS):
            img = shifted(digit[None, None], d, "right")[0, 0] if d else digit
            axes[0][j].imshow(img, cmap="gray", vmin=0, vmax=1)
            axes[0][j].set_title(f"shift {d}", fontsize=8)
        axes[0][0].set_ylabel("digit", rotation=0, ha="right", va="center", fontsize=8)
        for i, (variant, art) in enumerate(rows, start=1):
            maps = np.asarray(art["maps"])
            for j in range(len(maps)):
                axes[i][j].imshow(maps[j], cmap="magma", vmin=maps.min(), vmax=max(maps.max(), 1e-6),
                                  interpolation="nearest")
            axes[i][0].set_ylabel(f"{variant}\n(map {art['channel']})", rotation=0, ha="right", va="center",
                                  fontsize=8)
        for row in axes:
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
        fig.tight_layout()
        path = f"{out}/shift_maps.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    from minipool.experiments.report import grouped

    groups = grouped(records)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for (variant, _), runs in groups.items():
        ax.plot(SHIFTS, [100 * np.mean([r["metrics"][f"consistency_{d}"] for r in runs]) for d in SHIFTS],
                marker="o", label=variant)
    ax.set_xlabel("shift (pixels)")
    ax.set_ylabel("consistency %")
    ax.set_xticks(SHIFTS)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = f"{out}/shift_consistency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths + [path]
