"""Pool a photograph 2x and 4x (max, average, min) and upsample it back (nearest, bilinear, bicubic).

Each round trip loses detail; its error against the original is printed as RMSE
and PSNR (higher is better), with the mean brightness shift: max pooling
brightens, min pooling darkens, average pooling keeps the mean.  The first row,
"subsample", keeps every f-th pixel (max pooling with a 1x1 kernel and stride f):
no averaging, so fine stripes alias.  The photo is scikit-image's cat
(skimage.data.chelsea) when scikit-image is installed, else a generated image.

    python examples/image_pooling.py [--quick] [--out DIR]
"""
import importlib.util

import numpy as np

import minipool as mp
import minipool.nn.functional as F

from _common import Log, parse_args, pyplot, save_figure

POOLS = {
    "subsample": lambda x, f: F.max_pool2d(x, 1, stride=f),
    "max": lambda x, f: F.max_pool2d(x, f),
    "avg": lambda x, f: F.avg_pool2d(x, f),
    "min": lambda x, f: F.min_pool2d(x, f),
}
MODES = ("nearest", "bilinear", "bicubic")
FACTORS = (2, 4)


def generated_photo(height, width, seed=0):
    """A photograph-like RGB image in [0, 1]: smooth light, shapes, texture and sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    sky = np.stack([0.35 + 0.4 * y, 0.55 + 0.2 * x, 0.85 - 0.3 * y], axis=-1)
    image = sky.copy()
    sun = np.hypot(x - 0.7 * width / max(height, width), y - 0.3) < 0.18
    image[sun] = [0.95, 0.8, 0.3]
    hill = y > 0.65 + 0.1 * np.sin(9 * x)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.3 * y) * max(height, width) / 3.2)
    image[hill] = (np.array([0.2, 0.45, 0.15]) * (0.6 + 0.4 * stripes[..., None]))[hill]
    box = (np.abs(x - 0.25) < 0.12) & (np.abs(y - 0.45) < 0.12)
    image[box] = [0.7, 0.2, 0.2]
    image += rng.normal(scale=0.03, size=image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def load_photo(quick):
    """(H, W, 3) float32 in [0, 1], H and W multiples of 4; and where it came from."""
    if importlib.util.find_spec("skimage") is not None:
        from skimage.data import chelsea

        photo, source = chelsea().astype(np.float32) / 255, "skimage.data.chelsea (a cat)"
        if quick:
            photo = photo[80:144, 130:194]  # a 64x64 patch around the left eye
    else:
        size = (64, 64) if quick else (240, 320)
        photo, source = generated_photo(*size), "generated (scikit-image is not installed)"
    h, w = (s - s % 4 for s in photo.shape[:2])
    return photo[:h, :w], source


def round_trip(x, pool, factor, mode):
    """pool by ``factor``, then interpolate back to the input size."""
    pooled = POOLS[pool](x, factor)
    corners = None if mode == "nearest" else False
    up = F.interpolate(pooled, size=tuple(x.shape[2:]), mode=mode, align_corners=corners)
    return np.clip(up.numpy(), 0, 1)  # bicubic overshoots: clip as a display would


def errors(restored, original):
    rmse = float(np.sqrt(np.mean((restored - original) ** 2)))
    psnr = 20 * np.log10(1.0 / rmse) if rmse > 0 else float("inf")
    shift = float(np.mean(restored - original))
    return rmse, psnr, 0.0 if abs(shift) < 5e-5 else shift  # no "-0.0000" in the table


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    log = Log(args.out, "image_pooling")
    photo, source = load_photo(args.quick)
    log(f"photo: {source}, {photo.shape[0]}x{photo.shape[1]} RGB, values in [0, 1]")
    x = mp.tensor(np.ascontiguousarray(photo.transpose(2, 0, 1)[None]))  # NCHW: (1, 3, H, W)

    results = {}
    log(f"\n{'pooling':>9} {'factor':>6} {'upsampling':>10} {'RMSE':>8} {'PSNR dB':>8} "
        f"{'mean shift':>10}")
    for pool in POOLS:
        for factor in FACTORS:
            for mode in MODES:
                restored = round_trip(x, pool, factor, mode)
                rmse, psnr, shift = errors(restored, x.numpy())
                results[pool, factor, mode] = (restored, psnr)
                log(f"{pool:>9} {factor:>5}x {mode:>10} {rmse:8.4f} {psnr:8.2f} {shift:+10.4f}")
    best = max(results, key=lambda key: results[key][1])
    log(f"\nbest round trip: {best[0]} pooling {best[1]}x + {best[2]} upsampling "
        f"({results[best][1]:.2f} dB)")
    log("max pooling shifts the mean up, min pooling down; average pooling keeps it.\n"
        "(bicubic results are clipped to [0, 1] before measuring: the cubic kernel overshoots)")

    plt = pyplot()
    if plt is None:
        log("\n(matplotlib is not installed: text output only)")
    else:
        draw(plt, photo, results, source, args.out)
    log.save()


def draw(plt, photo, results, source, out_dir):
    """Left: the photo.  Right: a detail of every round trip (rows: pooling; columns: upsampling)."""
    h, w = photo.shape[:2]
    size = min(h, w, 128)
    top, left = (80, 110) if h >= 80 + size and w >= 110 + size else (0, 0)
    detail = (slice(top, top + size), slice(left, left + size))
    cols = [(f, m) for f in FACTORS for m in MODES]
    fig = plt.figure(figsize=(2.6 + 1.15 * len(cols), 1.25 * len(POOLS)))
    grid = fig.add_gridspec(len(POOLS), len(cols) + 2, width_ratios=[2.2, 0.1] + [1] * len(cols))
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(photo)
    ax.add_patch(plt.Rectangle((left, top), size, size, fill=False, edgecolor="yellow", lw=1.5))
    ax.set_title("original (yellow: detail)", fontsize=8)
    ax.set_xlabel(source.split(" (")[0], fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    for i, pool in enumerate(POOLS):
        for j, (factor, mode) in enumerate(cols):
            restored, psnr = results[pool, factor, mode]
            ax = fig.add_subplot(grid[i, j + 2])
            ax.imshow(restored[0].transpose(1, 2, 0)[detail])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{psnr:.1f} dB", fontsize=7, pad=2)
            if i == 0:
                ax.text(0.5, 1.25, f"{factor}x, {mode}", transform=ax.transAxes, ha="center",
                        fontsize=8)
            if j == 0:
                ax.set_ylabel(pool, fontsize=8)
    fig.suptitle("pool, then upsample back: PSNR against the original (higher is better)",
                 fontsize=10, y=1.04)
    return save_figure(plt, fig, out_dir, "image_pooling.png", dpi=110, max_colors=192)


if __name__ == "__main__":
    main()
