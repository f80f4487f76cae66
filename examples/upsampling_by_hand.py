"""Upsampling by hand: where every output value of a 2x upsampling comes from.

Four ways to make an image twice as large, each worked out on a tiny array
with plain Python and checked against what minipool returns:

1. nearest and nearest-exact: which input cell each output copies
   (``floor(i * in / out)`` against ``floor((i + 0.5) * in / out)``);
2. linear interpolation: the source coordinate of each output, its two
   taps and their weights, with ``align_corners`` False (half-pixel centres,
   PyTorch's default) and True (the corners line up);
3. the transposed convolution: every input cell *stamps* the kernel onto the
   output at ``stride`` steps, and overlapping stamps add up.  A 3x3 kernel at
   stride 2 covers some output cells once, others twice or four times: the
   checkerboard pattern learned decoders are known for (Odena et al., 2016).
   Kernels 2 and 4 at stride 2 cover the inside evenly.  The transposed
   convolution is the adjoint of the convolution, which the script checks:
   ``<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>``;
4. pixel_shuffle: the four channels of a 2x2 block become its four pixels.

    python examples/upsampling_by_hand.py [--quick] [--out DIR]
"""
import numpy as np

import minipool as mp
import minipool.nn.functional as F

from _common import Log, parse_args, pyplot, save_figure

X_1D = [1.0, 2.0, 4.0, 3.0]


def nearest_source(i, size_in, size_out, exact):
    """The input index output ``i`` copies (PyTorch's 'nearest' and 'nearest-exact' rules)."""
    scale = size_in / size_out
    return min(int(np.floor((i + 0.5) * scale if exact else i * scale)), size_in - 1)


def linear_taps(i, size_in, size_out, align_corners):
    """The source coordinate of output ``i`` and its two taps ``[(index, weight), ...]``."""
    if align_corners:
        raw = i * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    else:
        raw = (i + 0.5) * size_in / size_out - 0.5
    src = max(raw, 0.0)  # PyTorch clamps a source left of the first centre to it
    left = min(int(np.floor(src)), size_in - 1)
    right = min(left + 1, size_in - 1)
    frac = src - left
    return raw, src, [(left, 1.0 - frac), (right, frac)]


def show_nearest(log, x):
    n_in, n_out = len(x), 2 * len(x)
    for mode, exact in (("nearest", False), ("nearest-exact", True)):
        log(f"\n{mode}: x = {x}, size {n_in} -> {n_out}")
        by_hand = []
        for i in range(n_out):
            j = nearest_source(i, n_in, n_out, exact)
            by_hand.append(x[j])
            log(f"  out[{i}] copies x[{j}] = {x[j]:g}")
        ours = F.interpolate(mp.tensor([[x]]), scale_factor=2, mode=mode).numpy()[0, 0]
        assert np.array_equal(ours, by_hand), (mode, ours, by_hand)
        log(f"  {mode} -> {fmt(ours)}")
    log("  (at an exact 2x both rules pick the same cells; they differ at other scales:)")
    for mode, exact in (("nearest", False), ("nearest-exact", True)):
        picks = [nearest_source(i, 4, 3, exact) for i in range(3)]
        ours = F.interpolate(mp.tensor([[x]]), size=3, mode=mode).numpy()[0, 0]
        assert np.array_equal(ours, [x[j] for j in picks])
        log(f"  {mode:13s} 4 -> 3 copies cells {picks} -> {fmt(ours)}")


def show_linear(log, x):
    n_in, n_out = len(x), 2 * len(x)
    for align_corners in (False, True):
        log(f"\nlinear, align_corners={align_corners}: x = {x}, size {n_in} -> {n_out}")
        by_hand = []
        for i in range(n_out):
            raw, src, taps = linear_taps(i, n_in, n_out, align_corners)
            value = sum(w * x[j] for j, w in taps)
            by_hand.append(value)
            terms = " + ".join(f"{w:.4g}*x[{j}]" for j, w in taps)
            where = f"{src:.4g}" if raw == src else f"{raw:.4g}, clamped to {src:.4g}"
            log(f"  out[{i}] source {where}: {terms} = {value:.4g}")
        ours = F.interpolate(mp.tensor([[x]]), scale_factor=2, mode="linear",
                             align_corners=align_corners).numpy()[0, 0]
        np.testing.assert_allclose(ours, by_hand, rtol=1e-6)
        log(f"  linear -> {fmt(ours)}")


def stamp_counts(size_in, kernel, stride, padding):
    """How many kernel stamps cover each output cell of a 1-D transposed convolution."""
    size_out = (size_in - 1) * stride - 2 * padding + kernel
    counts = np.zeros(size_out, dtype=int)
    for i in range(size_in):
        for k in range(kernel):
            o = i * stride + k - padding
            if 0 <= o < size_out:
                counts[o] += 1
    return counts


def show_transposed(log, quick):
    size = 4
    maps = {}
    log(f"\ntransposed convolution, stride 2, on a {size}x{size} image of ones with a kernel of ones:")
    log("each input cell stamps the kernel onto the output; the output counts the stamps per cell")
    for kernel, padding in ((2, 0), (3, 1), (4, 1)):
        counts = stamp_counts(size, kernel, 2, padding)
        by_hand = np.outer(counts, counts)  # the 2-D count is the product of the 1-D ones
        ones = mp.ones(1, 1, size, size)
        ours = F.conv_transpose2d(ones, mp.ones(1, 1, kernel, kernel), stride=2, padding=padding).numpy()[0, 0]
        assert np.array_equal(ours, by_hand), (kernel, ours, by_hand)
        even = len(set(by_hand[1:-1, 1:-1].ravel())) == 1
        log(f"\n  kernel {kernel}, padding {padding}: output {ours.shape[0]}x{ours.shape[1]}, "
            f"1-D stamp counts {counts.tolist()} -> "
            + ("even inside" if even else "a checkerboard"))
        for row in ours.astype(int):
            log("    " + " ".join(f"{v:d}" for v in row))
        maps[kernel] = ours

    # the transposed convolution is the adjoint of the convolution (its gradient)
    rng = np.random.default_rng(0)
    trials = 3 if quick else 20
    worst = 0.0
    for _ in range(trials):
        x = rng.standard_normal((1, 2, 7, 7))
        w = rng.standard_normal((3, 2, 3, 3))
        y = rng.standard_normal((1, 3, 3, 3))
        left = float((F.conv2d(mp.tensor(x), mp.tensor(w), stride=2).numpy() * y).sum())
        right = float((x * F.conv_transpose2d(mp.tensor(y), mp.tensor(w), stride=2).numpy()).sum())
        worst = max(worst, abs(left - right) / max(abs(left), 1e-12))
    assert worst < 1e-12, worst
    log(f"\n  <conv2d(x, w), y> == <x, conv_transpose2d(y, w)> for {trials} random float64 "
        f"triples (stride 2, 3x3): largest relative difference {worst:.1e}")
    return maps


def show_pixel_shuffle(log):
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 2, 2)
    ours = F.pixel_shuffle(mp.tensor(x), 2).numpy()[0, 0]
    by_hand = np.zeros((4, 4), np.float32)
    for c in range(4):                # channel c = 2*dy + dx lands at (2*i + dy, 2*j + dx)
        dy, dx = divmod(c, 2)
        by_hand[dy::2, dx::2] = x[0, c]
    assert np.array_equal(ours, by_hand)
    log("\npixel_shuffle(2): four 2x2 channels (1-4, 5-8, 9-12, 13-16) -> one 4x4 image")
    log("  channel c = 2*dy + dx fills the cells (2i + dy, 2j + dx)")
    for row in ours.astype(int):
        log("    " + " ".join(f"{v:2d}" for v in row))


def fmt(values):
    return "[" + ", ".join(f"{v:.4g}" for v in np.asarray(values).ravel()) + "]"


def draw(plt, maps, out_dir):
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.2))
    top = max(counts.max() for counts in maps.values())  # one colour scale for all panels
    for ax, (kernel, counts) in zip(axes, maps.items()):
        ax.imshow(counts, cmap="viridis", vmin=0, vmax=top)
        for (r, c), v in np.ndenumerate(counts):
            ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=7,
                    color="black" if v > top / 2 else "white")
        ax.set_title(f"kernel {kernel}, stride 2: stamps per cell", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    save_figure(plt, fig, out_dir, "upsampling_by_hand.png")


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    log = Log(args.out, "upsampling_by_hand")
    log("Upsampling by hand: the sources and weights of every output cell, checked against minipool")
    show_nearest(log, X_1D)
    show_linear(log, X_1D)
    maps = show_transposed(log, args.quick)
    show_pixel_shuffle(log)
    plt = pyplot()
    if plt is not None:
        draw(plt, maps, args.out)
    else:
        log("\n(matplotlib is not installed: text output only)")
    log.save()


if __name__ == "__main__":
    main()
