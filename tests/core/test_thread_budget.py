"""minipool owns its thread budget: BLAS runs on one thread inside minipool's ops,
and the user's own NumPy code keeps the BLAS thread count the user chose.

Each case runs in a fresh interpreter, so OpenBLAS starts from its own default
and nothing from other tests leaks in.  threadpoolctl is the independent
witness of OpenBLAS's setting (it finds the library on its own)."""
import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("threadpoolctl")


PRELUDE = """
import json
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

def blas_threads():
    return sorted({d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"})
"""


def run_script(body):
    """Run PRELUDE + ``body`` in a fresh interpreter; it prints one JSON object as its last line."""
    script = PRELUDE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])




@pytest.mark.parametrize("user_threads", [None, 1, 2])
def test_user_blas_setting_survives_minipool_ops(user_threads):
    result = run_script(f"""
    user_threads = {user_threads!r}
    if user_threads is not None:
        threadpool_limits(user_threads, user_api="blas")
    import minipool as mp
    import minipool.nn.functional as F
    before = blas_threads()
    x = mp.randn(64, 400, requires_grad=True)
    w = mp.randn(120, 400, requires_grad=True)
    b = mp.randn(120, requires_grad=True)
    img = mp.randn(8, 3, 16, 16, requires_grad=True)
    k = mp.randn(4, 3, 3, 3, requires_grad=True)
    loss = F.linear(x, w, b).sum() + (x @ w.T).sum() + F.conv2d(img, k, padding=1).sum()
    loss.backward()
    after = blas_threads()
    # the user's own NumPy matmul still runs with the user's setting
    a = np.random.rand(256, 256)
    _ = a @ a
    print(json.dumps(dict(before=before, after=after, after_numpy=blas_threads())))
    """)
    assert result["before"] == result["after"] == result["after_numpy"]
    if user_threads is not None:
        assert result["after"] == [user_threads]


@pytest.mark.parametrize("tiles", [0, 2], ids=["blas", "tiles"])
def test_blas_runs_on_one_thread_inside_minipool_ops(tiles):
    # Record OpenBLAS's thread count at the moment each GEMM of linear/matmul runs: the
    # matrix kernel calls it from minipool's threads, so OpenBLAS must be on one.  A
    # product on the float32 tiles (gemm_tiles.h) calls no BLAS, and leaves its count alone.
    result = run_script(f"""
    threadpool_limits(2, user_api="blas")
    import minipool as mp
    import minipool.nn.functional as F
    from minipool import _blas
    from minipool.ops import _gemm
    from minipool._kernels import matmul
    matmul.use_tiles({tiles})
    seen = []

    class Spy:
        def __getattr__(self, name):
            return getattr(kernel, name)

        @staticmethod
        def matmul_into(A, B, C, trans_a, trans_b, *rest):
            M, K = A.shape[::-1] if trans_a else A.shape
            on_tiles = kernel.uses_tiles(trans_a, trans_b, M, C.shape[1], K, A.dtype == "float64")
            seen.append([_blas.blas_num_threads(), on_tiles])
            return kernel.matmul_into(A, B, C, trans_a, trans_b, *rest)

    kernel, _gemm.kernel = _gemm.kernel, Spy()
    x = mp.randn(64, 400, requires_grad=True)
    w = mp.randn(120, 400, requires_grad=True)
    (F.linear(x, w) + x @ w.T).sum().backward()
    print(json.dumps(dict(seen=seen, after=blas_threads())))
    """)
    assert len(result["seen"]) == 6  # 3 GEMMs each
    for threads, on_tiles in result["seen"]:
        assert threads == (2 if on_tiles else 1)
    if tiles == 0:
        assert not any(on_tiles for _, on_tiles in result["seen"])
    assert result["after"] == [2]


def test_torch_in_the_same_process_keeps_its_threads():
    pytest.importorskip("torch")
    result = run_script("""
    import torch
    torch.set_num_threads(2)
    import minipool as mp
    import minipool.nn.functional as F
    before = blas_threads()
    x = mp.randn(64, 400, requires_grad=True)
    F.linear(x, mp.randn(120, 400)).sum().backward()
    t = torch.randn(64, 64)
    _ = t @ t
    print(json.dumps(dict(before=before, after=blas_threads(), torch=torch.get_num_threads())))
    """)
    assert result["before"] == result["after"]
    assert result["torch"] == 2
