"""``experiment upsampling``: 2x super-resolution of digits, fixed rules against learned ones.

Each 28x28 digit is reduced to 14x14 by 2x2 average pooling; a
:class:`minipool.models.TinyUNet` brings it back to 28x28 with one decoder:
fixed interpolation (nearest, bilinear, bicubic: no training) or a learned
decoder (trained with Adam on the mean squared error).  Measured: PSNR on the
test set (outputs clipped to [0, 1], peak 1, the mean of per-image PSNRs),
parameters, training time and inference time per image.

>>> downsample(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))[0, 0]
array([[ 2.5,  4.5],
       [10.5, 12.5]], dtype=float32)
"""
import time

import numpy as np

from minipool.experiments import training
from minipool.experiments.runner import RunSpec
from minipool.models.unet import FIXED_DECODERS, LEARNED_DECODERS, TinyUNet
from minipool.tensor import Tensor, no_grad

NAME = "upsampling"
VARIANTS = FIXED_DECODERS + LEARNED_DECODERS
METRICS = ("psnr", "parameters", "train_seconds", "ms_per_image", "train_images", "epochs")
TAGS = {"": "2x super-resolution (14x14 -> 28x28)"}
COLUMNS = (("psnr", "test PSNR dB", 1, 2), ("parameters", "parameters", 1, 0),
           ("train_seconds", "training s", 1, 1), ("ms_per_image", "ms / image", 1, 3))
PUBLISHED = {}
PICTURE_DIGITS = 8

_DESCRIPTIONS = {
    "nearest": "fixed: each pixel repeated 2x2 (no parameters, no training)",
    "bilinear": "fixed: bilinear interpolation, align_corners=False (no training)",
    "bicubic": "fixed: bicubic interpolation (a = -0.75), align_corners=False (no training)",
    "nearest+conv": "learned: nearest 2x, then a 3x3 convolution",
    "bilinear+conv": "learned: bilinear 2x, then a 3x3 convolution",
    "transposed": "learned: ConvTranspose2d, kernel 2, stride 2",
    "pixelshuffle": "learned: 3x3 convolution to 4x channels, then pixel_shuffle(2)",
    "maxunpool": "learned: max_unpool2d at the encoder's max-pooling indices, then a 3x3 convolution",
}


def describe(variant):
    return _DESCRIPTIONS[variant]


def missing_variants():
    return {}


def settings(quick, dataset, data_dir, epochs, train_size, test_size):
    if quick:
        base = dict(train_size=400, test_size=200, epochs=1)
    elif dataset == "mnist":
        base = dict(train_size=None, test_size=None, epochs=3)
    else:
        base = dict(train_size=10000, test_size=2000, epochs=3)
    for key, value in (("epochs", epochs), ("train_size", train_size), ("test_size", test_size)):
        if value is not None:
            base[key] = value
    return dict(base, dataset=dataset, data_dir=data_dir, batch_size=32, lr=2e-3, channels=16)


def grid(variants, seeds, s):
    fixed = dict(s, train_size=0, epochs=0)  # nothing to train: every seed is the same run
    out = []
    for seed in seeds:
        for v in variants:
            if v in FIXED_DECODERS:
                if seed == seeds[0]:
                    out.append(RunSpec(NAME, v, 0, fixed))
            else:
                out.append(RunSpec(NAME, v, seed, s))
    return out


def downsample(images):
    """2x2 average pooling of (n, 1, H, W) float32 images (H, W even)."""
    n, c, h, w = images.shape
    return images.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5)).astype(np.float32)


def psnr(output, target):
    """Per-image PSNR in dB of outputs clipped to [0, 1] (peak 1); inf-safe (floor 1e-10 MSE)."""
    mse = ((np.clip(output, 0, 1) - target) ** 2).reshape(len(target), -1).mean(axis=1)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-10))


def _predict(model, x, batch_size=250):
    model.eval()
    outs = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            outs.append(model(Tensor(x[start:start + batch_size]))._data)
    model.train()
    return np.concatenate(outs)


def run(spec):
    from minipool import optim

    s = spec.settings
    data_train = 1 if s["train_size"] == 0 else s["train_size"]  # fixed decoders train on nothing
    ytr, _, yte, _ = training.load_digits(s["dataset"], s["data_dir"], data_train, s["test_size"])
    xtr, xte = downsample(ytr), downsample(yte)
    model = TinyUNet(spec.variant, channels=s["channels"], seed=spec.seed)
    train_seconds = 0.0
    if model.trainable and s["epochs"] > 0:
        opt = optim.Adam(list(model.parameters()), lr=s["lr"])
        bs = s["batch_size"]
        tick = time.perf_counter()
        for epoch in range(s["epochs"]):
            order = np.random.default_rng([spec.seed, epoch, 0x5E]).permutation(len(ytr))
            for b in range(0, len(order), bs):
                idx = order[b:b + bs]
                loss = model.loss(model(Tensor(xtr[idx])), Tensor(ytr[idx]))
                opt.zero_grad()
                loss.backward()
                opt.step()
        train_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    out = _predict(model, xte)
    ms_per_image = 1000 * (time.perf_counter() - tick) / max(1, len(xte))
    metrics = {"psnr": float(psnr(out, yte).mean()), "parameters": int(sum(p._data.size for p in model.parameters())),
               "train_seconds": train_seconds, "ms_per_image": ms_per_image,
               "train_images": int(len(ytr)) if model.trainable else 0, "epochs": s["epochs"]}
    artifacts = {}
    if spec.seed == 0:
        k = PICTURE_DIGITS
        artifacts = {"outputs": np.round(np.clip(out[:k, 0], 0, 1), 4).tolist(),
                     "inputs": np.round(xte[:k, 0], 4).tolist(), "targets": np.round(yte[:k, 0], 4).tolist()}
    return metrics, artifacts


def summary(m):
    return f"PSNR {m['psnr']:.2f} dB, {m['parameters']} parameters, {m['train_seconds']:.1f} s training"


def notes(records):
    return ("PSNR is computed per test image on outputs clipped to [0, 1] and averaged. The fixed "
            "decoders have no parameters and no seeds (one run each). The learned decoders share one "
            "TinyUNet (see minipool/models/unet.py): the input is first repeated 2x2 (nearest, no "
            "parameters), so the encoder has a 28x28 level whose max-pooling indices the maxunpool "
            "decoder reuses; the output is that repetition plus a learned correction.")


def pictures(plan, records, out, plt):
    """A grid: the 14x14 input, each decoder's 28x28 output (seed 0) and the target, for the same digits."""
    rows = [(r["spec"]["variant"], r["artifacts"]["outputs"]) for r in records
            if r["spec"]["seed"] == 0 and r.get("artifacts")]
    if not rows:
        return []
    first = next(r for r in records if r.get("artifacts"))["artifacts"]
    rows = [("input 14x14", first["inputs"])] + rows + [("target", first["targets"])]
    k = len(first["targets"])
    fig, axes = plt.subplots(len(rows), k, figsize=(1.1 * k + 1.2, 1.1 * len(rows)), squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(k):
            ax = axes[i][j]
            ax.imshow(np.asarray(images[j]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    path = f"{out}/upsampling_grid.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
