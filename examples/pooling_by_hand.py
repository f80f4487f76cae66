"""Pooling by hand: every window of small 1-D and 2-D arrays, printed with what minipool returns.

For each setting (kernel k, stride s, padding p, dilation d, ceil_mode) the
output length is first worked out with the formula
    out = floor((L + 2p - d(k-1) - 1 + (s-1 if ceil_mode else 0)) / s) + 1
(in ceil_mode a last window that would start in the right padding is dropped),
then each output cell is listed with the input cells of its window.  The window
listing is plain Python; every pooled number comes from minipool.

    python examples/pooling_by_hand.py [--quick] [--out DIR]
"""
import numpy as np

import minipool as mp
import minipool.nn.functional as F

from _common import Log, parse_args, pyplot, save_figure

X_1D = [1, 2, -1, 0, 2, 3, -2, 0]
X_2D = [[1, 3, 2, 4],
        [1, 3, 2, 4],
        [5, 7, 6, 8],
        [5, 7, 6, 8]]


def output_size(length, k, s, p, d, ceil_mode):
    """The pooling output length and the formula with the numbers filled in."""
    top = length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = top // s + 1
    text = (f"floor(({length} + 2*{p} - {d}*({k}-1) - 1"
            f"{f' + ({s}-1)' if ceil_mode else ''}) / {s}) + 1 = {out}")
    if ceil_mode and (out - 1) * s >= length + p:
        out -= 1
        text += f", minus 1 (the last window would start in the right padding) = {out}"
    return out, text


def window(o, k, s, p, d):
    """Input positions that output cell ``o`` looks at (negative or >= L means padding)."""
    start = o * s - p
    return [start + j * d for j in range(k)]


def pooling_kinds(k, s, p, d, ceil_mode, ndim):
    """name -> minipool call for every pooling kind that accepts these settings."""
    suffix = f"{ndim}d"
    max_pool, avg_pool = getattr(F, "max_pool" + suffix), getattr(F, "avg_pool" + suffix)
    min_pool, lp_pool = getattr(F, "min_pool" + suffix), getattr(F, "lp_pool" + suffix)
    sum_pool = getattr(F, "sum_pool" + suffix)
    kinds = {
        "max": lambda x: max_pool(x, k, s, p, d, ceil_mode=ceil_mode),
        "min": lambda x: min_pool(x, k, s, p, d, ceil_mode=ceil_mode),
    }
    if d == 1:  # average, sum and Lp pooling have no dilation (as in PyTorch)
        kinds["avg"] = lambda x: avg_pool(x, k, s, p, ceil_mode=ceil_mode)
        kinds["sum"] = lambda x: sum_pool(x, k, s, p, ceil_mode=ceil_mode)
        if p == 0:  # Lp pooling has no padding argument
            kinds["L2"] = lambda x: lp_pool(x, 2, k, s, ceil_mode=ceil_mode)
    return kinds


def fmt(v):
    return f"{v:.4g}"


def fmt_list(values):
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def fmt_grid(rows):
    return "[" + " ".join("[" + " ".join(row) + "]" for row in rows) + "]"


def show_1d(log, x, k, s=None, p=0, d=1, ceil_mode=False, note=""):
    s = k if s is None else s
    length = len(x)
    log(f"\nx = {x}   kernel {k}, stride {s}, padding {p}, dilation {d}, ceil_mode {ceil_mode}"
        + (f"   ({note})" if note else ""))
    n_out, formula = output_size(length, k, s, p, d, ceil_mode)
    log(f"  out = {formula}")
    inp = mp.tensor(np.array([[x]], dtype=np.float32))  # (N=1, C=1, L)
    results = {}
    for name, pool in pooling_kinds(k, s, p, d, ceil_mode, 1).items():
        results[name] = pool(inp).numpy()[0, 0]
        assert results[name].shape == (n_out,), (name, results[name].shape, n_out)
    for o in range(n_out):
        cells = window(o, k, s, p, d)
        values = [fmt(x[i]) if 0 <= i < length else ("pad" if i < length + p else "past end")
                  for i in cells]
        pooled = "  ".join(f"{name} {fmt(v[o]):>6}" for name, v in results.items())
        log(f"  out[{o}]  cells {str(cells):13} values [{', '.join(values)}]".ljust(54) + "  " + pooled)
    for name, v in results.items():
        log(f"  {name:>4} pooling -> {fmt_list(v)}")


def show_2d(log, x, k, s, p=0):
    x = np.asarray(x, dtype=np.float32)
    h, w = x.shape
    log(f"\n2-D: x =\n{x.astype(int)}\n  kernel {k}x{k}, stride {s}, padding {p}")
    oh, formula_h = output_size(h, k, s, p, 1, False)
    ow, _ = output_size(w, k, s, p, 1, False)
    log(f"  out height = out width = {formula_h}: a 2-D window is a 1-D window along H "
        f"times one along W")
    inp = mp.tensor(x[None, None])  # (N=1, C=1, H, W)
    results = {name: pool(inp).numpy()[0, 0]
               for name, pool in pooling_kinds(k, s, p, 1, False, 2).items()}
    for i in range(oh):
        for j in range(ow):
            rows, cols = window(i, k, s, p, 1), window(j, k, s, p, 1)
            block = [[fmt(x[r, c]) if 0 <= r < h and 0 <= c < w else "pad" for c in cols]
                     for r in rows]
            pooled = "  ".join(f"{name} {fmt(v[i, j]):>5}" for name, v in results.items())
            log(f"  out[{i},{j}]  rows {rows} cols {cols}  {fmt_grid(block)}".ljust(56) + "  " + pooled)
    for name, v in results.items():
        log(f"  {name:>4} pooling -> {fmt_grid([[fmt(t) for t in row] for row in v])}")


def show_stochastic(log, rng_seed=0):
    a = np.array([[1, 3, 0, 0], [0, 0, 0, 2], [2, 2, 1, 0], [0, 4, 1, 1]], np.float32)
    log("\nStochastic pooling (Zeiler & Fergus) needs activations >= 0, e.g. after ReLU.")
    log(f"a =\n{a.astype(int)}\n  kernel 2x2, stride 2. In window W a cell is picked with "
        "probability a_i / sum(a_W):")
    for i in range(2):
        for j in range(2):
            block = a[2 * i:2 * i + 2, 2 * j:2 * j + 2].ravel()
            probs = block / block.sum()
            log(f"  out[{i},{j}]  window {fmt_list(block)}  p = {fmt_list(np.round(probs, 3))}"
                f"  expected value sum(a^2)/sum(a) = {fmt((block ** 2).sum() / block.sum())}")
    inp = mp.tensor(a[None, None])
    for draw in range(3):
        y = F.stochastic_pool2d(inp, 2, training=True, generator=np.random.default_rng(rng_seed + draw))
        log(f"  training draw {draw}: {fmt_grid([[fmt(v) for v in row] for row in y.numpy()[0, 0]])}")
    many = F.stochastic_pool2d(mp.tensor(np.repeat(a[None, None], 2000, axis=0)), 2,
                               training=True, generator=rng_seed)
    log("  mean of 2000 training draws: "
        f"{fmt_grid([[fmt(v) for v in row] for row in np.round(many.numpy().mean(axis=(0, 1)), 2)])}")
    y = F.stochastic_pool2d(inp, 2, training=False)
    log("  evaluation (probability-weighted average): "
        f"{fmt_grid([[fmt(v) for v in row] for row in y.numpy()[0, 0]])}")


def draw_windows(plt, x, k, s, out_dir):
    """One small panel per output cell: the input, that cell's window, and the max it picked."""
    x = np.asarray(x, dtype=np.float32)
    y, idx = F.max_pool2d(mp.tensor(x[None, None]), k, s, return_indices=True)
    y, idx = y.numpy()[0, 0], idx.numpy()[0, 0]  # idx: flat position h*W + w of each max
    oh, ow = y.shape
    fig, axes = plt.subplots(oh, ow, figsize=(2.0 * ow, 2.0 * oh))
    for i in range(oh):
        for j in range(ow):
            ax = axes[i, j]
            ax.imshow(x, cmap="Blues", vmin=x.min(), vmax=x.max() * 2.5)
            picked = divmod(int(idx[i, j]), x.shape[1])
            for (r, c), v in np.ndenumerate(x):
                ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=10,
                        color="crimson" if (r, c) == picked else "black",
                        fontweight="bold" if (r, c) == picked else "normal")
            ax.add_patch(plt.Rectangle((j * s - 0.5, i * s - 0.5), k, k, fill=False,
                                       edgecolor="crimson", linewidth=2.5))
            ax.set_title(f"out[{i},{j}] = {y[i, j]:g}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{k}x{k} max pooling, stride {s}: each output cell, its window\n"
                 "and the cell it took (red; ties go to the first in row-major order)",
                 fontsize=10)
    return save_figure(plt, fig, out_dir, "pooling_by_hand.png")


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    log = Log(args.out, "pooling_by_hand")
    log("=== 1-D pooling (x is one channel of one sample: shape (1, 1, 8)) ===")
    show_1d(log, X_1D, k=2, note="stride defaults to the kernel size")
    show_1d(log, X_1D, k=3, s=1, note="stride < kernel: windows overlap")
    show_1d(log, X_1D, k=3, s=2, p=1,
            note="padding: max and min never pick a padded cell; avg counts it as a 0")
    show_1d(log, X_1D, k=2, s=1, d=3, note="dilation: the window has holes")
    show_1d(log, X_1D, k=3, s=2, ceil_mode=False, note="floor: the leftover cell is dropped")
    show_1d(log, X_1D, k=3, s=2, ceil_mode=True,
            note="ceil: a partial last window; avg and L2 use only the cells it really has")

    log("\n=== 2-D pooling ===")
    show_2d(log, X_2D, k=2, s=1)
    show_2d(log, X_2D, k=2, s=2)
    show_2d(log, X_2D, k=3, s=2, p=1)
    show_stochastic(log)

    plt = pyplot()
    if plt is not None:
        draw_windows(plt, X_2D, 2, 1, args.out)
    else:
        log("\n(matplotlib is not installed: text output only)")
    log.save()


if __name__ == "__main__":
    main()
