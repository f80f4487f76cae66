"""Upsampling speed: minipool against PyTorch CPU (NCHW and channels_last).

For each case (float32, x2 on (32, 64, 56, 56) by default) and thread count
it prints one markdown row: the median time, GB/s (input + output bytes, or
gradient-in + gradient-out bytes for a backward), that bandwidth as a
fraction of a same-size ``np.copyto`` (the memory roof), and how many times
faster minipool is than PyTorch with NCHW and with channels_last tensors.
The three are timed in turn within every repeat (medians reported), so load
from other processes on a shared machine hits them alike.
Rows marked NHWC run minipool with ``data_format="channels_last"``; the others
run it on NCHW arrays.  Backward rows time only the backward of an already
recorded graph: for minipool the op's backward (what the autograd engine
calls; the engine's own copy of the result into ``.grad`` is not counted),
for PyTorch ``torch.autograd.grad`` of the recorded output.

    python benchmarks/bench_upsampling.py            # the full table
    python benchmarks/bench_upsampling.py --quick    # a smoke run: 3 repeats
    python benchmarks/bench_upsampling.py --threads 2 --shape 8,64,56,56
    python benchmarks/bench_upsampling.py --cases "x2 forward,x2 backward"  # label substrings
    python benchmarks/bench_upsampling.py --cases "aa "   # antialiased downscaling rows only

The antialiased rows ("aa ...") carry their own input shape in the label (--shape does
not apply to them).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (copy_bandwidth, format_seconds, gbps, import_torch, machine_line,  # noqa: E402
                     markdown_table, median_times_in_turns, parse_args, set_threads)

import minipool as mp  # noqa: E402
import minipool.nn.functional as F  # noqa: E402

DEFAULT_SHAPE = (32, 64, 56, 56)
# (label, mode, keyword arguments, backward?)
CASES = [
    ("nearest x2 forward", "nearest", dict(scale_factor=2), False),
    ("bilinear x2 forward", "bilinear", dict(scale_factor=2, align_corners=False), False),
    ("nearest x2 backward", "nearest", dict(scale_factor=2), True),
    ("bilinear x2 backward", "bilinear", dict(scale_factor=2, align_corners=False), True),
    ("bicubic x2 forward", "bicubic", dict(scale_factor=2, align_corners=False), False),
    ("bilinear x1.5 forward", "bilinear", dict(scale_factor=1.5, align_corners=False), False),
    ("nearest x2 forward NHWC", "nearest", dict(scale_factor=2), False),
    ("bilinear x2 forward NHWC", "bilinear", dict(scale_factor=2, align_corners=False), False),
    ("bilinear x2 backward NHWC", "bilinear", dict(scale_factor=2, align_corners=False), True),
]
# Antialiased downscaling (issue 13), each on its own input shape (5th field).
AA_SHAPES = ((32, 64, 56, 56), (8, 3, 224, 224))
CASES += [(f"aa {mode} x{f} {'forward' if not bwd else 'backward'} {'x'.join(map(str, shp))}",
           mode, dict(scale_factor=f, antialias=True), bwd, shp)
          for shp in AA_SHAPES for f in (0.5, 0.3) for mode in ("bilinear", "bicubic")
          for bwd in (False, True) if not (bwd and mode == "bicubic")]


def extract_own_options(argv):
    """Pull ``--shape N,C,H,W`` and ``--cases a,b`` (label substrings) out of argv; the
    shared parser does not know them."""
    shape, wanted, rest = DEFAULT_SHAPE, None, []
    it = iter(argv)
    for arg in it:
        name = arg.split("=", 1)[0]
        if name not in ("--shape", "--cases"):
            rest.append(arg)
            continue
        value = arg.split("=", 1)[1] if "=" in arg else next(it, "")
        if name == "--cases":
            wanted = [v.strip() for v in value.split(",") if v.strip()]
            continue
        try:
            shape = tuple(int(v) for v in value.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 4 or min(shape) < 1:
            raise SystemExit(f"--shape needs four positive ints N,C,H,W, got {value!r}")
    cases = [c for c in CASES if wanted is None or any(w in c[0] for w in wanted)]
    if not cases:
        raise SystemExit(f"--cases {wanted} matches none of: {', '.join(c[0] for c in CASES)}")
    return shape, cases, rest


def minipool_case(x, mode, kwargs, backward, channels_last):
    """A no-argument callable running the case once, and the bytes it moves."""
    fmt = "channels_last" if channels_last else "channels_first"
    data = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if channels_last else x
    if not backward:
        fn = lambda: F.interpolate(data, mode=mode, data_format=fmt, **kwargs)  # noqa: E731
        return fn, data.nbytes + fn().numpy().nbytes
    leaf = mp.tensor(data, requires_grad=True)
    out = F.interpolate(leaf, mode=mode, data_format=fmt, **kwargs)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    op = out.grad_fn
    return (lambda: op.backward(op, g)), g.nbytes + data.nbytes


def torch_case(torch, x, mode, kwargs, backward, channels_last):
    t = torch.from_numpy(x)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    TF = torch.nn.functional
    if not backward:
        return lambda: TF.interpolate(t, mode=mode, **kwargs)
    t = t.clone().requires_grad_(True)
    out = TF.interpolate(t, mode=mode, **kwargs)
    g = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32)
    g = torch.from_numpy(g)
    if channels_last:
        g = g.contiguous(memory_format=torch.channels_last)
    return lambda: torch.autograd.grad(out, t, g, retain_graph=True)


def main(argv=None):
    shape, cases, rest = extract_own_options(sys.argv[1:] if argv is None else argv)
    args = parse_args("minipool upsampling benchmark", rest)
    torch = import_torch(args.no_torch)
    inputs = {}
    old = mp.get_num_threads()
    rows = []
    try:
        for threads in args.threads:
            set_threads(threads, torch)
            for label, mode, kwargs, backward, *own_shape in cases:
                case_shape = own_shape[0] if own_shape else shape
                if case_shape not in inputs:
                    inputs[case_shape] = np.random.default_rng(0).standard_normal(
                        case_shape).astype(np.float32)
                x = inputs[case_shape]
                nhwc = label.endswith("NHWC")
                fn, nbytes = minipool_case(x, mode, kwargs, backward, nhwc)
                fns = [fn]
                if torch is not None:
                    fns += [torch_case(torch, x, mode, kwargs, backward, last)
                            for last in (False, True)]
                t, *torch_times = median_times_in_turns(fns, args.repeats, args.warmup)
                bandwidth = gbps(nbytes, t)
                roof = bandwidth / copy_bandwidth(nbytes / 2, args.repeats, args.warmup)
                row = [label, threads, format_seconds(t), f"{bandwidth:.1f}", f"{roof:.2f}"]
                for tt in torch_times:
                    row += [format_seconds(tt), f"{tt / t:.2f}x"]
                if torch is None:
                    row += ["-", "-", "-", "-"]
                rows.append(row)
                print(" | ".join(str(c) for c in row), file=sys.stderr, flush=True)
    finally:
        set_threads(old, torch)
    headers = ["case (float32, input %s)" % "x".join(map(str, shape)), "threads", "minipool",
               "GB/s", "of copy roof", "torch NCHW", "speed-up vs NCHW", "torch channels_last",
               "speed-up vs channels_last"]
    print(machine_line(torch))
    print()
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
