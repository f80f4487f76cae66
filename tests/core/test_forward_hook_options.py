"""``register_forward_hook(hook, prepend=..., with_kwargs=...)`` and the same options of
``register_forward_pre_hook``, as PyTorch's (feature extractors, adapters that read or
rewrite keyword arguments): minipool took neither (a TypeError)."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")


class Scale:
    """``forward(x, scale=1.0)``, built in either library."""

    @staticmethod
    def make(lib):
        class Net(lib.nn.Module):
            def forward(self, x, scale=1.0):
                return x * scale
        return Net()


def _run(lib):
    net, log = Scale.make(lib), []
    net.register_forward_hook(lambda m, args, out: log.append("a"))
    net.register_forward_hook(lambda m, args, out: log.append("b"), prepend=True)
    net.register_forward_hook(lambda m, args, kwargs, out: log.append(("kw", sorted(kwargs))) or out + 1,
                              with_kwargs=True)
    net.register_forward_pre_hook(lambda m, args: log.append("pre"))
    net.register_forward_pre_hook(lambda m, args, kwargs: (args, {"scale": kwargs.get("scale", 1.0) * 10}),
                                  with_kwargs=True, prepend=True)
    out = net(lib.tensor([1.0, 2.0]), scale=2.0)
    return log, out.numpy().tolist()


def test_prepend_and_with_kwargs_as_torch():
    assert _run(mp) == _run(torch)  # order of calls, kwargs seen, the rewritten scale, the output


def test_with_kwargs_pre_hook_must_return_args_and_kwargs():
    net = Scale.make(mp)
    net.register_forward_pre_hook(lambda m, args, kwargs: args, with_kwargs=True)
    with pytest.raises(RuntimeError, match=r"must return None or a tuple \(new_args, new_kwargs\)"):
        net(mp.ones(2), scale=3.0)
