"""PyTorch's ``torch.utils`` paths, for scripts written against them: ``minipool.utils.data``."""
from minipool.utils import data  # noqa: F401

__all__ = ["data"]
