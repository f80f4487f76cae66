"""mean / softmax / log_softmax / logsumexp / var / std of integer and bool tensors, op by op
against torch: either both refuse (with torch's exception class) or both give the same dtype
and values (no silent float64)."""
import numpy as np
import pytest
import torch

import minipool as mp
import minipool.nn.functional as F

CASES = {
    "mean": lambda lib, fn, x: x.mean(),
    "mean dim keepdim": lambda lib, fn, x: x.mean(1, keepdim=True),
    "lib.mean": lambda lib, fn, x: lib.mean(x, 0),
    "mean dtype": lambda lib, fn, x: x.mean(dtype=lib.float32),
    "mean dtype64 dim": lambda lib, fn, x: lib.mean(x, 1, dtype=lib.float64),
    "softmax": lambda lib, fn, x: x.softmax(1),
    "F.softmax": lambda lib, fn, x: fn.softmax(x, dim=1),
    "lib.softmax": lambda lib, fn, x: lib.softmax(x, 0),
    "softmax dtype": lambda lib, fn, x: fn.softmax(x, dim=1, dtype=lib.float64),
    "log_softmax": lambda lib, fn, x: x.log_softmax(1),
    "F.log_softmax": lambda lib, fn, x: fn.log_softmax(x, dim=-1),
    "log_softmax dtype": lambda lib, fn, x: x.log_softmax(0, dtype=lib.float32),
    "logsumexp": lambda lib, fn, x: x.logsumexp(1),
    "lib.logsumexp all": lambda lib, fn, x: lib.logsumexp(x, (0, 1)),
    "var": lambda lib, fn, x: x.var(),
    "std dim": lambda lib, fn, x: x.std(1),
    "lib.std": lambda lib, fn, x: lib.std(x),
}


def _run(case, lib, fn, values, dtype):
    x = lib.tensor(values, dtype=getattr(lib, dtype))
    try:
        return CASES[case](lib, fn, x), None
    except Exception as e:  # noqa: BLE001 - the exception class is what is compared
        return None, e


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("case", list(CASES))
def test_integer_input_matches_torch(case, dtype):
    values = [[1, 0, 3], [4, 5, 0]] if dtype != "bool" else [[True, False, True], [False, False, True]]
    ours, our_error = _run(case, mp, F, values, dtype)
    theirs, their_error = _run(case, torch, torch.nn.functional, values, dtype)
    if their_error is not None:
        assert our_error is not None, f"torch refuses ({their_error}); minipool gave {ours!r}"
        assert isinstance(our_error, type(their_error)), (our_error, their_error)
        return
    assert our_error is None, our_error
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("op", ["mean", "softmax", "log_softmax"])
def test_the_refusal_names_the_way_out(op):
    x = mp.tensor([[1, 2], [3, 4]])
    with pytest.raises(RuntimeError, match=rf"{op}\(\).*int64.*x\.float\(\)\.{op}.*dtype=mp\.float32"):
        getattr(x, op)(1) if op != "mean" else x.mean()


def test_logsumexp_of_integers_follows_the_default_dtype():
    x = mp.tensor([1, 2, 3])
    mp.set_default_dtype(mp.float64)
    try:
        torch.set_default_dtype(torch.float64)
        theirs = torch.tensor([1, 2, 3]).logsumexp(0)
        ours = x.logsumexp(0)
    finally:
        mp.set_default_dtype(mp.float32)
        torch.set_default_dtype(torch.float32)
    assert ours.dtype == np.float64 and theirs.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


@pytest.mark.parametrize("bad", ["float16", mp.int64, "nonsense"])
def test_a_dtype_that_is_not_float32_or_64_is_named(bad):
    with pytest.raises(TypeError, match="mean: dtype must be mp.float32 or mp.float64"):
        mp.tensor([1, 2]).mean(dtype=bad)


def test_dtype_cast_keeps_the_gradient():
    x = mp.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    tx = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    (F.softmax(x, dim=1, dtype=mp.float64) * mp.tensor([1.0, 2.0, 3.0], dtype=mp.float64)).sum().backward()
    (torch.nn.functional.softmax(tx, dim=1, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
