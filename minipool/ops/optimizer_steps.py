"""The optimizers' per-parameter updates in one pass (``minipool/_kernels/optim_steps.pyx``).

Each function does the update and returns True when its arrays suit the kernel:
``minipool.ops.elementwise.flat_in_place_operands``.
Otherwise it returns False at once, having changed nothing, and the optimizer runs
its NumPy code, which gives the same bits.
"""
from typing import Optional

import numpy as np

from minipool import _config
from minipool._kernels import optim_steps
from minipool.ops.elementwise import flat_in_place_operands

__all__ = ["sgd_step", "adam_step"]

# Off: the optimizers always take their NumPy code (the tests' reference).
enabled = True


def _suits(written, read):
    """Whether the kernel can take these arrays: ``written`` are updated in place."""
    return enabled and flat_in_place_operands(written, read)


def _threads(n, arrays):
    return _config.kernel_threads(optim_steps.blocks(n), arrays * n)


def sgd_step(p: np.ndarray, g: np.ndarray, buf: Optional[np.ndarray], lr: float, momentum: float,
             dampening: float, weight_decay: float, nesterov: bool, maximize: bool,
             first: bool) -> bool:
    """SGD's update of ``p`` (and of the momentum buffer ``buf``; ``first``: write it from
    the gradient), as ``minipool.optim.SGD.step`` computes it."""
    if not _suits([p] + ([buf] if buf is not None else []), [g]):
        return False
    optim_steps.sgd_step(p.reshape(-1), g.reshape(-1), None if buf is None else buf.reshape(-1),
                         lr, momentum, dampening, weight_decay, nesterov, maximize, first,
                         _threads(p.size, 4))
    return True


def adam_step(p: np.ndarray, g: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
              max_exp_avg_sq: Optional[np.ndarray], lr: float, beta1: float, beta2: float,
              eps: float, weight_decay: float, decoupled: bool, maximize: bool,
              step_size: float, bias_root: float) -> bool:
    """Adam's (AdamW's) update of ``p`` and its moments, as ``minipool.optim.Adam.update``."""
    written = [p, exp_avg, exp_avg_sq] + ([max_exp_avg_sq] if max_exp_avg_sq is not None else [])
    if not _suits(written, [g]):
        return False
    flat = [None if a is None else a.reshape(-1) for a in (p, g, exp_avg, exp_avg_sq, max_exp_avg_sq)]
    optim_steps.adam_step(*flat, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
                          step_size, bias_root, _threads(p.size, 6))
    return True
