"""Moving models and arrays between minipool and the outside: NumPy and PyTorch.

:func:`from_numpy` wraps an array without copying (as ``torch.from_numpy``).

:func:`to_torch` builds the ``torch.nn`` module tree equivalent to a minipool
model made of ``Sequential`` and minipool.nn layers, and copies its weights
(same ``state_dict`` keys and layouts, same dtype); :func:`from_torch` does
the reverse for the same set of layers.  A model class with its own
``forward`` converts when it registers its PyTorch twin with
:func:`register_twin` (LeNet-5 does); anything else raises a TypeError
naming the layer.  ``torch`` is passed in: minipool never imports it.

>>> import numpy as np, minipool as mp
>>> a = np.zeros(3, np.float32)
>>> t = mp.from_numpy(a)
>>> a[0] = 5.0
>>> t.numpy()
array([5., 0., 0.], dtype=float32)
"""
import types
from collections import OrderedDict

import numpy as np

from minipool._validate import parse_data_format
from minipool.tensor import FLOAT_DTYPES, Tensor

__all__ = ["from_numpy", "to_torch", "from_torch", "register_twin", "supported_layers"]


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing ``array``'s memory: changes to one show in the other.

    Like ``torch.from_numpy`` it takes an ``np.ndarray`` of a numeric or bool
    dtype (any byte order and strides) and never copies.

    >>> import numpy as np, minipool as mp
    >>> a = np.zeros(2, np.float32); t = mp.from_numpy(a); a[1] = 5; t.tolist()
    [0.0, 5.0]
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an np.ndarray, got {type(array).__name__} "
                        "(use mp.tensor to copy other data)")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype}: minipool tensors hold bool, "
                        "integer or floating-point numbers")
    return Tensor(array)


# --------------------------------------------------------------------------- the layer table
# minipool.nn name -> (torch.nn name, constructor arguments both take under the same name).
# ``bias`` is passed as "has a bias"; every other argument is read as an attribute of the
# source layer.  Arguments a layer has in only one framework are left out (e.g. ``inplace``
# of torch.nn.ReLU: it changes memory use, never values).
_LAYERS = {
    "Conv2d": ("Conv2d", ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                          "dilation", "groups", "bias", "padding_mode")),
    "ConvTranspose2d": ("ConvTranspose2d", ("in_channels", "out_channels", "kernel_size", "stride",
                                            "padding", "output_padding", "groups", "bias",
                                            "dilation", "padding_mode")),
    "Conv1d": ("Conv1d", ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                          "dilation", "groups", "bias", "padding_mode")),
    "Linear": ("Linear", ("in_features", "out_features", "bias")),
    "Embedding": ("Embedding", ("num_embeddings", "embedding_dim", "padding_idx", "max_norm",
                                "norm_type", "scale_grad_by_freq", "sparse")),
    "LayerNorm": ("LayerNorm", ("normalized_shape", "eps", "elementwise_affine", "bias")),
    "GroupNorm": ("GroupNorm", ("num_groups", "num_channels", "eps", "affine", "bias")),
    "InstanceNorm1d": ("InstanceNorm1d", ("num_features", "eps", "momentum", "affine",
                                          "track_running_stats", "bias")),
    "InstanceNorm2d": ("InstanceNorm2d", ("num_features", "eps", "momentum", "affine",
                                          "track_running_stats", "bias")),
    "Softmax2d": ("Softmax2d", ()),
    "BatchNorm1d": ("BatchNorm1d", ("num_features", "eps", "momentum", "affine",
                                    "track_running_stats")),
    "BatchNorm2d": ("BatchNorm2d", ("num_features", "eps", "momentum", "affine",
                                    "track_running_stats")),
    "ReLU": ("ReLU", ()), "Tanh": ("Tanh", ()), "Sigmoid": ("Sigmoid", ()), "Identity": ("Identity", ()),
    "ReLU6": ("ReLU6", ()), "SiLU": ("SiLU", ()),
    "LeakyReLU": ("LeakyReLU", ("negative_slope",)), "ELU": ("ELU", ("alpha",)),
    "GELU": ("GELU", ("approximate",)), "Hardtanh": ("Hardtanh", ("min_val", "max_val")),
    "Softplus": ("Softplus", ("beta", "threshold")),
    "Softmax": ("Softmax", ("dim",)), "LogSoftmax": ("LogSoftmax", ("dim",)),
    "Flatten": ("Flatten", ("start_dim", "end_dim")),
    "Dropout": ("Dropout", ("p",)), "Dropout2d": ("Dropout2d", ("p",)),
    "MaxPool1d": ("MaxPool1d", ("kernel_size", "stride", "padding", "dilation", "return_indices",
                                "ceil_mode")),
    "MaxPool2d": ("MaxPool2d", ("kernel_size", "stride", "padding", "dilation", "return_indices",
                                "ceil_mode")),
    "MaxPool3d": ("MaxPool3d", ("kernel_size", "stride", "padding", "dilation", "return_indices",
                                "ceil_mode")),
    "AvgPool1d": ("AvgPool1d", ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    "AvgPool2d": ("AvgPool2d", ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                "divisor_override")),
    "AvgPool3d": ("AvgPool3d", ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                "divisor_override")),
    "LPPool2d": ("LPPool2d", ("norm_type", "kernel_size", "stride", "ceil_mode")),
    "AdaptiveAvgPool2d": ("AdaptiveAvgPool2d", ("output_size",)),
    "AdaptiveMaxPool2d": ("AdaptiveMaxPool2d", ("output_size", "return_indices")),
    "MaxUnpool2d": ("MaxUnpool2d", ("kernel_size", "stride", "padding")),
    "Upsample": ("Upsample", ("size", "scale_factor", "mode", "align_corners")),
    "UpsamplingNearest2d": ("UpsamplingNearest2d", ("size", "scale_factor")),
    "UpsamplingBilinear2d": ("UpsamplingBilinear2d", ("size", "scale_factor")),
    "PixelShuffle": ("PixelShuffle", ("upscale_factor",)),
    "PixelUnshuffle": ("PixelUnshuffle", ("downscale_factor",)),
}
# layers whose constructor takes the parameters' dtype
_TYPED = {"Conv1d", "Conv2d", "ConvTranspose2d", "Linear", "BatchNorm1d", "BatchNorm2d", "Embedding",
          "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d"}
# model classes with their own forward: minipool class -> (build torch twin, read torch twin)
_TWINS = {}


def supported_layers():
    """The minipool.nn layer names :func:`to_torch` and :func:`from_torch` translate (those that
    exist in this minipool), plus ``Sequential``."""
    import minipool.nn as nn
    return ["Sequential"] + sorted(n for n in _LAYERS if hasattr(nn, n))


def register_twin(cls, build, read):
    """Let :func:`to_torch` / :func:`from_torch` convert instances of ``cls`` (a minipool
    Module with its own forward): ``build(torch, module)`` returns the equivalent
    ``torch.nn.Module`` (weights are copied afterwards, by state_dict key) and marks its
    class with ``_minipool_class = cls``; ``read(torch_module)`` returns the minipool model."""
    _TWINS[cls] = (build, read)


def check_is_torch(torch, caller):
    """TypeError unless ``torch`` is the torch module itself."""
    if isinstance(torch, types.ModuleType) and torch.__name__ == "torch" and hasattr(torch, "nn"):
        return
    got = f"module {torch.__name__}" if isinstance(torch, types.ModuleType) else type(torch).__name__
    raise TypeError(f"{caller}: torch must be the torch module itself (import torch, then pass it), got {got}")


def _where(path):
    return f"layer {path!r}" if path else "the model"


def _unsupported(caller, path, kind, lib):
    raise TypeError(f"{caller}: {_where(path)} is a {kind}, which has no {lib} equivalent here "
                    f"(supported: {', '.join(supported_layers())}, and registered models); "
                    f"build the model from these layers, or register its twin with "
                    f"minipool.interop.register_twin")


def _kwargs(layer, names):
    return {n: (getattr(layer, "bias", None) is not None) if n == "bias" else getattr(layer, n)
            for n in names}


def _float_dtype(module, caller):
    dtypes = {np.dtype(p.dtype) for p in module.parameters()}
    if len(dtypes) > 1:
        raise TypeError(f"{caller}: the model mixes parameter dtypes {sorted(map(str, dtypes))}; "
                        "convert it to one dtype first")
    return dtypes.pop() if dtypes else np.dtype(np.float32)


# --------------------------------------------------------------------------- minipool -> torch
def _torch_tree(module, torch, path):
    from minipool.nn.module import Sequential
    import minipool.nn as nn
    kind = type(module).__name__
    if type(module) is Sequential:
        return torch.nn.Sequential(OrderedDict(
            (name, _torch_tree(child, torch, f"{path}.{name}" if path else name))
            for name, child in module.named_children()))
    if kind in _LAYERS and getattr(nn, kind, None) is type(module):
        if parse_data_format(f"to_torch: {_where(path)} ({kind})",
                             getattr(module, "data_format", None)):
            raise TypeError(f"to_torch: {_where(path)} ({kind}) uses data_format="
                            f"{module.data_format!r}; torch.nn layers are channels-first: build it "
                            "with data_format='channels_first' (or permute the input)")
        if kind.startswith("BatchNorm") and module.affine and module.bias is None:
            raise TypeError(f"to_torch: {_where(path)} ({kind}) is affine without a bias, which "
                            "torch.nn has no layer for")
        torch_name, names = _LAYERS[kind]
        return getattr(torch.nn, torch_name)(**_kwargs(module, names))
    if type(module) in _TWINS:
        return _TWINS[type(module)][0](torch, module)
    _unsupported("to_torch", path, kind, "PyTorch")


def to_torch(model, torch):
    """``model`` as a new ``torch.nn.Module`` holding a copy of its weights (and buffers).

    ``Sequential`` becomes ``torch.nn.Sequential`` with the same child names;
    each layer becomes its torch.nn namesake with the same arguments, so
    ``state_dict`` keys and array layouts agree and the weights are copied by
    key, in the model's dtype.  Training/eval mode is copied too.  Call it as
    ``to_torch(model, torch)`` after ``import torch``.
    """
    check_is_torch(torch, "to_torch")
    from minipool.nn.module import Module
    if not isinstance(model, Module):
        raise TypeError(f"to_torch: model must be a minipool.nn.Module, got {type(model).__name__}")
    dtype = _float_dtype(model, "to_torch")
    twin = _torch_tree(model, torch, "")
    twin = twin.to({np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[dtype])
    ours = model.state_dict()
    incoming = {k: torch.from_numpy(np.array(v._data if isinstance(v, Tensor) else v, copy=True))
                for k, v in ours.items()}
    try:
        twin.load_state_dict(incoming, strict=True)
    except RuntimeError as e:
        raise ValueError(f"to_torch: the PyTorch twin of {type(model).__name__} does not take its "
                         "state_dict: " + " ".join(str(e).split())) from None
    _copy_modes(dict(model.named_modules()), twin.named_modules())
    return twin


# --------------------------------------------------------------------------- torch -> minipool
def _mp_tree(module, torch, path):
    import minipool.nn as nn
    kind = type(module).__name__
    if type(module) is torch.nn.Sequential:
        return nn.Sequential(OrderedDict(
            (name, _mp_tree(child, torch, f"{path}.{name}" if path else name))
            for name, child in module.named_children()))
    twin_of = getattr(type(module), "_minipool_class", None)
    if twin_of in _TWINS:
        return _TWINS[twin_of][1](module)
    mp_names = [n for n, (t, _) in _LAYERS.items() if t == kind]
    if mp_names and getattr(torch.nn, kind, None) is type(module) and hasattr(nn, mp_names[0]):
        names = _LAYERS[mp_names[0]][1]
        kwargs = _kwargs(module, names)
        if mp_names[0] in _TYPED:
            params = list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]
            dtype = str(params[0].dtype).replace("torch.", "") if params else "float32"
            if np.dtype(dtype) not in FLOAT_DTYPES:
                raise TypeError(f"from_torch: {_where(path)} ({kind}) holds {dtype} weights; "
                                "minipool layers hold float32 or float64 (call .float() first)")
            kwargs["dtype"] = np.dtype(dtype)
        try:
            return getattr(nn, mp_names[0])(**kwargs)
        except (ValueError, TypeError) as e:
            raise type(e)(f"from_torch: {_where(path)} ({kind}): {e}") from None
    _unsupported("from_torch", path, kind, "minipool")


def from_torch(module, torch):
    """The minipool model equivalent to ``module`` (a ``torch.nn.Module``), with a copy of
    its weights and buffers, in their dtype (float32 or float64), and its training mode.

    The reverse of :func:`to_torch`, for the same layers: ``torch.nn.Sequential``
    trees of the supported layers, and registered twins (LeNet-5's).
    """
    check_is_torch(torch, "from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: module must be a torch.nn.Module, got {type(module).__name__}")
    model = _mp_tree(module, torch, "")
    state = OrderedDict((k, v.detach().cpu().numpy().copy()) for k, v in module.state_dict().items())
    for name, p in model.named_parameters():  # a registered twin's reader may pick float32
        if name in state and state[name].dtype in FLOAT_DTYPES and state[name].dtype != p.dtype:
            p._data = p._data.astype(state[name].dtype)
    model.load_state_dict(state)
    _copy_modes(dict(module.named_modules()), model.named_modules())
    return model


def _copy_modes(source_by_name, target_named_modules):
    for name, target in target_named_modules:
        source = source_by_name.get(name)
        if source is not None:
            object.__setattr__(target, "training", bool(source.training))
