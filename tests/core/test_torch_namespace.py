"""Top-level PyTorch habits: factories, grad modes, devices, compile, and the names minipool
does not have (an AttributeError that says so)."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")


def test_randint_forms_dtypes_and_range():
    x = mp.randint(3, 7, (200,), generator=0)
    assert x.dtype == np.int64 and x.shape == (200,)
    assert set(x.tolist()) == {3, 4, 5, 6}  # both ends reached, high excluded
    y = mp.randint(5, (2, 3), generator=0)  # torch's randint(high, size)
    assert y.shape == (2, 3) and y.numpy().min() >= 0 and y.numpy().max() < 5
    assert mp.randint(0, 2, (3,), dtype=mp.float32).dtype == np.float32
    assert mp.randint(0, 9, (4,), generator=5).tolist() == mp.randint(0, 9, (4,), generator=5).tolist()


@pytest.mark.parametrize("call, err, text", [
    (lambda: mp.randint(5, 5, (2,)), ValueError, "high must be > low"),
    (lambda: mp.randint(0, 5, 3), TypeError, "size must be a tuple"),
    (lambda: mp.randint(0.5, 5, (3,)), TypeError, "low must be an int"),
    (lambda: mp.randint(0, 5, (-1,)), ValueError, "non-negative"),
    (lambda: mp.randperm(-1), ValueError, "n must be an int >= 0"),
    (lambda: mp.linspace(0, 1, -2), ValueError, "steps must be an int >= 0"),
    (lambda: mp.set_grad_enabled("no"), TypeError, "mode must be a bool"),
])
def test_factories_refuse_bad_arguments(call, err, text):
    with pytest.raises(err, match=text):
        call()


def test_factories_match_torch():
    assert sorted(mp.randperm(50, generator=2).tolist()) == list(range(50))
    assert mp.randperm(5).dtype == np.int64
    np.testing.assert_array_equal(mp.eye(3, 2).numpy(), torch.eye(3, 2).numpy())
    np.testing.assert_array_equal(mp.linspace(-1, 2, 7).numpy(), torch.linspace(-1, 2, 7).numpy())
    assert mp.eye(2).dtype == np.float32 and mp.empty(2, 3).shape == (2, 3)
    a = np.arange(4.0)
    t = mp.as_tensor(a)
    a[1] = 9
    assert t.tolist() == [0.0, 9.0, 2.0, 3.0] and t.dtype == np.float64  # shares memory, keeps dtype
    assert mp.as_tensor([1.5]).dtype == np.float32 and mp.as_tensor(t) is t


def test_grad_modes_as_torch():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    with mp.inference_mode():
        assert not (x * 2).requires_grad
    with mp.inference_mode(False):
        assert (x * 2).requires_grad
    with mp.set_grad_enabled(False):
        assert not mp.is_grad_enabled()
    assert mp.is_grad_enabled()
    mp.set_grad_enabled(False)  # a plain call sets the mode from now on, as in torch
    try:
        assert not (x * 2).requires_grad
    finally:
        mp.set_grad_enabled(True)

    @mp.inference_mode()
    def f():
        return mp.is_grad_enabled()

    @mp.set_grad_enabled(False)
    def g():
        return mp.is_grad_enabled()

    assert f() is False and g() is False and mp.is_grad_enabled()


@pytest.mark.parametrize("lib", ["minipool", "torch"])
def test_grad_mode_classes_decorate_without_parentheses(lib):
    T = mp if lib == "minipool" else pytest.importorskip("torch")
    x = T.ones(1, requires_grad=True)

    @T.no_grad
    def doubled(v):
        return v * 2

    @T.inference_mode
    def tripled(v):
        return v * 3

    @T.enable_grad
    def quadrupled(v):
        return v * 4

    assert doubled.__name__ == "doubled"
    assert not doubled(x).requires_grad and not tripled(x).requires_grad
    with T.no_grad():
        assert quadrupled(x).requires_grad
    assert T.is_grad_enabled()
    if lib == "minipool":  # (torch.no_grad(5) passes quietly)
        with pytest.raises(TypeError):
            T.no_grad(5)


def test_device_and_cuda_habits():
    device = "cuda" if mp.cuda.is_available() else "cpu"
    model = mp.nn.Linear(2, 2).to(mp.device(device))
    x = mp.randn(1, 2).to(mp.device("cpu"))
    assert model(x).shape == (1, 2) and mp.cuda.device_count() == 0
    assert x.device == mp.device("cpu") and x.device.type == "cpu" and mp.device("cpu:0").index == 0
    assert repr(mp.device("cpu")) == repr(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="CPU only"):
        mp.device("cuda:0")


def test_compile_returns_the_model():
    net = mp.nn.Sequential(mp.nn.Linear(3, 2))
    assert mp.compile(net) is net
    assert mp.compile(mode="reduce-overhead")(net) is net
    with pytest.raises(TypeError, match="Module or a function"):
        mp.compile(3)


@pytest.mark.parametrize("name, text", [
    ("autocast", "no mixed precision"), ("jit", "no TorchScript"), ("distributed", "one process"),
    ("fft", "docs/differences.md"),
])
def test_missing_torch_names_say_why(name, text):
    with pytest.raises(AttributeError, match=text):
        getattr(mp, name)
    assert not hasattr(mp, name)
