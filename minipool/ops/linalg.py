"""Matrix products: float ones of a matrix by a matrix, or of a stack of matrices by one
matrix (``x @ W`` with x (..., M, K)), on minipool's threads (``minipool.ops._gemm``); the rest
through NumPy's BLAS held to one thread while minipool calls it (see ``minipool._blas``)."""
import numpy as np

from minipool._blas import single_threaded
from minipool._typing import TensorLike
from minipool.ops._gemm import as_rows, product
from minipool.ops.elementwise import as_tensor, unbroadcast
from minipool.tensor import Function, Tensor

__all__ = ["matmul", "bmm", "einsum", "mm", "mv", "dot", "outer"]


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.ndim >= 2 and b.ndim == 2:
            # (..., M, K) @ (K, N) is one (rows, K) @ (K, N) product: on minipool's threads
            out = product(as_rows(a), b)
            return out.reshape(a.shape[:-1] + (b.shape[1],))
        with single_threaded():
            return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        if a.ndim >= 2 and b.ndim == 2:
            g2 = as_rows(grad)
            return (product(g2, b, trans_b=True).reshape(a.shape)
                    if ctx.needs_input_grad[0] else None,
                    product(as_rows(a), g2, trans_a=True) if ctx.needs_input_grad[1] else None)
        # Treat 1-d operands as matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = grad.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        with single_threaded():
            if ctx.needs_input_grad[0]:
                ga = g2 @ np.swapaxes(b2, -1, -2)
                ga = unbroadcast(ga, a2.shape).reshape(a.shape)
            if ctx.needs_input_grad[1]:
                gb = np.swapaxes(a2, -1, -2) @ g2
                gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """Matrix product with NumPy's broadcasting rules (``a @ b``).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.matmul(mp.ones(2, 3), mp.ones(3, 4)).shape
    (2, 4)
    """
    a, b = as_tensor(a), as_tensor(b)
    if a.dtype != b.dtype:  # PyTorch promotes no matrix product's operands
        raise RuntimeError(f"matmul: expected both operands to have the same dtype, but got "
                           f"{a.dtype} and {b.dtype} (as in PyTorch); cast one, e.g. b.to(a.dtype)")
    if a.dtype == np.bool_:
        raise NotImplementedError("matmul: not implemented for bool tensors (as in PyTorch); cast "
                                  "first, e.g. a.long() @ b.long()")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not line up "
                         f"(inner sizes {k_a} and {k_b} differ)")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None
    return MatMul.apply(a, b)


def bmm(input: TensorLike, mat2: TensorLike) -> Tensor:
    """Batched matrix product of (b, n, m) and (b, m, p) tensors, as ``torch.bmm`` (no
    broadcasting: both must be 3-d with the same batch size).

    >>> import minipool as mp
    >>> mp.bmm(mp.ones(2, 3, 4), mp.ones(2, 4, 5)).shape
    (2, 3, 5)
    """
    input, mat2 = as_tensor(input), as_tensor(mat2)
    if input.ndim != 3 or mat2.ndim != 3:
        raise ValueError(f"bmm: input and mat2 must be 3-d (batch, rows, columns), got shapes "
                         f"{input.shape} and {mat2.shape}")
    if input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: input and mat2 must have the same batch size, got {input.shape[0]} "
                         f"and {mat2.shape[0]}")
    if input.dtype != mat2.dtype:
        raise TypeError(f"bmm: input and mat2 must have the same dtype, got {input.dtype} and {mat2.dtype}")
    return matmul(input, mat2)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _explicit_einsum(equation, shapes):
    """The equation with every subscript a letter and the output written out: ('ij,jk', ...)
    becomes (['ij', 'jk'], 'ik'); '...' turns into letters unused elsewhere."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum: the equation has {len(inputs)} operand(s), {len(shapes)} given")
    used = set(c for c in eq if c.isalpha())
    for c in eq:
        if not (c.isalpha() or c in ",.->"):
            raise ValueError(f"einsum: invalid subscript {c!r} in {equation!r} (use letters a-z, A-Z)")
    spare = [c for c in _LETTERS if c not in used]
    n_ellipsis = max((len(shape) - len(sub.replace("...", "")) for sub, shape in zip(inputs, shapes)
                      if "..." in sub), default=0)
    ell = "".join(spare[:n_ellipsis])
    subs = []
    for sub, shape in zip(inputs, shapes):
        if "..." in sub:
            k = len(shape) - len(sub.replace("...", ""))
            if k < 0:
                raise ValueError(f"einsum: operand subscripts {sub!r} need more dims than {shape}")
            sub = sub.replace("...", ell[n_ellipsis - k:])
        if len(sub) != len(shape) or not (sub.isalpha() or sub == ""):
            raise ValueError(f"einsum: subscripts {sub!r} do not match an operand of shape {shape}")
        subs.append(sub)
    if arrow:
        out = out.replace("...", ell)
        if len(set(out)) != len(out) or not set(out) <= set("".join(subs)):
            raise ValueError(f"einsum: output subscripts {out!r} must be distinct letters that "
                             "appear in the inputs")
    else:  # implicit output: the ellipsis dims, then the letters seen once, alphabetically
        joined = "".join(subs)
        out = ell + "".join(sorted((c for c in set(joined) if joined.count(c) == 1 and c not in ell),
                                   key=_LETTERS.index))
    return subs, out


class Einsum(Function):
    @staticmethod
    def forward(ctx, subs, out, *arrays):
        ctx.subs, ctx.out = subs, out
        ctx.save_for_backward(*arrays)
        with single_threaded():
            return np.einsum(",".join(subs) + "->" + out, *arrays)

    @staticmethod
    def backward(ctx, grad):
        arrays = ctx.saved_tensors
        subs, out = ctx.subs, ctx.out
        sizes = {}
        for sub, a in zip(subs, arrays):
            for c, n in zip(sub, a.shape):
                sizes[c] = max(sizes.get(c, 1), n)
        grads = []
        for i, (sub, a) in enumerate(zip(subs, arrays)):
            if not ctx.needs_input_grad[i + 2]:
                grads.append(None)
                continue
            others = [(s, x) for j, (s, x) in enumerate(zip(subs, arrays)) if j != i]
            letters = "".join(dict.fromkeys(sub))
            # letters summed over in this operand alone get the gradient by broadcasting
            reached = "".join(c for c in letters if c in out or any(c in s for s, _ in others))
            with single_threaded():
                g = np.einsum(",".join([out] + [s for s, _ in others]) + "->" + reached,
                              grad, *[x for _, x in others])
            g = np.expand_dims(g, [k for k, c in enumerate(letters) if c not in reached])
            g = np.broadcast_to(g, [sizes[c] for c in letters])
            if letters == sub:
                full = np.array(g, dtype=a.dtype)
            else:  # a repeated letter (a diagonal, 'ii->i') gets the gradient on its diagonal only
                full = np.zeros([sizes[c] for c in sub], dtype=a.dtype)
                np.einsum(sub + "->" + letters, full)[...] = g
            grads.append(unbroadcast(full, a.shape) if full.shape != a.shape else full)
        return (None, None) + tuple(grads)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, as ``torch.einsum``: ``einsum("ij,jk->ik", a, b)`` (or the operands
    as one list), implicit output when there is no "->", "..." for leading or trailing dims,
    repeated letters for diagonals; differentiable in every operand.

    >>> import minipool as mp
    >>> mp.einsum("bij,bjk->bik", mp.ones(2, 3, 4), mp.ones(2, 4, 5)).shape
    (2, 3, 5)
    >>> mp.einsum("ii", mp.eye(3)).item()
    3.0
    """
    if not isinstance(equation, str):
        raise TypeError(f"einsum: equation must be a str such as 'ij,jk->ik', got "
                        f"{type(equation).__name__} (the sublist form is not supported)")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = [as_tensor(x) for x in operands]
    if len({t.dtype for t in tensors}) > 1:
        raise TypeError(f"einsum: operands must have the same dtype, got "
                        f"{[str(t.dtype) for t in tensors]}")
    subs, out = _explicit_einsum(equation, [t.shape for t in tensors])
    sizes = {}
    for k, (sub, t) in enumerate(zip(subs, tensors)):
        for c, n in zip(sub, t.shape):
            if n != 1 and sizes.get(c, 1) not in (1, n):
                raise ValueError(f"einsum: subscript {c!r} has size {n} in operand {k} and "
                                 f"{sizes[c]} elsewhere")
            sizes[c] = max(sizes.get(c, 1), n)
    return Einsum.apply(subs, out, *tensors)


def _check_dims(where, wanted, **operands):
    """Each operand as a Tensor with the number of dims ``wanted`` (one per operand), and one dtype."""
    tensors = [as_tensor(v) for v in operands.values()]
    for (name, t), nd in zip(zip(operands, tensors), wanted):
        if t.ndim != nd:
            raise ValueError(f"{where}: {name} must be {nd}-d, got shape {t.shape}")
    if len({t.dtype for t in tensors}) > 1:
        raise TypeError(f"{where}: operands must have the same dtype, got "
                        f"{[str(t.dtype) for t in tensors]}")
    return tensors


def mm(input: TensorLike, mat2: TensorLike) -> Tensor:
    """Matrix product of two 2-d tensors (no broadcasting), as ``torch.mm``.

    >>> import minipool as mp
    >>> mp.mm(mp.tensor([[1.0, 2.0]]), mp.tensor([[3.0], [4.0]])).tolist()
    [[11.0]]
    """
    return matmul(*_check_dims("mm", (2, 2), input=input, mat2=mat2))


def mv(input: TensorLike, vec: TensorLike) -> Tensor:
    """Matrix-vector product of a 2-d and a 1-d tensor, as ``torch.mv``.

    >>> import minipool as mp
    >>> mp.mv(mp.tensor([[1.0, 2.0], [0.0, 1.0]]), mp.tensor([3.0, 4.0])).tolist()
    [11.0, 4.0]
    """
    return matmul(*_check_dims("mv", (2, 1), input=input, vec=vec))


def dot(input: TensorLike, tensor: TensorLike) -> Tensor:
    """Inner product of two 1-d tensors of the same size, as ``torch.dot``.

    >>> import minipool as mp
    >>> mp.dot(mp.tensor([1.0, 2.0]), mp.tensor([3.0, 4.0])).item()
    11.0
    """
    a, b = _check_dims("dot", (1, 1), input=input, tensor=tensor)
    if a.shape != b.shape:
        raise ValueError(f"dot: input and tensor must have the same size, got {a.shape[0]} and {b.shape[0]}")
    return matmul(a, b)


def outer(input: TensorLike, vec2: TensorLike) -> Tensor:
    """Outer product of two 1-d tensors, as ``torch.outer``: (n,) and (m,) give (n, m).

    >>> import minipool as mp
    >>> mp.outer(mp.tensor([1.0, 2.0]), mp.tensor([3.0, 4.0, 5.0])).tolist()
    [[3.0, 4.0, 5.0], [6.0, 8.0, 10.0]]
    """
    a, b = _check_dims("outer", (1, 1), input=input, vec2=vec2)
    return Einsum.apply(["i", "j"], "ij", a, b)
