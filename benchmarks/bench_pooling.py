"""Pooling speed: minipool's kernels against the memory roof and PyTorch CPU.

For each case (float32; a ResNet-stage input (32, 64, 56, 56) and LeNet's
(64, 6, 28, 28)) and each thread count it prints the median time, the
bandwidth (bytes read + written, argmax storage included), that bandwidth as
a fraction of a same-size ``np.copyto`` (the memory roof), and how many
times faster minipool is than PyTorch on NCHW and on channels_last tensors
(torch.set_num_threads matched).  "fwd train" keeps the argmax (the input
requires grad); "fwd infer" runs under no_grad; "bwd" times the op's backward alone (the
Function's backward / the aten backward op, outside either autograd engine).

    python benchmarks/bench_pooling.py            # full run
    python benchmarks/bench_pooling.py --quick    # smoke run (CI)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import minipool as mp  # noqa: E402
import minipool.nn.functional as F  # noqa: E402

from _common import (copy_bandwidth, format_seconds, gbps, import_torch, machine_line,  # noqa: E402
                     markdown_table, median_time, parse_args, set_threads)

SHAPES = {"32x64x56x56": (32, 64, 56, 56), "LeNet 64x6x28x28": (64, 6, 28, 28)}

# name -> (minipool op taking (x, data_format), torch op taking (torch, x), mode)
CASES = {
    "max 2x2 fwd train": (lambda x, fmt: F.max_pool2d(x, 2, data_format=fmt),
                          lambda t, x: t.nn.functional.max_pool2d(x, 2), "train"),
    "max 2x2 fwd infer": (lambda x, fmt: F.max_pool2d(x, 2, data_format=fmt),
                          lambda t, x: t.nn.functional.max_pool2d(x, 2), "infer"),
    "max 2x2 bwd": (lambda x, fmt: F.max_pool2d(x, 2, data_format=fmt), "max2", "backward"),
    "max 3x3 s2 p1 fwd train": (lambda x, fmt: F.max_pool2d(x, 3, 2, 1, data_format=fmt),
                                lambda t, x: t.nn.functional.max_pool2d(x, 3, 2, 1), "train"),
    "avg 2x2 fwd": (lambda x, fmt: F.avg_pool2d(x, 2, data_format=fmt),
                    lambda t, x: t.nn.functional.avg_pool2d(x, 2), "train"),
    "avg 2x2 bwd": (lambda x, fmt: F.avg_pool2d(x, 2, data_format=fmt), "avg2", "backward"),
}


def time_minipool(op, x_np, data_format, mode, args):
    """Median seconds and bytes moved for one minipool case.

    Backward times the op's own backward (the Function's ``backward`` on a
    recorded graph), without the autograd engine's bookkeeping."""
    x = mp.tensor(x_np, requires_grad=mode != "infer")
    y = op(x, data_format)
    kept = 0
    if y.grad_fn is not None and hasattr(y.grad_fn, "codes"):
        kept = y.grad_fn.codes.nbytes                       # the argmax kept for backward
    if mode == "backward":
        ctx = y.grad_fn
        g = np.ones(y.shape, dtype=np.float32)
        seconds = median_time(lambda: type(ctx).backward(ctx, g), args.repeats, args.warmup)
        return seconds, y.numpy().nbytes + kept + x_np.nbytes
    if mode == "infer":
        with mp.no_grad():
            seconds = median_time(lambda: op(x, data_format), args.repeats, args.warmup)
    else:
        seconds = median_time(lambda: op(x, data_format), args.repeats, args.warmup)
    return seconds, x_np.nbytes + y.numpy().nbytes + kept


def time_torch(torch, op, x_np, channels_last, mode, args):
    """Median seconds of the same case in PyTorch (backward: the aten backward op)."""
    x = torch.from_numpy(x_np).clone()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if mode == "backward":
        aten = torch.ops.aten
        if op == "max2":
            y, idx = aten.max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1], False)
            g = torch.ones_like(y)
            run = lambda: aten.max_pool2d_with_indices_backward(  # noqa: E731
                g, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
        else:
            g = torch.ones_like(aten.avg_pool2d(x, [2, 2], [2, 2], [0, 0], False, True, None))
            run = lambda: aten.avg_pool2d_backward(  # noqa: E731
                g, x, [2, 2], [2, 2], [0, 0], False, True, None)
        return median_time(run, args.repeats, args.warmup)
    x.requires_grad_(mode != "infer")
    if mode == "infer":
        with torch.no_grad():
            return median_time(lambda: op(torch, x), args.repeats, args.warmup)
    return median_time(lambda: op(torch, x), args.repeats, args.warmup)


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    torch = import_torch(args.no_torch)
    rows = []
    for shape_name, shape in SHAPES.items():
        x_first = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        x_last = np.ascontiguousarray(x_first.transpose(0, 2, 3, 1))
        roof = copy_bandwidth(x_first.nbytes, args.repeats, args.warmup)
        for threads in args.threads:
            set_threads(threads, torch)
            for case, (op, torch_op, mode) in CASES.items():
                reference = {}
                if torch is not None:
                    for cl in (False, True):
                        reference[cl] = time_torch(torch, torch_op, x_first, cl, mode, args)
                for fmt, x_np in (("NCHW", x_first), ("NHWC", x_last)):
                    data_format = "channels_first" if fmt == "NCHW" else "channels_last"
                    seconds, nbytes = time_minipool(op, x_np, data_format, mode, args)
                    rate = gbps(nbytes, seconds)
                    row = [case, shape_name, fmt, threads, format_seconds(seconds),
                           f"{rate:.1f}", f"{rate / roof:.0%}"]
                    for cl in (False, True):
                        if torch is None:
                            row += ["-", "-"]
                        else:
                            row += [format_seconds(reference[cl]),
                                    f"{reference[cl] / seconds:.1f}x"]
                    rows.append(row)
    print(machine_line(torch))
    print()
    print(markdown_table(
        ["case", "input", "layout", "threads", "minipool", "GB/s", "of copy roof",
         "torch NCHW", "speed-up", "torch channels_last", "speed-up"], rows))
    print()
    print(memory_report())
    print()
    print(blur_report(args, torch))
    print()
    print(fractional_report(args, torch))


def memory_report():
    """Bytes kept for backward by max pooling: minipool's codes vs PyTorch's int64 indices."""
    lines = ["argmax kept for backward (max_pool2d, float32 input requiring grad):"]
    for shape_name, shape in SHAPES.items():
        for k, s, p in ((2, 2, 0), (3, 2, 1)):
            x = mp.zeros(*shape, requires_grad=True)
            y = F.max_pool2d(x, k, s, p)
            ours = y.grad_fn.codes.nbytes
            theirs = y.numel() * 8
            lines.append(f"  {shape_name} kernel {k} stride {s} padding {p}: minipool "
                         f"{ours / 2**20:.2f} MiB ({y.grad_fn.codes.dtype}), PyTorch int64 "
                         f"{theirs / 2**20:.2f} MiB, ratio {ours / theirs:.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MaxBlurPool (issue 13)
BLUR_SHAPES = {"LeNet 64x6x28x28": (64, 6, 28, 28), "32x64x56x56": (32, 64, 56, 56)}


def torch_max_blur(torch, x, channels):
    """PyTorch's composition of the paper's MaxBlurPool: max pool k2 s1, reflect pad (1, 1),
    depthwise conv with the 3x3 binomial filter, stride 2."""
    tf = torch.nn.functional
    row = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype) / 4
    filt = (row[:, None] * row[None, :]).expand(channels, 1, 3, 3)
    return tf.conv2d(tf.pad(tf.max_pool2d(x, 2, 1), (1, 1, 1, 1), mode="reflect"), filt,
                     stride=2, groups=channels)


def blur_report(args, torch):
    """nn.MaxBlurPool2d() (max 2x2 stride 1, then 3x3 BlurPool stride 2), float32, forward with
    the input requiring grad and forward + backward, against PyTorch's composition."""
    rows = []
    for shape_name, shape in BLUR_SHAPES.items():
        x_first = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        x_last = np.ascontiguousarray(x_first.transpose(0, 2, 3, 1))
        for threads in args.threads:
            set_threads(threads, torch)
            for fmt, x_np in (("NCHW", x_first), ("NHWC", x_last)):
                layer = mp.nn.MaxBlurPool2d(data_format="channels_last" if fmt == "NHWC" else None)
                x = mp.tensor(x_np, requires_grad=True)
                g = np.ones(layer(x).shape, np.float32)

                def both():
                    layer(x).backward(g)

                ours = [median_time(lambda: layer(x), args.repeats, args.warmup),
                        median_time(both, args.repeats, args.warmup)]
                theirs = ["-", "-"]
                if torch is not None:
                    xt = torch.from_numpy(x_first).clone()
                    if fmt == "NHWC":
                        xt = xt.contiguous(memory_format=torch.channels_last)
                    xt.requires_grad_(True)
                    gt = torch.ones(torch_max_blur(torch, xt, shape[1]).shape)

                    def torch_both():
                        torch_max_blur(torch, xt, shape[1]).backward(gt)

                    theirs = [median_time(lambda: torch_max_blur(torch, xt, shape[1]),
                                          args.repeats, args.warmup),
                              median_time(torch_both, args.repeats, args.warmup)]
                for case, mine, ref in zip(("fwd", "fwd+bwd"), ours, theirs):
                    speed = "-" if ref == "-" else f"{ref / mine:.1f}x"
                    rows.append([f"MaxBlurPool2d {case}", shape_name, fmt, threads,
                                 format_seconds(mine),
                                 ref if ref == "-" else format_seconds(ref), speed])
    return markdown_table(["case", "input", "layout", "threads", "minipool",
                           "torch (max_pool2d + reflect pad + depthwise conv2d)", "speed-up"], rows)


# ----------------------------------------------------------------------------- fractional max pool (issue 13)
FRACTIONAL_SHAPES = {"32x64x56x56": (32, 64, 56, 56), "LeNet 64x6x28x28": (64, 6, 28, 28)}


def fractional_report(args, torch):
    """F.fractional_max_pool2d(x, 2, output_ratio=0.5), float32, the same _random_samples in
    both libraries: forward with the input requiring grad, and forward + backward."""
    rows = []
    for shape_name, shape in FRACTIONAL_SHAPES.items():
        x_first = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        x_last = np.ascontiguousarray(x_first.transpose(0, 2, 3, 1))
        samples = np.random.default_rng(1).random(shape[:2] + (2,), dtype=np.float32)
        for threads in args.threads:
            set_threads(threads, torch)
            for fmt, x_np in (("NCHW", x_first), ("NHWC", x_last)):
                data_format = "channels_last" if fmt == "NHWC" else None
                x = mp.tensor(x_np, requires_grad=True)

                def ours_fwd():
                    return F.fractional_max_pool2d(x, 2, output_ratio=0.5,
                                                   _random_samples=samples,
                                                   data_format=data_format)

                g = np.ones(ours_fwd().shape, np.float32)
                ours = [median_time(ours_fwd, args.repeats, args.warmup),
                        median_time(lambda: ours_fwd().backward(g), args.repeats, args.warmup)]
                theirs = ["-", "-"]
                if torch is not None:
                    xt = torch.from_numpy(x_first).clone()
                    if fmt == "NHWC":
                        xt = xt.contiguous(memory_format=torch.channels_last)
                    xt.requires_grad_(True)
                    st = torch.from_numpy(samples)

                    def theirs_fwd():
                        return torch.nn.functional.fractional_max_pool2d(
                            xt, 2, output_ratio=(0.5, 0.5), _random_samples=st)

                    gt = torch.ones(theirs_fwd().shape)
                    theirs = [median_time(theirs_fwd, args.repeats, args.warmup),
                              median_time(lambda: theirs_fwd().backward(gt), args.repeats,
                                          args.warmup)]
                for case, mine, ref in zip(("fwd", "fwd+bwd"), ours, theirs):
                    speed = "-" if ref == "-" else f"{ref / mine:.1f}x"
                    rows.append([f"fractional_max_pool2d k2 ratio 0.5 {case}", shape_name, fmt,
                                 threads, format_seconds(mine),
                                 ref if ref == "-" else format_seconds(ref), speed])
    return markdown_table(["case", "input", "layout", "threads", "minipool", "torch",
                           "speed-up"], rows)


if __name__ == "__main__":
    main()
