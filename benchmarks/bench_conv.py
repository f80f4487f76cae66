"""conv2d on the LeNet-5 shapes, a sweep of tiny-CNN layers (and conv_transpose2d, channels-last rows): minipool (im2col + BLAS GEMM, register tiles or the direct kernel) against PyTorch CPU eager, and against this machine's sgemm roof.

For each shape: forward, and forward + backward (weight and bias gradients,
plus the input gradient where a network needs it: not for the first layer),
median wall time, at each thread count, and the arithmetic rate this gives
(multiply-adds x 2 / time, in GFLOP/s).  minipool, PyTorch and the roof each
run in a process of their own, as a user's script runs one library: two OpenMP
runtimes in one process interfere.  After a parallel region each runtime's idle
threads spin for a while (measured with libgomp's defaults at 2 threads: 8-10 ms
of CPU time after a call), so a call of the other library that follows shares a
core with that spin.  Every process gets ``OPENBLAS_NUM_THREADS``,
``MINIPOOL_NUM_THREADS`` and ``OMP_NUM_THREADS`` set before NumPy and PyTorch
load, so minipool's kernels and PyTorch use the same count.  ``--rounds N`` runs
the processes N times, alternating which library goes first, and reports each
figure as the median of the rounds: a slow stretch of a shared host then falls
on a round, not on a row.

The sweep table puts each layer's GFLOP/s next to the sgemm roof: the GFLOP/s
of one large float32 GEMM through NumPy's OpenBLAS at the same thread count
(conv2d is a GEMM after im2col, so no conv kernel built on it can beat that by
much).

    python benchmarks/bench_conv.py               # 1 and 2 threads
    python benchmarks/bench_conv.py --quick       # smoke run
    python benchmarks/bench_conv.py --rounds 5    # each figure the median of 5 such runs
    python benchmarks/bench_conv.py --engines [REPEATS [BASELINE]]
    python benchmarks/bench_conv.py --against DIR [REPEATS]

``--engines`` compares the conv2d kernel's engines on the LeNet and sweep
layers at 1 thread: OpenBLAS GEMMs only (``use_tiles(0)``, which also turns the
direct kernel off, ``use_wgrad_tiles(0)`` and ``use_wgrad_outer(0)``: the kernel
before the register tiles) against the automatic choice (mode 1, the default), and PyTorch, each
timed in CPU time (``time.thread_time``, so other processes on a busy machine
count less), interleaved in one process, the minimum of REPEATS (default 7)
rounds.  With a BASELINE (the path of another build's compiled conv2d kernel,
e.g. an older commit's), the first column is minipool forward and backward on
that kernel instead, so a change can be timed A/B in one process:

    python benchmarks/bench_conv.py --engines 9 path/to/old/conv2d.cpython-311-x86_64-linux-gnu.so

``--against DIR`` times the forward of the same layers at the kernel level
(``conv2d_forward`` with the plan of ``minipool.ops.conv``) with the conv2d
extension compiled in DIR (another checkout's ``minipool/_kernels``, or a copy
of its .so) against this checkout's and PyTorch, in the same way (1 thread, CPU
time, in turns whose order rotates each round, min of REPEATS rounds, default 7): A/B
for kernel changes.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (best_in_turns, format_seconds, import_torch, machine_line,  # noqa: E402
                     markdown_table, median_time, parse_args)

# (name, op, N, C, H, W, O, k, stride, padding, input needs a gradient, channels_last); C
# is the input's channels (in_channels of a transposed convolution), O the output's
LENET_SHAPES = [
    ("conv1 1->6 5x5 on 32x32", "conv2d", 64, 1, 32, 32, 6, 5, 1, 0, False, False),
    ("conv2 6->16 5x5 on 14x14", "conv2d", 64, 6, 14, 14, 16, 5, 1, 0, True, False),
]
TRANSPOSED_AND_NHWC_SHAPES = [
    ("conv1 NHWC", "conv2d", 64, 1, 32, 32, 6, 5, 1, 0, False, True),
    ("conv2 NHWC", "conv2d", 64, 6, 14, 14, 16, 5, 1, 0, True, True),
    ("transposed 16->6 5x5 s2 on 14x14", "conv_transpose2d", 64, 16, 14, 14, 6, 5, 2, 0, True, False),
    ("transposed 32->16 4x4 s2 p1 on 7x7", "conv_transpose2d", 64, 32, 7, 7, 16, 4, 2, 1, True, False),
    ("transposed 32->16 4x4 s2 p1 NHWC", "conv_transpose2d", 64, 32, 7, 7, 16, 4, 2, 1, True, True),
]
# tiny-CNN layers, same row format: 1-256 channels, 3x3 padding 1 and 5x5 padding 2,
# planes 4-64 px; the first three are the CIFAR-shaped net's convolutions
SWEEP_SHAPES = [
    ("3->32 3x3 p1 on 32x32", "conv2d", 64, 3, 32, 32, 32, 3, 1, 1, False, False),
    ("32->64 3x3 p1 on 16x16", "conv2d", 64, 32, 16, 16, 64, 3, 1, 1, True, False),
    ("64->128 3x3 p1 on 8x8", "conv2d", 64, 64, 8, 8, 128, 3, 1, 1, True, False),
    ("1->16 3x3 p1 on 28x28", "conv2d", 64, 1, 28, 28, 16, 3, 1, 1, False, False),
    ("8->16 3x3 p1 on 64x64", "conv2d", 64, 8, 64, 64, 16, 3, 1, 1, True, False),
    ("16->16 3x3 p1 on 32x32", "conv2d", 64, 16, 32, 32, 16, 3, 1, 1, True, False),
    ("32->32 3x3 p1 on 32x32", "conv2d", 64, 32, 32, 32, 32, 3, 1, 1, True, False),
    ("128->128 3x3 p1 on 8x8", "conv2d", 64, 128, 8, 8, 128, 3, 1, 1, True, False),
    ("128->256 3x3 p1 on 4x4", "conv2d", 64, 128, 4, 4, 256, 3, 1, 1, True, False),
    ("256->256 3x3 p1 on 4x4", "conv2d", 64, 256, 4, 4, 256, 3, 1, 1, True, False),
    ("3->16 5x5 p2 on 32x32", "conv2d", 64, 3, 32, 32, 16, 5, 1, 2, False, False),
    ("16->32 5x5 p2 on 16x16", "conv2d", 64, 16, 16, 16, 32, 5, 1, 2, True, False),
    ("32->64 5x5 p2 on 8x8", "conv2d", 64, 32, 8, 8, 64, 5, 1, 2, True, False),
    ("64->64 5x5 p2 on 4x4", "conv2d", 64, 64, 4, 4, 64, 5, 1, 2, True, False),
]
ROOF_SIZE = 2048  # the roof's GEMM: (ROOF_SIZE x ROOF_SIZE) @ (ROOF_SIZE x ROOF_SIZE), float32


def sgemm_roof(repeats, warmup):
    """GFLOP/s of one large float32 GEMM (NumPy's matmul, OpenBLAS at this process's thread
    count): the most a GEMM-based convolution can reach here."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((ROOF_SIZE, ROOF_SIZE), dtype=np.float32)
    b = rng.standard_normal((ROOF_SIZE, ROOF_SIZE), dtype=np.float32)
    c = np.empty_like(a)
    seconds = median_time(lambda: np.matmul(a, b, out=c), max(3, repeats // 3), warmup)
    return 2 * ROOF_SIZE ** 3 / seconds / 1e9


LIBRARIES = ("minipool", "torch", "roof")


def measure(threads, repeats, warmup, library):
    """Time every case on one library (``LIBRARIES``: "roof" is the sgemm roof alone) in
    this process; return rows as plain dicts."""
    if library == "roof":
        return [{"roof": sgemm_roof(repeats, warmup)}]
    if library == "torch":
        import torch
        torch.set_num_threads(threads)
    else:
        import minipool as mp
        mp.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for case in LENET_SHAPES + TRANSPOSED_AND_NHWC_SHAPES:
        rows.append(measure_case(case, threads, repeats, warmup, library, rng))
    for case in SWEEP_SHAPES:
        rows.append(dict(measure_case(case, threads, repeats, warmup, library, rng), sweep=True))
    return rows


def measure_case(case, threads, repeats, warmup, library, rng):
    """One row (LeNet, transposed / NHWC or sweep shape: minipool's NHWC against torch's
    channels_last memory format) on ``library`` ("minipool" or "torch")."""
    name, op, N, C, H, W, O, k, stride, padding, input_grad, channels_last = case
    transposed = op == "conv_transpose2d"
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((C, O, k, k) if transposed else (O, C, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    if transposed:
        Ho, Wo = (H - 1) * stride - 2 * padding + k, (W - 1) * stride - 2 * padding + k
    else:
        Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    g = rng.standard_normal((N, O, Ho, Wo)).astype(np.float32)
    kw = dict(stride=stride, padding=padding)
    if library == "torch":
        import torch

        memory = torch.channels_last if channels_last else torch.contiguous_format
        xt = torch.from_numpy(x).contiguous(memory_format=memory).requires_grad_(input_grad)
        wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
        gt = torch.from_numpy(g).contiguous(memory_format=memory)
        fn, no_grad, fmt = getattr(torch.nn.functional, op), torch.no_grad, {}
    else:
        import minipool as mp
        import minipool.nn.functional as F

        fmt = dict(data_format="channels_last") if channels_last else {}
        x_mp = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if channels_last else x
        gt = np.ascontiguousarray(g.transpose(0, 2, 3, 1)) if channels_last else g
        xt = mp.tensor(x_mp, requires_grad=input_grad)
        wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(b, requires_grad=True)
        fn, no_grad = getattr(F, op), mp.no_grad

    def forward():
        with no_grad():
            fn(xt, wt, bt, **kw, **fmt)

    def train():
        fn(xt, wt, bt, **kw, **fmt).backward(gt)

    key = "torch" if library == "torch" else "mp"
    row = {"case": name, "threads": threads}
    row[f"{key}_fwd"], row[f"{key}_fb"] = (median_time(f, repeats, warmup) for f in (forward, train))
    macs = N * O * (H * W if transposed else Ho * Wo) * C * k * k
    row["flop_fwd"], row["flop_fb"] = 2 * macs, 2 * macs * (3 if input_grad else 2)
    return row


def load_baseline_kernel(path):
    """Another build's conv2d kernel module, loaded beside ours (its init function is
    PyInit_conv2d: the module must be called conv2d), routed to NumPy's BLAS as ours."""
    import importlib.util

    from minipool._blas import gemm_addresses
    spec = importlib.util.spec_from_file_location("conv2d", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # entry points newer than the baseline: what the conv op did before them
    if not hasattr(module, "conv2d_weight_grad_outer"):
        module.conv2d_weight_grad_outer = lambda *args, **kwargs: False
    if not hasattr(module, "forward_uses_blas"):  # it pinned OpenBLAS around every forward
        module.forward_uses_blas = lambda *args, **kwargs: True
    if not hasattr(module, "add_weight_slots"):
        def add_weight_slots(slots, out, num_threads=1):
            total = slots[0].copy()
            for part in slots[1:]:  # in slot order, as the conv op added them
                total += part
            out[...] = total.transpose(0, 2, 1)
        module.add_weight_slots = add_weight_slots
    if gemm_addresses() is not None:
        module.use_blas(*gemm_addresses())
    return module


def compare_engines(repeats, baseline=None):
    """The ``--engines`` table (see the module docstring); run at 1 thread."""
    import time

    import minipool as mp
    import minipool.nn.functional as F
    from minipool._blas import single_threaded
    from minipool._kernels import conv2d as kernels
    from minipool.ops import conv as conv_ops
    old_kernels = load_baseline_kernel(baseline) if baseline else None
    torch = import_torch(False)
    if torch is not None:
        torch.set_num_threads(1)

    def cpu_time(fn, inner):
        start = time.thread_time()
        for _ in range(inner):
            fn()
        return (time.thread_time() - start) / inner

    a = np.random.default_rng(1).standard_normal((ROOF_SIZE, ROOF_SIZE)).astype(np.float32)
    with single_threaded():
        roof = 2 * ROOF_SIZE ** 3 / min(cpu_time(lambda: a @ a, 1) for _ in range(5)) / 1e9
    print(machine_line(torch))
    print(f"sgemm roof (NumPy OpenBLAS {ROOF_SIZE}^3 float32, 1 thread, CPU time, min of 5): "
          f"{roof:.0f} GFLOP/s")
    print(f"conv2d float32, batch 64, 1 thread, CPU time, min of {repeats} interleaved rounds; "
          "fwd+bwd: weight, bias and (not for first layers) input gradients\n")
    first = "A" if baseline else "BLAS"
    if baseline:
        print(f"A: minipool on the baseline kernel {os.path.basename(baseline)} given; "
              "B: on this build's (automatic engines)\n")
    headers = ["case", "step", "A (baseline)" if baseline else "BLAS only",
               "B (this build)" if baseline else "automatic", "torch",
               f"GFLOP/s {first} / auto", f"of roof {first} / auto",
               f"speed-up vs torch {first} / auto"]
    rows = []
    rng = np.random.default_rng(0)
    cases = LENET_SHAPES + SWEEP_SHAPES
    for name, _, N, C, H, W, O, k, stride, pad, input_grad, _ in cases:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((O, C, k, k)) * 0.1).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
        g = rng.standard_normal((N, O, Ho, Wo)).astype(np.float32)
        xt = mp.tensor(x, requires_grad=input_grad)
        wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(b, requires_grad=True)
        for step in ("fwd", "fwd+bwd"):
            train = step == "fwd+bwd"

            def engine(mode, module=kernels):
                def run():
                    kernels.use_tiles(mode)
                    kernels.use_wgrad_tiles(mode)
                    kernels.use_wgrad_outer(mode)
                    conv_ops.kernels = module
                    try:
                        if train:
                            F.conv2d(xt, wt, bt, stride=stride, padding=pad).backward(g)
                        else:
                            with mp.no_grad():
                                F.conv2d(xt, wt, bt, stride=stride, padding=pad)
                    finally:
                        conv_ops.kernels = kernels
                return run

            fns = {"blas": engine(1, old_kernels) if baseline else engine(0), "auto": engine(1)}
            if torch is not None:
                tx = torch.from_numpy(x).requires_grad_(input_grad)
                tw, tb = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
                tg = torch.from_numpy(g)

                def torch_run():
                    if train:
                        torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad).backward(tg)
                    else:
                        with torch.no_grad():
                            torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)
                fns["torch"] = torch_run
            flop = 2 * N * O * Ho * Wo * C * k * k * ((3 if input_grad else 2) if train else 1)
            inner = max(1, int(2e8 / flop))
            for fn in fns.values():
                fn()
            best = best_in_turns(fns, repeats, lambda fn: cpu_time(fn, inner))
            kernels.use_tiles(1)
            kernels.use_wgrad_tiles(1)
            kernels.use_wgrad_outer(1)
            rate = {key: flop / best[key] / 1e9 for key in ("blas", "auto")}
            speed = (f"{best['torch'] / best['blas']:.2f}x / {best['torch'] / best['auto']:.2f}x"
                     if "torch" in best else "")
            rows.append([name, step, format_seconds(best["blas"]), format_seconds(best["auto"]),
                         format_seconds(best["torch"]) if "torch" in best else "",
                         f"{rate['blas']:.0f} / {rate['auto']:.0f}",
                         f"{rate['blas'] / roof:.0%} / {rate['auto'] / roof:.0%}", speed])
    print(markdown_table(headers, rows))
    print("\nspeed-up = torch time / minipool time (> 1: minipool is faster)")
    return 0


def compare_kernels(base_dir, repeats):
    """The ``--against`` table (see the module docstring); run at 1 thread."""
    import importlib.util
    import time

    from minipool._blas import single_threaded
    from minipool._kernels import conv2d as ours
    from minipool.ops import conv as conv_ops
    from minipool.ops._gemm import BLAS
    torch = import_torch(False)
    if torch is not None:
        torch.set_num_threads(1)
    so = [f for f in sorted(os.listdir(base_dir)) if f.startswith("conv2d.") and f.endswith(".so")]
    if not so:
        raise SystemExit(f"--against: no conv2d extension (conv2d.*.so) in {base_dir}")
    spec = importlib.util.spec_from_file_location("minipool._kernels.conv2d",
                                                  os.path.join(base_dir, so[0]))
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    base.use_blas(*BLAS)

    def cpu_time(fn):
        start = time.thread_time()
        fn()
        return time.thread_time() - start

    a = np.random.default_rng(1).standard_normal((ROOF_SIZE, ROOF_SIZE)).astype(np.float32)
    with single_threaded():
        roof = 2 * ROOF_SIZE ** 3 / min(cpu_time(lambda: a @ a) for _ in range(5)) / 1e9
    print(machine_line(torch))
    print(f"sgemm roof (NumPy OpenBLAS {ROOF_SIZE}^3 float32, 1 thread, CPU time, min of 5): "
          f"{roof:.0f} GFLOP/s")
    print(f"conv2d forward (kernel level), float32, batch 64, 1 thread, CPU time, min of {repeats} "
          "interleaved rounds; A: the extension in the given folder, B: this checkout\n")
    headers = ["case", "A", "B", "torch", "GFLOP/s A / B", "of roof A / B",
               "speed-up vs torch A / B", "B vs A"]
    rows = []
    rng = np.random.default_rng(0)
    cases = LENET_SHAPES + SWEEP_SHAPES
    with single_threaded():
        for name, _, N, C, H, W, O, k, stride, pad, _, _ in cases:
            Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
            geometry = conv_ops.ConvGeometry(k, k, stride, stride, pad, pad, 1, 1, Ho, Wo, 1)
            block_rows, images, per_thread = conv_ops._plan((N, C, H, W), O, geometry)[:3]
            x = rng.standard_normal((N, C, H, W)).astype(np.float32)
            w = (rng.standard_normal((O, C * k * k)) * 0.1).astype(np.float32)
            b = rng.standard_normal(O).astype(np.float32)
            work = np.empty((1, per_thread), np.float32)
            outs = {key: np.empty((N, O, Ho, Wo), np.float32) for key in "AB"}
            fns = {key: (lambda mod=mod, key=key: mod.conv2d_forward(
                       x, w, b, outs[key], geometry, block_rows, work, 1, images))
                   for key, mod in (("A", base), ("B", ours))}
            if torch is not None:
                xt, wt, bt = torch.tensor(x), torch.tensor(w.reshape(O, C, k, k)), torch.tensor(b)
                fns["torch"] = lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=stride,
                                                                  padding=pad)
            for fn in fns.values():
                fn()
            best = best_in_turns(fns, repeats, cpu_time)
            np.testing.assert_allclose(outs["B"], outs["A"], rtol=1e-3, atol=1e-3, err_msg=name)
            rate = {key: 2 * N * O * Ho * Wo * C * k * k / best[key] / 1e9 for key in "AB"}
            speed = (f"{best['torch'] / best['A']:.2f}x / {best['torch'] / best['B']:.2f}x"
                     if "torch" in best else "")
            rows.append([name, format_seconds(best["A"]), format_seconds(best["B"]),
                         format_seconds(best["torch"]) if "torch" in best else "",
                         f"{rate['A']:.0f} / {rate['B']:.0f}",
                         f"{rate['A'] / roof:.0%} / {rate['B'] / roof:.0%}", speed,
                         f"{best['A'] / best['B']:.2f}x"])
    print(markdown_table(headers, rows))
    print("\nnominal multiply-adds (padding taps included); speed-up = torch time / minipool time")
    return 0


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--engines-worker":
        sys.argv = [os.path.join("benchmarks", "bench_conv.py"), "--engines"] + argv[1:]  # as typed
        return compare_engines(int(argv[1]), argv[2] if len(argv) > 2 else None)
    if argv and argv[0] == "--against-worker":
        sys.argv = [os.path.join("benchmarks", "bench_conv.py"), "--against", *argv[1:3]]  # as typed
        return compare_kernels(argv[1], int(argv[2]))
    if argv and argv[0] == "--against":  # in a 1-thread process, as --engines
        if len(argv) < 2:
            raise SystemExit("--against needs a folder holding the other conv2d extension")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MINIPOOL_NUM_THREADS="1", OMP_NUM_THREADS="1")
        return subprocess.run([sys.executable, os.path.abspath(__file__), "--against-worker",
                               argv[1], argv[2] if len(argv) > 2 else "7"],
                              env=env).returncode
    if argv and argv[0] == "--engines":  # in a 1-thread process, as the sweep's workers
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MINIPOOL_NUM_THREADS="1", OMP_NUM_THREADS="1")
        repeats = argv[1] if len(argv) > 1 else "7"
        baseline = [os.path.abspath(argv[2])] if len(argv) > 2 else []
        return subprocess.run([sys.executable, os.path.abspath(__file__), "--engines-worker", repeats]
                              + baseline, env=env).returncode
    if argv and argv[0] == "--worker":
        threads, repeats, warmup = (int(a) for a in argv[1:4])
        if argv[4] not in LIBRARIES:
            raise SystemExit(f"--worker: library must be one of {LIBRARIES}, got {argv[4]!r}")
        print(json.dumps(measure(threads, repeats, warmup, argv[4])))
        return 0
    rounds = 1
    if "--rounds" in argv:  # the one option of this script's own; the rest are _common's
        at = argv.index("--rounds")
        try:
            rounds = int(argv[at + 1])
        except (IndexError, ValueError):
            raise SystemExit("--rounds needs a count >= 1") from None
        if rounds < 1:
            raise SystemExit(f"--rounds needs a count >= 1, got {rounds}")
        argv = argv[:at] + argv[at + 2:]
    args = parse_args(__doc__.splitlines()[0], argv)
    torch = import_torch(args.no_torch)
    libraries = ["minipool", "roof"] + (["torch"] if torch is not None else [])
    runs = {}  # (library, threads) -> one list of rows per round
    for r in range(rounds):
        for threads in args.threads:
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads),
                       MINIPOOL_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
            for library in libraries[r % 2:] + libraries[:r % 2]:  # who goes first alternates
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                                      str(threads), str(args.repeats), str(args.warmup), library],
                                     env=env, check=True, capture_output=True, text=True)
                runs.setdefault((library, threads), []).append(
                    json.loads(out.stdout.strip().splitlines()[-1]))
    rows = _median_over_rounds(runs, args.threads, torch is not None)

    print(machine_line(torch))
    print(f"minipool, PyTorch and the roof each in a process of their own; each figure the "
          f"median of {rounds} round(s) of those processes")
    print(f"conv2d and conv_transpose2d, float32, batch 64, median of {args.repeats} runs; fwd+bwd "
          "computes weight and bias gradients, and the input gradient for all but conv1 (as inside "
          "LeNet-5); NHWC rows: minipool's data_format='channels_last' against torch's "
          "channels_last memory format\n")
    print(markdown_table(*_time_table([r for r in rows if not r.get("sweep")])))
    print("\nspeed-up = torch time / minipool time (> 1: minipool is faster)")
    print("\nsgemm roof (NumPy matmul of two float32 "
          f"{ROOF_SIZE}x{ROOF_SIZE} matrices): "
          + ", ".join(f"{r['roof']:.0f} GFLOP/s at {r['threads']} thread(s)"
                      for r in rows if r["case"] == rows[0]["case"]))
    print("\nTiny-CNN layer sweep: stride 1, batch 64, fwd+bwd with the input gradient except "
          "for first layers (1 or 3 input channels)\n")
    print(markdown_table(*_sweep_table([r for r in rows if r.get("sweep")])))
    return 0


def _median_over_rounds(runs, thread_counts, with_torch):
    """One row per case and thread count: minipool's times, PyTorch's and the roof, each
    the median over the rounds (``runs``: (library, threads) -> a list of rows per round)."""
    rows = []
    for threads in thread_counts:
        roof = float(np.median([run[0]["roof"] for run in runs[("roof", threads)]]))
        libraries = [("minipool", "mp")] + ([("torch", "torch")] if with_torch else [])
        per_library = [(key, runs[(library, threads)]) for library, key in libraries]
        for i, row in enumerate(runs[("minipool", threads)][0]):
            row = {k: v for k, v in row.items() if not k.startswith("mp_")}
            for key, rounds in per_library:
                for step in ("fwd", "fb"):
                    name = f"{key}_{step}"
                    row[name] = float(np.median([run[i][name] for run in rounds]))
            row["roof"] = roof
            rows.append(row)
    return rows


def _sweep_table(rows):
    """Headers and rows of the sweep: times, speed-ups, GFLOP/s and % of the sgemm roof."""
    headers = ["case", "threads"]
    for step in ("fwd", "fwd+bwd"):
        headers += [f"minipool {step}", f"torch {step}", "speed-up", "GFLOP/s", "of roof"]
    table = []
    for r in rows:
        line = [r["case"], r["threads"]]
        for key in ("fwd", "fb"):
            rate = r[f"flop_{key}"] / r[f"mp_{key}"] / 1e9
            torch_time, speed_up = "-", "-"
            if f"torch_{key}" in r:
                torch_time = format_seconds(r[f"torch_{key}"])
                speed_up = f"{r[f'torch_{key}'] / r[f'mp_{key}']:.2f}x"
            line += [format_seconds(r[f"mp_{key}"]), torch_time, speed_up, f"{rate:.0f}",
                     f"{rate / r['roof']:.0%}"]
        table.append(line)
    return headers, table


def _time_table(rows):
    """Headers and rows of the LeNet-5, transposed and NHWC table."""
    table = []
    for r in rows:
        line = [r["case"], r["threads"], format_seconds(r["mp_fwd"])]
        if "torch_fwd" in r:
            line += [format_seconds(r["torch_fwd"]), f"{r['torch_fwd'] / r['mp_fwd']:.2f}x"]
        line.append(format_seconds(r["mp_fb"]))
        if "torch_fb" in r:
            line += [format_seconds(r["torch_fb"]), f"{r['torch_fb'] / r['mp_fb']:.2f}x"]
        line.append(f"{r['flop_fwd'] / r['mp_fwd'] / 1e9:.0f} / {r['flop_fb'] / r['mp_fb'] / 1e9:.0f}")
        table.append(line)
    torch = any("torch_fwd" in r for r in rows)
    headers = ["case", "threads", "minipool fwd"]
    if torch:
        headers += ["torch fwd", "speed-up"]
    headers.append("minipool fwd+bwd")
    if torch:
        headers += ["torch fwd+bwd", "speed-up"]
    headers.append("minipool GFLOP/s fwd / fwd+bwd")
    return headers, table


if __name__ == "__main__":
    sys.exit(main())
