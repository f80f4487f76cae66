"""``torch.cuda``'s questions, answered for a CPU-only library, so the usual
``device = "cuda" if torch.cuda.is_available() else "cpu"`` line picks the CPU.

>>> import minipool as mp
>>> mp.cuda.is_available(), mp.cuda.device_count()
(False, 0)
"""

__all__ = ["is_available", "device_count"]


def is_available() -> bool:
    """False: minipool computes on the CPU only."""
    return False


def device_count() -> int:
    """0: minipool computes on the CPU only."""
    return 0
