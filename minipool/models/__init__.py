"""Ready-made networks: LeNet-5 (modern), LeNet-5 as published in 1998, and TinyVGG.

>>> from minipool.models import build_model
>>> build_model("lenet5", seed=0).name
'lenet5'
"""
from minipool.models.lenet import LeNet5, LeNet5Classic  # noqa: F401
from minipool.models.tinyvgg import TinyVGG  # noqa: F401
from minipool.models.unet import TinyUNet  # noqa: F401

MODELS = {LeNet5.name: LeNet5, LeNet5Classic.name: LeNet5Classic, TinyVGG.name: TinyVGG}

__all__ = ["LeNet5", "LeNet5Classic", "TinyVGG", "MODELS", "build_model"]

MODELS[TinyUNet.name] = TinyUNet  # 2x super-resolution (python -m minipool experiment upsampling)
__all__.append("TinyUNet")


def build_model(name, **config):
    """The model registered as ``name`` (a key of ``MODELS``), built with ``config``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](**config)
