"""What LeNet-5 sees: one digit's feature maps after each convolution and each pooling layer.

Loads a trained checkpoint (--checkpoint, e.g. runs/lenet5-synthetic/best.safetensors from
`python -m minipool train`, or lenet5.safetensors from examples/train_lenet5.py); without
one it first trains a small model through the same public API (minipool.train).
Convolutions find strokes and edges; each 2x2 max pooling halves the map and
keeps the strongest response of each window, so the pattern survives while its
exact position blurs.  Without matplotlib the maps are drawn as text.

    python examples/what_the_network_sees.py [--quick] [--out DIR] [--checkpoint CKPT] [--digit I]
"""
import os

import numpy as np

import minipool as mp
import minipool.nn.functional as F
from minipool import data
from minipool.data import transforms as T
from minipool.models.lenet import scaled_tanh
from minipool.train import SYNTHETIC_TEST_SEED, TrainConfig, load_model_from_checkpoint, run_training

from _common import Log, parse_args, pyplot, save_figure

SHADES = " .:-=+*#%@"


def stages(model, x):
    """(name, activation) after every convolution and pooling layer, in order."""
    if model.name == "lenet5":
        c1 = F.relu(model.conv1(x))
        p1 = F.max_pool2d(c1, 2)
        c2 = F.relu(model.conv2(p1))
        return [("conv1 + ReLU", c1), ("max-pool 1", p1), ("conv2 + ReLU", c2),
                ("max-pool 2", F.max_pool2d(c2, 2))]
    c1 = scaled_tanh(model.c1(x))        # LeNet5Classic: tanh units, trainable subsampling
    s2 = scaled_tanh(model.s2(c1))
    c3 = scaled_tanh(model.c3(s2))
    return [("C1", c1), ("S2 (subsampling)", s2), ("C3", c3), ("S4 (subsampling)", scaled_tanh(model.s4(c3)))]


def ascii_art(image, width=2):
    """A 2-D map as lines of characters, darkest to brightest, ``width`` characters per pixel."""
    lo, hi = float(image.min()), float(image.max())
    levels = np.zeros(image.shape, int) if hi == lo else \
        np.round((image - lo) / (hi - lo) * (len(SHADES) - 1)).astype(int)
    return ["".join(SHADES[v] * width for v in row) for row in levels]


def train_small_model(out_dir, quick, log):
    """No checkpoint given: train one with the command line's code (fewer images when quick)."""
    size = dict(epochs=1, train_size=256, val_size=64, test_size=100) if quick else {}
    log("no --checkpoint given: training LeNet-5 first (python -m minipool train defaults"
        f"{', a small quick run' if quick else ''})")
    run_training(TrainConfig(out=os.path.join(out_dir, "training_run"), progress="none", **size),
                 log=lambda *a: None)
    return os.path.join(out_dir, "training_run", "best.safetensors")


def test_digit(meta, index):
    """One test image (1, 1, 28, 28) float in [0, 1] and its label, from the checkpoint's dataset."""
    dataset = meta.get("train_config", {}).get("dataset", "synthetic")
    if dataset in ("mnist", "fashion-mnist"):
        cls = data.MNIST if dataset == "mnist" else data.FashionMNIST
        try:
            test = cls(meta["train_config"].get("data_dir"), train=False)
            images, labels = test.get_batch(np.array([index]))
            return images, int(labels[0]), dataset
        except (data.DatasetNotFoundError, data.IDXError):
            pass  # fall back to a synthetic digit below
    test = data.SyntheticDigits(index + 1, seed=SYNTHETIC_TEST_SEED)
    images, labels = test.get_batch(np.array([index]))
    return images, int(labels[0]), "synthetic"


def main(argv=None):
    def more(parser):
        parser.add_argument("--checkpoint", help="a checkpoint (.safetensors) written by a training run")
        parser.add_argument("--digit", type=int, default=0, help="index of the test digit to show")

    args = parse_args(__doc__.splitlines()[0], argv, more)
    log = Log(args.out, "what_the_network_sees")
    path = args.checkpoint or train_small_model(args.out, args.quick, log)
    model, meta, _ = load_model_from_checkpoint(path)
    model.eval()
    image, label, source = test_digit(meta, args.digit)
    mean, std = meta["normalization"]
    x = mp.tensor(T.Compose([T.Pad(2), T.Normalize(mean, std)])(image))
    with mp.no_grad():
        maps = [(name, a.numpy()[0]) for name, a in stages(model, x)]
        probabilities = F.softmax(model(x), dim=1).numpy()[0]
    top = np.argsort(probabilities)[::-1][:3]
    log(f"model {model.name} from {path}\n{source} test digit #{args.digit}, label {label}; the "
        "network says " + ", ".join(f"{k} ({100 * probabilities[k]:.1f}%)" for k in top))
    log("\n".join("    " + line for line in ascii_art(image[0, 0])))
    log(f"\n{'layer':<18} {'shape (maps, H, W)':<20} {'mean':>7} {'max':>7} {'active':>7}  "
        "strongest map")
    for name, m in maps:
        strongest = int(np.argmax(m.reshape(len(m), -1).max(axis=1)))
        log(f"{name:<18} {str(m.shape):<20} {m.mean():7.3f} {m.max():7.3f} "
            f"{100 * np.mean(m > 0):6.1f}%  #{strongest}")
    (_, conv), (name, pooled) = maps[0], maps[1]
    k = int(np.argmax(pooled.reshape(len(pooled), -1).max(axis=1)))
    log(f"\nconv1 map #{k} ({conv.shape[1]}x{conv.shape[2]}) and {name} map #{k} "
        f"({pooled.shape[1]}x{pooled.shape[2]}, drawn twice as big): each 2x2 window kept its maximum")
    big_pool = np.repeat(ascii_art(pooled[k]), 2)  # each pooled row twice: same height as conv1
    for left, right in zip(ascii_art(conv[k], width=1), big_pool):
        log(f"    {left}    {right}")

    plt = pyplot()
    if plt is not None:
        draw(plt, image[0, 0], label, maps, args.out)
    else:
        log("\n(matplotlib is not installed: text output only)")
    log.save()


def draw(plt, digit, label, maps, out_dir):
    columns = max(len(m) for _, m in maps)
    fig, axes = plt.subplots(len(maps) + 1, columns, figsize=(columns * 0.75, (len(maps) + 1) * 0.95))
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(digit, cmap="gray")
    axes[0, 0].set_title(f"input (label {label})", fontsize=7, loc="left")
    for row, (name, m) in enumerate(maps, start=1):
        for k, feature in enumerate(m):
            axes[row, k].imshow(feature, cmap="magma")
        axes[row, 0].set_title(f"{name}: {m.shape[0]} maps of {m.shape[1]}x{m.shape[2]}",
                               fontsize=7, loc="left")
    fig.suptitle("What LeNet-5 sees: feature maps after each convolution and max pooling",
                 fontsize=9)
    return save_figure(plt, fig, out_dir, "what_the_network_sees.png", dpi=120)


if __name__ == "__main__":
    main()
