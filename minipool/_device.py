"""``torch.device`` and ``torch.compile`` for a CPU-only, eager library."""

from typing import Any, Callable, Optional

__all__ = ["device", "compile"]


class device:
    """A device name, as ``torch.device``; minipool has one device, ``"cpu"``.

    >>> import minipool as mp
    >>> d = mp.device("cpu")
    >>> d.type, str(d), d == "cpu"
    ('cpu', 'cpu', True)
    >>> mp.device("cuda")
    Traceback (most recent call last):
        ...
    RuntimeError: device: minipool runs on the CPU only (NumPy arrays), so device 'cuda' is not available; use 'cpu'
    """

    def __init__(self, type: str = "cpu", index: Optional[int] = None) -> None:
        name = str(type)
        kind, _, number = name.partition(":")
        if kind != "cpu":
            raise RuntimeError(f"device: minipool runs on the CPU only (NumPy arrays), so device "
                               f"{name!r} is not available; use 'cpu'")
        self.type = "cpu"
        self.index = index if index is not None else (int(number) if number.isdigit() else None)

    def __str__(self):
        return "cpu" if self.index is None else f"cpu:{self.index}"

    def __repr__(self):
        return f"device(type='cpu')" if self.index is None else f"device(type='cpu', index={self.index})"

    def __eq__(self, other):
        if isinstance(other, device):
            return (self.type, self.index) == (other.type, other.index)
        return isinstance(other, str) and other in ("cpu", str(self))

    def __hash__(self):
        return hash((self.type, self.index))


def compile(model: Optional[Callable] = None, **options: Any) -> Callable:
    """``torch.compile``: minipool runs eagerly and its kernels are compiled ahead of time, so
    there is nothing to compile: the model (or function) comes back unchanged.  Usable as
    ``compile(model)`` and as a decorator, with or without options.

    >>> import minipool as mp
    >>> layer = mp.nn.ReLU()
    >>> mp.compile(layer) is layer
    True
    """
    if model is None:
        return lambda m: m
    if not callable(model):
        raise TypeError(f"compile: model must be a Module or a function, got {type(model).__name__}")
    return model
