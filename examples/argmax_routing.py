"""Where does the gradient of max pooling go?  Forward, then backward, cell by cell.

Max pooling's backward sends each output's gradient to the single input cell that
won its window (the argmax) and nothing to the others.  Overlapping windows add
up at cells that win several times; on a tie the first cell in row-major order
wins.  Average pooling instead spreads every gradient evenly over its window.

    python examples/argmax_routing.py [--quick] [--out DIR]
"""
import numpy as np

import minipool as mp
import minipool.nn.functional as F

from _common import Log, parse_args, pyplot, save_figure


def grid(a, indent="    "):
    """A 2-D array as aligned text rows."""
    a = np.asarray(a)
    cells = [[f"{v:g}" for v in row] for row in a]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(indent + " ".join(c.rjust(width) for c in row) for row in cells)


def input_gradient(pool, x, upstream=None):
    """d(sum(upstream * pool(x)))/dx: the gradient each input cell receives."""
    t = mp.tensor(np.asarray(x, dtype=np.float32)[None, None], requires_grad=True)
    y = pool(t)
    g = np.ones(y.shape, np.float32) if upstream is None else \
        np.asarray(upstream, np.float32).reshape(y.shape)
    y.backward(g)
    return y.numpy()[0, 0], t.grad.numpy()[0, 0]


def routing_without_overlap(log):
    x = np.array([[1, 6, 2, 0],
                  [4, 3, 8, 5],
                  [9, 0, 1, 7],
                  [2, 3, 4, 6]], np.float32)
    log("1. 2x2 max pooling, stride 2 (windows do not overlap). Input x:\n" + grid(x))
    y, indices = F.max_pool2d(mp.tensor(x[None, None]), 2, return_indices=True)
    log("   output y = max of each window:\n" + grid(y.numpy()[0, 0]))
    log("   indices (flat position h*W + w of each max, W = 4):\n" + grid(indices.numpy()[0, 0]))
    upstream = np.array([[10, 20], [30, 40]], np.float32)
    _, gx = input_gradient(lambda t: F.max_pool2d(t, 2), x, upstream)
    log("   backward with upstream gradient dL/dy =\n" + grid(upstream))
    log("   dL/dx: each upstream value lands on its window's max, all else is 0:\n" + grid(gx))
    unpooled = F.max_unpool2d(y, indices, 2).numpy()[0, 0]
    log("   max_unpool2d(y, indices) uses the same routing forwards (zeros elsewhere):\n"
        + grid(unpooled))
    return gx


def overlapping_windows(log):
    x = np.array([[0, 0, 0, 0, 3],
                  [0, 9, 0, 0, 0],
                  [0, 0, 0, 0, 0],
                  [0, 0, 0, 8, 0],
                  [2, 0, 0, 0, 0]], np.float32)
    log("\n2. Overlapping windows: 3x3 max pooling, stride 1 (9 windows). Input x:\n" + grid(x))
    y, gx = input_gradient(lambda t: F.max_pool2d(t, 3, stride=1), x)
    log("   output y:\n" + grid(y))
    log("   dL/dx for dL/dy = all ones. A cell receives one unit per window it wins: the 9\n"
        "   wins all 4 windows that hold it, the 8 wins 3 of its 4 (it loses the one it\n"
        "   shares with the 9), the 3 and the 2 win one each:\n" + grid(gx))
    log(f"   sum of dL/dx = {gx.sum():g} = number of outputs {y.size}: "
        "max pooling routes gradient, it never creates or loses any")
    return x


def ties(log):
    x = np.array([[5, 5], [1, 5]], np.float32)
    log("\n3. Ties: the window\n" + grid(x))
    y, gx = input_gradient(lambda t: F.max_pool2d(t, 2), x)
    log(f"   max = {y[0, 0]:g}; three cells tie. The first in row-major order takes it all:\n"
        + grid(gx))
    zeros = np.zeros((2, 4), np.float32)
    _, gz = input_gradient(lambda t: F.max_pool2d(t, 2), zeros)
    log("   an all-zero 2x4 input (two windows, e.g. after ReLU) routes each gradient to its\n"
        "   window's top-left cell:\n" + grid(gz))


def average_pooling(log, x_peaks):
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    log("\n4. Average pooling for contrast: 2x2, stride 2, upstream gradient [[10 20] [30 40]]")
    _, gx = input_gradient(lambda t: F.avg_pool2d(t, 2), x, [[10, 20], [30, 40]])
    log("   dL/dx: each window shares its gradient equally, 1/4 per cell:\n" + grid(gx))
    _, g_avg = input_gradient(lambda t: F.avg_pool2d(t, 3, stride=1), x_peaks)
    log("   3x3 average pooling, stride 1, on the input of part 2, dL/dy = ones: each cell\n"
        "   gets (number of windows that contain it) / 9, whatever the input values are:\n"
        + grid(np.round(g_avg, 4)))
    return g_avg


def draw(plt, out_dir, quick):
    """Heat maps of dL/dx for max and average pooling on the same image."""
    rng = np.random.default_rng(0)
    n = 12 if quick else 16
    yy, xx = np.mgrid[0:n, 0:n] / n
    image = (np.sin(6 * xx) * np.cos(5 * yy) + 0.3 * rng.standard_normal((n, n))).astype(np.float32)
    panels = [("input image", image, "viridis")]
    for title, pool in [("max 2x2, stride 2", lambda t: F.max_pool2d(t, 2)),
                        ("max 3x3, stride 1", lambda t: F.max_pool2d(t, 3, stride=1)),
                        ("avg 3x3, stride 1", lambda t: F.avg_pool2d(t, 3, stride=1))]:
        panels.append((f"dL/dx, {title}", input_gradient(pool, image)[1], "magma"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, data, cmap) in zip(axes, panels):
        im = ax.imshow(data, cmap=cmap)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("Gradient of sum(pool(x)) with respect to x: max routes, average spreads",
                 fontsize=11)
    return save_figure(plt, fig, out_dir, "argmax_routing.png")


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    log = Log(args.out, "argmax_routing")
    routing_without_overlap(log)
    x_peaks = overlapping_windows(log)
    ties(log)
    average_pooling(log, x_peaks)
    plt = pyplot()
    if plt is not None:
        draw(plt, args.out, args.quick)
    else:
        log("\n(matplotlib is not installed: text output only)")
    log.save()


if __name__ == "__main__":
    main()
