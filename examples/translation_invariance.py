"""Max pooling makes a feature map tolerate small shifts: an edge detector before and after pooling.

A 5x4 image whose two left columns are 1 has a vertical edge.  The 1x2 kernel
[1, -1] (F.conv2d) responds exactly on that edge.  Shift the image by one pixel
and the response moves with it; after 2x2 max pooling it stays put, as long as
the edge stays inside the same pooling window.  A shift that carries the edge
into the next window does change the pooled map: the invariance is local.

    python examples/translation_invariance.py [--quick] [--out DIR]
"""
import numpy as np

import minipool as mp
import minipool.nn.functional as F

from _common import Log, parse_args, pyplot, save_figure

EDGE_KERNEL = np.array([[[[1.0, -1.0]]]], np.float32)  # (out_ch, in_ch, kH, kW): x[j] - x[j+1]


def shift(image, dx):
    """Move the picture dx pixels right (negative: left); the border column repeats."""
    padded = np.pad(image, ((0, 0), (abs(dx), abs(dx))), mode="edge")
    return padded[:, abs(dx) - dx: abs(dx) - dx + image.shape[1]]


def edge_then_pool(image):
    x = mp.tensor(image[None, None])
    response = F.conv2d(x, mp.tensor(EDGE_KERNEL))
    # ceil_mode keeps the partial last row/column of windows, so nothing at the border is dropped.
    pooled = F.max_pool2d(response, 2, ceil_mode=True)
    return response.numpy()[0, 0], pooled.numpy()[0, 0]


def text(a, indent="    "):
    return "\n".join(indent + " ".join(f"{v:2g}" for v in row) for row in a)


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    log = Log(args.out, "translation_invariance")
    image = np.zeros((5, 4), np.float32)
    image[:, :2] = 1
    cases = [("original", image),
             ("shifted 1 pixel left", shift(image, -1)),
             ("shifted 1 pixel right", shift(image, +1))]
    log(f"Edge detector: F.conv2d with the 1x2 kernel {EDGE_KERNEL[0, 0].tolist()} "
        "(responds +1 where a bright column meets a dark one)")
    log("Pooling: F.max_pool2d(response, 2, ceil_mode=True)\n")
    results = []
    for name, img in cases:
        response, pooled = edge_then_pool(img)
        results.append((name, img, response, pooled))
        log(f"{name}: image {img.shape[0]}x{img.shape[1]}\n{text(img)}")
        log(f"  edge response {response.shape[0]}x{response.shape[1]}:\n{text(response)}")
        log(f"  max-pooled response {pooled.shape[0]}x{pooled.shape[1]}:\n{text(pooled)}\n")

    (_, _, r0, p0), (_, _, r_left, p_left), (_, _, r_right, p_right) = results
    edge_column = lambda r: int(np.argmax(r[0]))  # noqa: E731
    log(f"Shift left by one:  edge response moved from column {edge_column(r0)} to "
        f"{edge_column(r_left)}; pooled response unchanged: {np.array_equal(p0, p_left)}")
    log(f"Shift right by one: edge response moved from column {edge_column(r0)} to "
        f"{edge_column(r_right)}; pooled response unchanged: {np.array_equal(p0, p_right)}")
    log("  (to the right, the edge crosses into the next 2-wide pooling window, so the\n"
        "   pooled map changes too: max pooling forgives shifts within a window only)")

    plt = pyplot()
    if plt is not None:
        fig, axes = plt.subplots(3, 3, figsize=(8, 7.5))
        for i, (row, (name, img, response, pooled)) in enumerate(zip(axes, results)):
            for j, (ax, data) in enumerate(zip(row, (img, response, pooled))):
                ax.imshow(data, cmap="coolwarm", vmin=-1, vmax=1)
                for (r, c), v in np.ndenumerate(data):
                    ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=9,
                            color="white" if v > 0.5 else "black")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(("image", "edge response (conv2d)", "2x2 max-pooled")[j],
                                 fontsize=10)
                if j == 0:
                    ax.set_ylabel(name, fontsize=10)
            for edge in (1.5, 3.5):  # the 2x2 pooling windows, drawn on the response
                row[1].axhline(edge, color="black", linestyle="--", linewidth=1)
            row[1].axvline(1.5, color="black", linestyle="--", linewidth=1)
        fig.suptitle("Shift the image: the edge response moves, the pooled response moves\n"
                     "only when the edge leaves its pooling window (dashed)", fontsize=11)
        fig.tight_layout()
        save_figure(plt, fig, args.out, "translation_invariance.png")
    else:
        log("\n(matplotlib is not installed: text output only)")
    log.save()


if __name__ == "__main__":
    main()
