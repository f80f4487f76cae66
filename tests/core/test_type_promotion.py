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


# --------------------------------------------------------------------------- the rule, written out
def _t(dtype, zero_dim=False):
    return mp.tensor(np.array(1 if zero_dim else [1, 1], dtype=dtype))


# (a, b, PyTorch's result dtype): the cases users meet most, stated from the rule itself
RULE_TABLE = [
    (_t("float32"), _t("int64"), "float32"),        # float category wins, keeps its width
    (_t("int64"), 2.5, "float32"),                  # a Python float: the default dtype
    (_t("int32"), 2, "int32"),                      # a Python int never widens an int tensor
    (_t("uint8"), 300, "uint8"),                    # ... nor changes its signedness
    (_t("float16"), 2.5, "float16"),                # a number of the same category counts not
    (_t("float32"), _t("float64", True), "float32"),  # a 0-d tensor of the same category counts not
    (_t("int32"), _t("float64", True), "float64"),  # ... but one of a higher category does, in full
    (_t("int32", True), _t("int8"), "int8"),        # the dimensioned tensor decides
    (_t("bool"), 1, "int64"),                       # bool with an int number: int64
    (_t("bool"), True, "bool"),
    (_t("bool"), _t("uint8", True), "uint8"),
    (_t("uint8"), _t("int8"), "int16"),             # same rank, same category: the lattice
    (_t("float16"), _t("int64"), "float16"),
    (_t("float32"), _t("float64"), "float64"),
    (_t("int64", True), 2.5, "float32"),
    (_t("int8"), np.float64(2.5), "float32"),       # a NumPy scalar counts as a number
    (_t("int8"), np.int64(2), "int8"),
]


@pytest.mark.parametrize("a, b, want", RULE_TABLE)
def test_the_rule_table(a, b, want):
    assert mp.result_type(a, b) == np.dtype(want) == mp.result_type(b, a)
    assert (a + b).dtype == np.dtype(want) == (b + a).dtype
    assert (a * b).dtype == np.dtype(want)


@pytest.mark.parametrize("a, b, want", [("int64", "int64", "float32"), ("bool", "int8", "float32"),
                                        ("int32", "float16", "float16"), ("float64", "int64", "float64")])
def test_true_division_of_integers_gives_the_default_float_dtype(a, b, want):
    assert (_t(a) / _t(b)).dtype == np.dtype(want)
    assert (_t(a) / 2).dtype == np.dtype(want if np.dtype(a).kind == "f" else "float32")
    mp.set_default_dtype(mp.float64)
    try:
        assert (_t("int64") / _t("int64")).dtype == np.float64 and (_t("int64") * 2.5).dtype == np.float64
    finally:
        mp.set_default_dtype(mp.float32)


def test_result_type_promote_types_can_cast_match_torch():
    for da, db in itertools.product(DTYPES, repeat=2):
        ta, tb = getattr(torch, da), getattr(torch, db)
        assert str(mp.promote_types(da, db)) == str(torch.promote_types(ta, tb)).replace("torch.", "")
        assert mp.can_cast(da, db) == torch.can_cast(ta, tb), (da, db)
    for a, b in [(_t("int32"), 2.5), (_t("float32"), _t("float64", True)), (True, _t("int8"))]:
        to_torch = [torch.from_numpy(x.numpy().copy()) if isinstance(x, mp.Tensor) else x for x in (a, b)]
        assert str(mp.result_type(a, b)) == str(torch.result_type(*to_torch)).replace("torch.", "")
    with pytest.raises(TypeError, match="promote_types"):
        mp.promote_types("float32", None)


def test_comparisons_happen_in_the_promoted_dtype():
    # float32's 0.1 and float64's 0.1 differ, but the 0-d float64 is cast to float32 first
    assert (mp.tensor([0.1]) == mp.tensor(0.1, dtype=mp.float64)).tolist() == \
        (torch.tensor([0.1]) == torch.tensor(0.1, dtype=torch.float64)).tolist() == [True]
    big = 2 ** 24 + 1  # not a float32: an int32 tensor compared with 2.0**24 + 0.5 rounds both
    assert (mp.tensor([big], dtype=mp.int32) > float(big) - 0.5).tolist() == \
        (torch.tensor([big], dtype=torch.int32) > float(big) - 0.5).tolist()


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("da, db, b_zero_dim", [("float32", "float64", False), ("float32", "float64", True),
                                                ("float64", "float32", True), ("float64", "float32", False)])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "atan2", "where"])
def test_each_input_gets_its_gradient_in_its_own_dtype(op, da, db, b_zero_dim):
    a_np = np.array([1.25, 2.5, 0.75], dtype=da)
    b_np = np.array(1.5 if b_zero_dim else [0.5, 1.75, 2.0], dtype=db)

    def run(lib, wrap):
        a, b = wrap(a_np), wrap(b_np)
        if op == "where":
            cond = wrap(np.array([True, False, True]))
            out = lib.where(cond, a, b)
        elif op in ("maximum", "atan2"):
            out = getattr(lib, op)(a, b)
        else:
            out = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b, "pow": a ** b}[op]
        out.sum().backward()
        return out, a.grad, b.grad

    out, ga, gb = run(mp, lambda x: mp.tensor(x.copy(), requires_grad=x.dtype.kind == "f"))
    tout, tga, tgb = run(torch, lambda x: torch.tensor(x.copy(), requires_grad=x.dtype.kind == "f"))
    assert str(out.dtype) == str(tout.dtype).replace("torch.", "")
    for ours, theirs in ((ga, tga), (gb, tgb)):
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "") and ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64),
                                   rtol=2e-3)


def test_an_integer_operand_takes_no_gradient_and_the_float_one_keeps_its_dtype():
    w = mp.tensor([0.5, 1.5], requires_grad=True)
    (w * mp.tensor([2, 3]) + 1.0).sum().backward()
    assert w.grad.dtype == np.float32 and w.grad.tolist() == [2.0, 3.0]


# --------------------------------------------------------------------------- in place
INPLACE = {
    "add_": lambda x, o: x.add_(o), "sub_": lambda x, o: x.sub_(o), "mul_": lambda x, o: x.mul_(o),
    "div_": lambda x, o: x.div_(o), "pow_": lambda x, o: x.pow_(o), "clamp_": lambda x, o: x.clamp_(min=o),
}


def _iadd(x, o):
    x += o
    return x


INPLACE["+="] = _iadd


@pytest.mark.parametrize("op", list(INPLACE))
def test_in_place_ops_refuse_what_torch_refuses_and_keep_the_dtype(op):
    mismatches = []
    for dx, (do, ko) in itertools.product(DTYPES, itertools.product(DTYPES, KINDS)):
        if op == "clamp_" and ko in ("tensor", "zero_dim"):
            continue  # minipool's clamp_ takes number bounds only (a TypeError says so)
        case = f"{op}({dx} tensor, {do} {ko})"
        try:
            theirs = INPLACE[op](_value(dx, "tensor", torch), _value(do, ko, torch))
        except TypeError:
            continue
        except Exception as e:  # noqa: BLE001
            theirs = e
        x = _value(dx, "tensor", mp)
        try:
            ours = INPLACE[op](x, _value(do, ko, mp))
        except Exception as e:  # noqa: BLE001
            ours = e
        if isinstance(theirs, Exception) != isinstance(ours, Exception):
            mismatches.append(f"{case}: torch {theirs!r:.80}, minipool {ours!r:.80}")
        elif isinstance(theirs, RuntimeError) and "can't be cast" in str(theirs):
            if not (isinstance(ours, RuntimeError) and "can't be cast to the desired output type" in str(ours)):
                mismatches.append(f"{case}: torch {theirs}, minipool {ours!r}")
            if x._version != 0:
                mismatches.append(f"{case}: the refused op changed the tensor")
        elif not isinstance(theirs, Exception):
            assert ours is x and str(x.dtype) == dx, case
            np.testing.assert_allclose(x.numpy().astype(np.float64), theirs.numpy().astype(np.float64),
                                       rtol=1e-3, err_msg=case)
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])


def test_in_place_error_names_the_cast_as_torch():
    x = mp.tensor([1, 2])
    with pytest.raises(RuntimeError, match=r"add_: result type Float can't be cast to the desired "
                                           r"output type Long .*float32.*int64"):
        x += 1.5
    with pytest.raises(RuntimeError, match="result type Long can't be cast to the desired output type Bool"):
        mp.tensor([True]).add_(1)
    with pytest.raises(RuntimeError, match="Float can't be cast to the desired output type Long"):
        x /= 2  # true division of an int tensor
    assert x.tolist() == [1, 2] and x._version == 0
    f = mp.tensor([1.0, 2.0])
    f += mp.tensor([0.1, 0.2], dtype=mp.float64)  # a wider float is fine: computed there, cast back
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f.numpy(), np.array([1.1, 2.2], dtype=np.float32))


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "logical_and", "matmul", "addcdiv", "hypot"])
def test_more_binary_ops_match_torch(op):
    call = {"bitwise_and": lambda L, a, b: a & b, "bitwise_or": lambda L, a, b: a | b,
            "logical_and": lambda L, a, b: L.logical_and(a, b), "matmul": lambda L, a, b: L.matmul(a, b),
            "addcdiv": lambda L, a, b: L.addcdiv(a, b, a), "hypot": lambda L, a, b: L.hypot(a, b)}[op]
    mismatches = []
    for (da, ka), (db, kb) in itertools.product(itertools.product(DTYPES, KINDS), repeat=2):
        if ka in ("python", "numpy") and kb in ("python", "numpy"):
            continue
        try:
            theirs = call(torch, _value(da, ka, torch), _value(db, kb, torch))
        except TypeError:
            continue
        except Exception as e:  # noqa: BLE001
            theirs = e
        try:
            ours = call(mp, _value(da, ka, mp), _value(db, kb, mp))
        except Exception as e:  # noqa: BLE001
            ours = e
        case = f"{op}({da} {ka}, {db} {kb})"
        if isinstance(theirs, Exception) or isinstance(ours, Exception):
            if isinstance(theirs, Exception) != isinstance(ours, Exception):
                mismatches.append(f"{case}: torch {theirs!r:.60}, minipool {ours!r:.60}")
        elif str(ours.dtype) != str(theirs.dtype).replace("torch.", ""):
            mismatches.append(f"{case}: torch {theirs.dtype}, minipool {ours.dtype}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
