"""Stochastic pooling (Zeiler & Fergus, ICLR 2013, arXiv:1301.3557).

Training: each window samples one cell with probability ``p_i = a_i / sum(a)``
and outputs it; the gradient goes to that cell.  Inference: the
probability-weighted average ``sum(a^2) / sum(a)``, differentiated through
that formula.  Activations must be non-negative (e.g. after ReLU).  A window
of zeros outputs 0 in both modes; in training it "draws" its first cell
(Caffe's rule), which receives the gradient; in inference it passes none
(the weighted formula is 0/0 there).

The uniforms that drive the sampling are drawn in NumPy before the kernel
runs, in (N, C, H, W) order whatever the layout, so a seed gives the same
samples for any thread count and for channels-first or -last input.
"""
from typing import Optional

import numpy as np

from minipool import _random
from minipool._typing import GeneratorLike, IntOrTuple, TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.ops.pooling._functions import StochasticEvalPool, StochasticTrainPool
from minipool.ops.pooling._geometry import FLOAT_DTYPES, check_dtype, window_plan
from minipool.tensor import Tensor

__all__ = ["stochastic_pool2d"]


def _uniforms(rng, plan):
    """U[0, 1) per output, drawn in channels-first order."""
    layout = plan.layout
    if not layout.channels_last:
        return rng.random(plan.out_shape)
    shape = plan.out_shape
    rank = layout.rank
    first = shape[:-rank - 1] + shape[-1:] + shape[-rank - 1:-1]
    return np.moveaxis(rng.random(first), -rank - 1, -1)


def stochastic_pool2d(input: TensorLike, kernel_size: IntOrTuple,
                      stride: Optional[IntOrTuple] = None, training: bool = True,
                      generator: GeneratorLike = None,
                      data_format: Optional[str] = None) -> Tensor:
    """Stochastic pooling of non-negative (C, H, W) or (N, C, H, W) input (no padding).

    ``training=True`` samples (pass ``generator``, an int seed or a
    ``numpy.random.Generator``, to reproduce a draw); ``training=False``
    returns ``sum(a^2) / sum(a)``.  Negative or NaN input raises ValueError.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.tensor([[[1.0, 3.0], [0.0, 0.0]]])
    >>> F.stochastic_pool2d(x, 2, training=False).numpy()
    array([[[2.5]]], dtype=float32)
    >>> float(F.stochastic_pool2d(x, 2, generator=0).numpy()[0, 0, 0]) in (1.0, 3.0)
    True
    """
    op = "stochastic_pool2d"
    x = as_tensor(input)
    check_dtype(op, x.dtype, FLOAT_DTYPES)
    plan = window_plan(op, x.shape, 2, kernel_size, stride, 0, 1, False, data_format, "one")
    if x.numpy().size:
        lowest = np.min(x.numpy())
        if not lowest >= 0:
            raise ValueError(f"{op}: input must be non-negative (e.g. after ReLU), since "
                             f"p_i = a_i / sum(a) must be a probability; found {lowest}")
    if training:
        rng = _random.resolve(generator, op)
        return StochasticTrainPool.apply(x, plan=plan, uniforms=_uniforms(rng, plan))
    return StochasticEvalPool.apply(x, plan=plan)
