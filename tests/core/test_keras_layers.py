"""Keras-named layers (Dense, Conv2D, Conv2DTranspose, BatchNormalization, ZeroPadding2D,
Activation), Keras's ReLU arguments, Keras keywords of the pooling functions, and the
course's NHWC network trained end to end."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def arr(rng, shape, dtype=np.float64, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ----------------------------------------------------------------------------- references
def tf_same_pads(n, k, s, d):
    k = d * (k - 1) + 1
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def torch_leaves(x, layer):
    """The input and the layer's weight and bias as torch tensors that collect gradients."""
    return tuple(torch.tensor(a, requires_grad=True)
                 for a in (x, layer.weight.numpy(), layer.bias.numpy()))


def assert_matches_torch(y, xm, layer, yt, leaves, tol):
    """The layer's output ``y`` and the gradients of its input ``xm``, weight and bias as
    torch's (``yt`` and the ``leaves`` after its backward), to ``tol`` (atol 10 * tol for the
    parameters, whose gradients are sums over the batch and the pixels)."""
    xt, wt, bt = leaves
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.weight.grad.numpy(), wt.grad.numpy(), rtol=tol, atol=10 * tol)
    np.testing.assert_allclose(layer.bias.grad.numpy(), bt.grad.numpy(), rtol=tol, atol=10 * tol)


def conv_nhwc_loops(x, kernel_hwio, bias, strides, padding, dilation):
    """Keras's Conv2D by loops: NHWC input, HWIO kernel, TensorFlow's SAME/VALID."""
    N, H, W, C = x.shape
    kh, kw, _, O = kernel_hwio.shape
    (sh, sw), (dh, dw) = strides, dilation
    if padding == "same":
        (top, bottom), (left, right) = tf_same_pads(H, kh, sh, dh), tf_same_pads(W, kw, sw, dw)
    else:
        top = bottom = left = right = 0
    xp = np.zeros((N, H + top + bottom, W + left + right, C), x.dtype)
    xp[:, top:top + H, left:left + W] = x
    Ho = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    Wo = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((N, Ho, Wo, O))
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                for a in range(kh):
                    for b in range(kw):
                        out[n, i, j] += xp[n, i * sh + a * dh, j * sw + b * dw] @ kernel_hwio[a, b]
    if bias is not None:
        out += bias
    return out


# ----------------------------------------------------------------------------- Dense
def test_dense_lazy_build_reference_and_keras_layout():
    rng = np.random.default_rng(0)
    layer = nn.Dense(5, activation="tanh", generator=np.random.default_rng(1))
    assert list(layer.parameters()) == [] and layer.get_weights() == []
    x = arr(rng, (3, 4))
    y = layer(mp.tensor(x))
    assert layer.weight.shape == (5, 4) and layer.weight.dtype == np.float64
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 5)
    np.testing.assert_allclose(y.numpy(), np.tanh(x @ kernel + bias), rtol=1e-12)
    bound = math.sqrt(6 / (4 + 5))  # Glorot uniform
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > bound / 3
    np.testing.assert_array_equal(bias, 0.0)
    new_kernel, new_bias = arr(rng, (4, 5)), arr(rng, 5)
    layer.set_weights([new_kernel, new_bias])
    np.testing.assert_allclose(layer(mp.tensor(x)).numpy(), np.tanh(x @ new_kernel + new_bias), rtol=1e-12)
    # N-D input: over the last axis, as Keras
    x3 = arr(rng, (2, 3, 4))
    np.testing.assert_allclose(layer(mp.tensor(x3)).numpy(), np.tanh(x3 @ new_kernel + new_bias), rtol=1e-12)


def test_dense_eager_build_and_errors():
    layer = nn.Dense(3, input_dim=7, use_bias=False)
    assert layer.weight.shape == (3, 7) and layer.bias is None and layer.weight.dtype == np.float32
    assert [k for k in layer.state_dict()] == ["weight"]
    assert nn.Dense(2, input_shape=(6,)).weight.shape == (2, 6)
    with pytest.raises(ValueError, match="built for 7 input features"):
        layer(mp.ones(2, 5))
    with pytest.raises(ValueError, match="Dense: units must be >= 1, got 0"):
        nn.Dense(0)
    with pytest.raises(ValueError, match="activation must be None, a callable or one of"):
        nn.Dense(3, activation="relu7")
    with pytest.raises(ValueError, match="not built yet"):
        nn.Dense(3).set_weights([np.zeros((2, 3)), np.zeros(3)])
    with pytest.raises(ValueError, match="expected shapes"):
        layer.set_weights([np.zeros((3, 7))])


# ----------------------------------------------------------------------------- Conv2D
CONV_CASES = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 3),
                       st.integers(1, 3), st.sampled_from([(1, 1), (2, 2), (2, 1), (3, 2)]),
                       st.sampled_from([(1, 1), (2, 1), (2, 2)]),
                       st.sampled_from(["valid", "same", "SAME"]))


@settings(max_examples=40, deadline=None)
@given(case=CONV_CASES, seed=st.integers(0, 2 ** 16), dtype=st.sampled_from([np.float32, np.float64]),
       use_bias=st.booleans())
def test_conv2d_matches_loop_reference(case, seed, dtype, use_bias):
    H, W, C, kh, kw, strides, dilation, padding = case
    assume(strides == (1, 1) or dilation == (1, 1))
    if padding == "valid":
        assume(H >= dilation[0] * (kh - 1) + 1 and W >= dilation[1] * (kw - 1) + 1)
    rng = np.random.default_rng(seed)
    layer = nn.Conv2D(3, (kh, kw), strides=strides, padding=padding, dilation_rate=dilation,
                      use_bias=use_bias, dtype=dtype)
    x = arr(rng, (2, H, W, C), dtype)
    y = layer(mp.tensor(x))
    kernel = layer.get_weights()[0]
    bias = arr(rng, 3, dtype) if use_bias else None
    if use_bias:
        layer.set_weights([kernel, bias])
        y = layer(mp.tensor(x))
    want = conv_nhwc_loops(x.astype(np.float64), kernel.astype(np.float64), bias, strides,
                           padding.lower(), dilation)
    if padding.lower() == "same":
        assert y.shape[1:3] == (math.ceil(H / strides[0]), math.ceil(W / strides[1]))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.numpy(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("strides,padding,kernel", [(1, "same", 3), (2, "same", 3), (2, "same", 4),
                                                    (1, "same", 2), (2, "valid", 3)])
def test_conv2d_forward_backward_match_torch(dtype, tol, strides, padding, kernel):
    rng = np.random.default_rng(2)
    layer = nn.Conv2D(4, kernel, strides=strides, padding=padding, activation="relu", dtype=dtype)
    x = arr(rng, (2, 7, 8, 3), dtype)
    xm = mp.tensor(x, requires_grad=True)
    y = layer(xm)
    g = arr(rng, y.shape, dtype)
    y.backward(g)
    # torch: NCHW, TensorFlow's SAME padding made explicit
    xt, wt, bt = leaves = torch_leaves(x, layer)
    pads = (0, 0, 0, 0)
    if padding == "same":
        (top, bottom), (left, right) = tf_same_pads(7, kernel, strides, 1), tf_same_pads(8, kernel, strides, 1)
        pads = (left, right, top, bottom)
    yt = TF.relu(TF.conv2d(TF.pad(xt.permute(0, 3, 1, 2), pads), wt, bt, strides)).permute(0, 2, 3, 1)
    yt.backward(torch.tensor(g))
    assert_matches_torch(y, xm, layer, yt, leaves, tol)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_gradcheck_asymmetric_same(data_format):
    rng = np.random.default_rng(4)
    shape = (2, 6, 5, 2) if data_format == "channels_last" else (2, 2, 6, 5)
    layer = nn.Conv2D(3, 4, strides=2, padding="same", data_format=data_format, dtype=np.float64,
                      activation="tanh")
    x = mp.tensor(arr(rng, shape), requires_grad=True)
    layer(x)
    w, b = layer.weight, layer.bias
    del layer.weight, layer.bias  # PyTorch's way to put plain tensors in a parameter's place

    def run(x, w, b):
        layer.weight, layer.bias = w, b
        return layer(x)

    assert mp.gradcheck(run, [x, mp.tensor(w.numpy(), requires_grad=True), mp.tensor(b.numpy(), requires_grad=True)])


def test_conv2d_channels_first_equals_channels_last():
    rng = np.random.default_rng(5)
    last = nn.Conv2D(4, 3, strides=2, padding="same", dtype=np.float64)
    first = nn.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first", dtype=np.float64)
    x = arr(rng, (2, 9, 6, 3))
    y_last = last(mp.tensor(x))
    first(mp.tensor(np.moveaxis(x, -1, 1).copy()))
    first.set_weights(last.get_weights())
    y_first = first(mp.tensor(np.moveaxis(x, -1, 1).copy()))
    np.testing.assert_allclose(np.moveaxis(y_first.numpy(), 1, -1), y_last.numpy(), rtol=1e-12)


def test_conv2d_errors():
    with pytest.raises(ValueError, match="filters must be >= 1, got"):
        nn.Conv2D(0, 3)
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        nn.Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="strides > 1 cannot be combined with dilation_rate > 1"):
        nn.Conv2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="data_format"):
        nn.Conv2D(2, 3, data_format="NHWC")
    with pytest.raises(TypeError, match="kernel_size must be an int or a tuple of 2 ints"):
        nn.Conv2D(2, 2.5)
    layer = nn.Conv2D(2, 3, input_shape=(8, 8, 3))
    assert layer.weight.shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="built for 4-D input with 3 channels"):
        layer(mp.ones(1, 8, 8, 4))
    with pytest.raises(ValueError, match=r"expects 4-D \(N, H, W, C\) input"):
        nn.Conv2D(2, 3)(mp.ones(8, 8, 3))


# ----------------------------------------------------------------------------- Conv2DTranspose
@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 5), s=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]),
       C=st.integers(1, 3), Fo=st.integers(1, 3), use_op=st.booleans(), op=st.integers(0, 2),
       seed=st.integers(0, 2 ** 16), channels_last=st.booleans())
def test_conv2d_transpose_is_the_adjoint_of_conv2d(n, k, s, padding, C, Fo, use_op, op, seed, channels_last):
    """Keras's Conv2DTranspose is the transpose of the Conv2D with the same arguments:
    <conv(x), y> == <x, conv_transpose(y)> with the same kernel, when the sizes agree."""
    output_padding = (op, op) if use_op and op < s else None
    fmt = "channels_last" if channels_last else "channels_first"
    rng = np.random.default_rng(seed)
    tconv = nn.Conv2DTranspose(C, k, strides=s, padding=padding, output_padding=output_padding,
                               data_format=fmt, use_bias=False, dtype=np.float64)
    L = tconv.output_sides((n, n))[0]
    assume(L >= 1)
    conv = nn.Conv2D(Fo, k, strides=s, padding=padding, data_format=fmt, use_bias=False, dtype=np.float64)
    x_shape = (2, L, L, C) if channels_last else (2, C, L, L)
    assume(padding == "same" or L >= k)
    x = arr(rng, x_shape)
    cx = conv(mp.tensor(x))
    assume(cx.shape[1:3] == (n, n) if channels_last else cx.shape[2:4] == (n, n))
    y = arr(rng, cx.shape)
    ty = tconv(mp.tensor(y))
    assert ty.shape == x_shape
    tconv.weight.data = conv.weight.data.clone()  # (Fo, C, k, k): conv's (out, in) is tconv's (in, out)
    ty = tconv(mp.tensor(y)).numpy()
    np.testing.assert_allclose(np.sum(cx.numpy() * y), np.sum(x * ty), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding,output_padding,k,s", [("valid", None, 3, 2), ("same", None, 3, 2),
                                                         ("same", None, 4, 2), ("valid", None, 2, 3),
                                                         ("same", (1, 1), 3, 2), ("valid", (1, 0), 3, 2)])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_conv2d_transpose_matches_torch(padding, output_padding, k, s, dtype, tol):
    """Against torch's conv_transpose2d of the full output, cut as TensorFlow's SAME does."""
    rng = np.random.default_rng(8)
    layer = nn.Conv2DTranspose(3, k, strides=s, padding=padding, output_padding=output_padding,
                               dtype=dtype)
    x = arr(rng, (2, 4, 5, 2), dtype)
    xm = mp.tensor(x, requires_grad=True)
    layer(xm)
    layer.bias.data = mp.tensor(arr(rng, 3, dtype))
    y = layer(xm)
    g = arr(rng, y.shape, dtype)
    y.backward(g)
    xt, wt, bt = leaves = torch_leaves(x, layer)
    full = TF.conv_transpose2d(xt.permute(0, 3, 1, 2), wt, None, s)  # (N, 3, (n-1)s+k, ...)
    target = layer.output_sides((4, 5))
    begin = [0 if padding == "valid" else tf_same_pads(L, k, s, 1)[0] for L in target]
    full = TF.pad(full, (0, max(0, begin[1] + target[1] - full.shape[3]),
                         0, max(0, begin[0] + target[0] - full.shape[2])))
    yt = full[:, :, begin[0]:begin[0] + target[0], begin[1]:begin[1] + target[1]] + bt[None, :, None, None]
    yt = yt.permute(0, 2, 3, 1)
    assert tuple(yt.shape) == y.shape
    yt.backward(torch.tensor(g))
    assert_matches_torch(y, xm, layer, yt, leaves, tol)


def test_conv2d_transpose_output_sizes_and_errors():
    assert nn.Conv2DTranspose(2, 3, strides=2, padding="same")(mp.ones(1, 5, 5, 1)).shape == (1, 10, 10, 2)
    assert nn.Conv2DTranspose(2, 3, strides=2)(mp.ones(1, 5, 5, 1)).shape == (1, 11, 11, 2)
    assert nn.Conv2DTranspose(2, 1, strides=3)(mp.ones(1, 2, 2, 1)).shape == (1, 6, 6, 2)
    layer = nn.Conv2DTranspose(2, 3, input_shape=(4, 4, 5))
    assert layer.weight.shape == (5, 2, 3, 3) and layer.get_weights()[0].shape == (3, 3, 2, 5)
    with pytest.raises(ValueError, match="output_padding must be smaller than strides"):
        nn.Conv2DTranspose(2, 3, strides=2, output_padding=2)


def test_conv2d_transpose_gradcheck():
    rng = np.random.default_rng(9)
    layer = nn.Conv2DTranspose(2, 3, strides=2, padding="same", dtype=np.float64)  # the cropping path
    x = mp.tensor(arr(rng, (1, 3, 2, 2)), requires_grad=True)
    layer(x)
    w = mp.tensor(layer.weight.numpy(), requires_grad=True)
    b = mp.tensor(arr(rng, 2), requires_grad=True)
    del layer.weight, layer.bias  # PyTorch's way to put plain tensors in a parameter's place

    def run(x, w, b):
        layer.weight, layer.bias = w, b
        return layer(x)

    assert mp.gradcheck(run, [x, w, b])


# ----------------------------------------------------------------------------- BatchNormalization
def keras_bn_reference(x, axis, gamma, beta, mean, var, momentum, eps):
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = -1
    m, v = x.mean(axis=axes), x.var(axis=axes)  # biased, as Keras
    y = (x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + eps) * gamma.reshape(shape) + beta.reshape(shape)
    return y, mean * momentum + m * (1 - momentum), var * momentum + v * (1 - momentum)


@pytest.mark.parametrize("axis,shape", [(-1, (4, 3, 3, 5)), (1, (4, 5, 3, 3)), (-1, (6, 5)), (2, (3, 4, 5))])
def test_batch_normalization_keras_rule(axis, shape):
    rng = np.random.default_rng(1)
    layer = nn.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-3)
    C = shape[axis]
    mean, var = np.zeros(C), np.ones(C)
    for step in range(4):
        x = arr(rng, shape, scale=2.0) + step
        y = layer(mp.tensor(x))
        gamma, beta, _, _ = layer.get_weights()
        want, mean, var = keras_bn_reference(x, axis, gamma, beta, mean, var, 0.9, 1e-3)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-12)
        np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=1e-12)
    layer.eval()
    x = arr(rng, shape)
    shape_c = [1] * len(shape)
    shape_c[axis] = -1
    want = (x - mean.reshape(shape_c)) / np.sqrt(var.reshape(shape_c) + 1e-3)
    np.testing.assert_allclose(layer(mp.tensor(x)).numpy(), want, rtol=1e-11, atol=1e-12)
    assert sorted(layer.state_dict()) == ["beta", "gamma", "moving_mean", "moving_variance"]


def test_batch_normalization_versus_torch_momentum_and_bessel():
    """Same normalisation as torch's BatchNorm2d; running mean with momentum 1 - m; running
    variance biased (torch's is unbiased: a factor M / (M - 1) on the batch term)."""
    rng = np.random.default_rng(3)
    x = arr(rng, (4, 3, 2, 2))
    mine = nn.BatchNormalization(axis=1, momentum=0.8, epsilon=1e-5)
    theirs = torch.nn.BatchNorm2d(3, momentum=0.2, eps=1e-5).double()
    np.testing.assert_allclose(mine(mp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(mine.moving_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-12)
    M = 4 * 2 * 2
    batch_var_unbiased = (theirs.running_var.numpy() - 0.8) / 0.2
    np.testing.assert_allclose(mine.moving_variance.numpy(), 0.8 + 0.2 * batch_var_unbiased * (M - 1) / M,
                               rtol=1e-12)


def test_batch_normalization_gradcheck_and_one_value_per_channel():
    rng = np.random.default_rng(4)
    layer = nn.BatchNormalization(dtype=np.float64)
    x = mp.tensor(arr(rng, (3, 2, 4)), requires_grad=True)
    layer(x)
    g = mp.tensor(arr(rng, 4), requires_grad=True)
    b = mp.tensor(arr(rng, 4), requires_grad=True)
    del layer.gamma, layer.beta  # PyTorch's way to put plain tensors in a parameter's place

    def run(x, g, b):
        layer.gamma, layer.beta = g, b
        return layer(x)

    assert mp.gradcheck(run, [x, g, b])
    # Keras does not refuse a batch of one (no Bessel factor): the output is beta
    one = nn.BatchNormalization(center=True)
    np.testing.assert_array_equal(one(mp.ones(1, 3)).numpy(), 0.0)


def test_batch_normalization_errors():
    with pytest.raises(TypeError, match="axis must be an int"):
        nn.BatchNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        nn.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="axis=3 is not an axis"):
        nn.BatchNormalization(axis=3)(mp.ones(2, 3))
    layer = nn.BatchNormalization(input_shape=(5,))
    with pytest.raises(ValueError, match="built for 5 features on axis -1"):
        layer(mp.ones(2, 4))
    assert [w.shape for w in layer.get_weights()] == [(5,)] * 4
    assert len(nn.BatchNormalization(center=False, input_shape=(5,)).get_weights()) == 3


# ----------------------------------------------------------------------------- ZeroPadding2D, Activation
@pytest.mark.parametrize("padding,want", [(1, ((1, 1), (1, 1))), ((2, 3), ((2, 2), (3, 3))),
                                          (((0, 1), (2, 0)), ((0, 1), (2, 0)))])
@pytest.mark.parametrize("data_format", [None, "channels_first"])
def test_zero_padding(padding, want, data_format):
    rng = np.random.default_rng(0)
    x = arr(rng, (2, 3, 4, 5))
    xm = mp.tensor(x, requires_grad=True)
    y = nn.ZeroPadding2D(padding, data_format=data_format)(xm)
    spec = [(0, 0), want[0], want[1], (0, 0)] if data_format is None else [(0, 0), (0, 0), want[0], want[1]]
    np.testing.assert_array_equal(y.numpy(), np.pad(x, spec))
    g = arr(rng, y.shape)
    y.backward(g)
    crop = tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(spec))
    np.testing.assert_array_equal(xm.grad.numpy(), g[crop])


def test_zero_padding_errors():
    with pytest.raises(ValueError, match="padding must be >= 0"):
        nn.ZeroPadding2D(-1)
    with pytest.raises(TypeError, match="padding must be an int or a tuple of 2 ints"):
        nn.ZeroPadding2D("same")
    with pytest.raises(ValueError, match="expects 4-D input"):
        nn.ZeroPadding2D(1)(mp.ones(3, 3, 1))
    with pytest.raises(ValueError, match="padding must be <= 2147483647"):
        nn.ZeroPadding2D(2 ** 31)
    with pytest.raises(ValueError, match="too large to allocate"):
        nn.ZeroPadding2D(2 ** 31 - 1)(mp.ones(1, 2, 2, 1))
    with pytest.raises(ValueError, match="units and input features give a weight"):
        nn.Dense(2 ** 40)(mp.ones(1, 4))


def test_activation_strings():
    rng = np.random.default_rng(0)
    x = arr(rng, (3, 4))
    cases = {"relu": np.maximum(x, 0), "sigmoid": 1 / (1 + np.exp(-x)), "tanh": np.tanh(x),
             "softmax": np.exp(x) / np.exp(x).sum(-1, keepdims=True), "linear": x, None: x,
             "exponential": np.exp(x), "RELU": np.maximum(x, 0)}
    for name, want in cases.items():
        np.testing.assert_allclose(nn.Activation(name)(mp.tensor(x)).numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(nn.Activation(lambda t: t * 2)(mp.tensor(x)).numpy(), 2 * x)
    with pytest.raises(ValueError, match="activation must be None, a callable or one of"):
        nn.Activation("mish!")
    if hasattr(F, "elu"):
        np.testing.assert_allclose(nn.Activation("elu")(mp.tensor(x)).numpy(),
                                   TF.elu(torch.tensor(x)).numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- ReLU (Keras)
def keras_relu_reference(x, max_value, slope, threshold):
    out = np.empty_like(x)
    for i, v in np.ndenumerate(x):
        if np.isnan(v):
            out[i] = v
        elif max_value is not None and v >= max_value:
            out[i] = max_value
        elif v >= threshold:
            out[i] = v
        else:
            out[i] = slope * (v - threshold) if slope else 0.0  # relu(-inf) is 0, not 0 * -inf
    return out


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-10, 10), st.sampled_from([0.0, 1.0, 6.0, -0.0, np.inf,
                                                                       -np.inf, np.nan])),
                       min_size=1, max_size=12),
       max_value=st.sampled_from([None, 6.0, 1.0, 0.0]), slope=st.sampled_from([0.0, 0.1, 0.3]),
       threshold=st.sampled_from([0.0, 0.5, 1.0]))
def test_keras_relu_matches_reference(values, max_value, slope, threshold):
    x = np.array(values, np.float64)
    y = nn.ReLU(max_value=max_value, negative_slope=slope, threshold=threshold)(mp.tensor(x)).numpy()
    np.testing.assert_array_equal(y, keras_relu_reference(x, max_value, slope, threshold))


def test_relu_gradients_at_kinks_match_torch():
    x = np.array([-2.0, 0.0, 0.5, 6.0, 7.0, np.nan])
    for layer, torch_fn in ((nn.ReLU(), TF.relu), (nn.ReLU(6.0), TF.relu6),
                            (nn.ReLU(negative_slope=0.2), lambda t: TF.leaky_relu(t, 0.2))):
        xm = mp.tensor(x, requires_grad=True)
        y = layer(xm)
        y.sum().backward()
        xt = torch.tensor(x, requires_grad=True)
        yt = torch_fn(xt)
        yt.sum().backward()
        np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
        np.testing.assert_array_equal(xm.grad.numpy(), xt.grad.numpy())
    # threshold > 0: the x piece from threshold on, gradient 1 there (Keras's formula)
    xm = mp.tensor([0.5, 1.0, 2.0], requires_grad=True)
    nn.ReLU(negative_slope=0.1, threshold=1.0)(xm).sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), [0.1, 1.0, 1.0])


def test_relu_torch_habits_and_errors():
    assert repr(nn.ReLU()) == "ReLU()" and repr(nn.ReLU(True)) == "ReLU(inplace=True)"
    assert repr(nn.ReLU(6)) == "ReLU(max_value=6)"
    t = mp.tensor([-1.0, 2.0])
    out = nn.ReLU(inplace=True)(t)
    assert out is t and t.numpy().tolist() == [0.0, 2.0]
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        nn.ReLU(True)(mp.tensor([1.0], requires_grad=True))
    for kwargs in ({"max_value": -1.0}, {"negative_slope": -0.1}, {"threshold": float("nan")}):
        with pytest.raises(ValueError, match="must be a number >= 0"):
            nn.ReLU(**kwargs)


# ----------------------------------------------------------------------------- pooling keywords
@pytest.mark.parametrize("fn,tfn", [(F.max_pool2d, TF.max_pool2d), (F.avg_pool2d, TF.avg_pool2d)])
def test_pooling_accepts_keras_keywords(fn, tfn):
    rng = np.random.default_rng(0)
    x = arr(rng, (2, 7, 7, 3))
    want = tfn(torch.tensor(np.moveaxis(x, -1, 1)), 2, 2).numpy()
    for kwargs in ({"strides": 2, "padding": "VALID"}, {"strides": (2, 2), "padding": "valid"}):
        got = fn(mp.tensor(x), 2, data_format="channels_last", **kwargs).numpy()
        np.testing.assert_array_equal(np.moveaxis(got, -1, 1), want)
    got = fn(mp.tensor(x), pool_size=2, strides=2, padding="SAME", data_format="channels_last")
    assert got.shape == (2, 4, 4, 3)
    with pytest.raises(TypeError, match="got both strides= .* and stride="):
        fn(mp.tensor(x), 2, stride=2, strides=2)
    with pytest.raises(TypeError, match="got both pool_size= .* and kernel_size="):
        fn(mp.tensor(x), kernel_size=2, pool_size=2)


# ----------------------------------------------------------------------------- the course's NHWC network
def test_nhwc_network_builds_and_trains():
    rng = np.random.default_rng(0)
    mp.manual_seed(0) if hasattr(mp, "manual_seed") else None
    net = nn.Sequential(nn.Conv2D(8, 3, padding="same", activation="relu", generator=np.random.default_rng(1)),
                        nn.MaxPool2D(2, strides=2), nn.UpSampling2D(size=3), nn.ReLU(), nn.Flatten(),
                        nn.Dense(10, generator=np.random.default_rng(2)))
    x = rng.random((16, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    assert net(mp.tensor(x)).shape == (16, 10)  # builds every lazy layer
    assert net[0].weight.shape == (8, 1, 3, 3) and net[5].weight.shape == (10, 42 * 42 * 8)
    opt = mp.optim.SGD(list(net.parameters()), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(net(mp.tensor(x)), mp.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


def test_nhwc_network_with_batch_normalization_trains():
    rng = np.random.default_rng(1)
    net = nn.Sequential(nn.ZeroPadding2D(1), nn.Conv2D(6, 3, use_bias=False), nn.BatchNormalization(),
                        nn.Activation("relu"), nn.MaxPool2D(2), nn.Conv2DTranspose(4, 2, strides=2),
                        nn.Flatten(), nn.Dense(5))
    x = rng.random((12, 10, 10, 2)).astype(np.float32)
    y = rng.integers(0, 5, 12)
    assert net(mp.tensor(x)).shape == (12, 5)
    opt = mp.optim.SGD(list(net.parameters()), lr=0.05, momentum=0.9)
    first = None
    for _ in range(20):
        loss = F.cross_entropy(net(mp.tensor(x)), mp.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
    assert int(net[2].moving_mean.numpy().any()) == 1  # the statistics moved
    net.eval()
    probs = nn.Activation("softmax")(net(mp.tensor(x))).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
