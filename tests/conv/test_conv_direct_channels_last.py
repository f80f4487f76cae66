"""conv2d's direct forward kernel on channels-last input (conv2d_channels_last.pyx, section
"direct"; the kernel is conv2d_direct.h with NHWC strides).

``use_direct(2)`` puts every channels-last forward with a finite weight on it.  Checked
against the loop reference on transposed copies (forward and, through the NHWC backward,
every gradient), PyTorch's channels_last, the NCHW direct kernel bit for bit (the same
sums in the same order), NHWC read in place and copied as planes first bit for bit, 1 vs
2 threads and the baseline vs the AVX2 build bit for bit, inf/NaN, the automatic choice,
and random geometries under hypothesis.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from minipool.ops import conv as conv_module
from tests.conv.conv_checks import (check_automatic_direct_choice,
                                    check_avx2_and_baseline_builds_agree,
                                    check_direct_carries_a_non_finite_input,
                                    check_forward_matches_torch_float32,
                                    check_non_finite_weight_meets_the_padding, make,
                                    random_geometry_inputs, reference)
from tests.conv.test_conv_channels_last import CL, nchw, nhwc, run
from tests.conv.test_conv_direct import DIRECT_CASES, DIRECT_IDS, geometry_of
from tests.helpers import with_threads


def forward(x, w, b, **kwargs):
    """The channels-last forward of an NCHW ``x``, returned NCHW."""
    with mp.no_grad():
        out = F.conv2d(mp.tensor(nhwc(x)), mp.tensor(w), None if b is None else mp.tensor(b),
                       **kwargs, **CL)
    return nchw(out.numpy())


def kernel_forward(x, w, b, kw, by_planes, threads=1):
    """``conv2d_direct_channels_last`` called directly (NCHW ``x`` in, NCHW out)."""
    geometry = geometry_of(x, w, **kw)
    out = np.empty((x.shape[0], geometry.Ho, geometry.Wo, w.shape[0]), x.dtype)
    kernels.conv2d_direct_channels_last(nhwc(x), conv_module.channels_last_weight(w), b, out,
                                        geometry, threads, by_planes)
    return nchw(out)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_channels_last_runs_these_cases(case, direct):
    x, w, b, kw = make(case)
    assert kernels.uses_direct_channels_last(x.shape[1], x.shape[2], x.shape[3], w.shape[0],
                                             geometry_of(x, w, **kw), True)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_channels_last_matches_loop_reference(case, direct):
    x, w, b, kw = make(case)
    out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kw)
    ref = reference(x, w, b, **kw, grad_out=nchw(g))
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"],
                               (nchw(out), nchw(gx), gw, gb), ref):
        if got is not None:
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_channels_last_matches_torch_float32(case, direct):
    check_forward_matches_torch_float32(case, forward, atol_scales_with_output=False,
                                        torch_channels_last=True)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_channels_last_gives_the_channels_first_bits(case, dtype, direct):
    """The same sums in the same (c, ki, kj) order as the NCHW direct kernel: bit for bit,
    NHWC read in place or copied as planes first."""
    x, w, b, kw = make(case, dtype, seed=4)
    with mp.no_grad():
        channels_first = F.conv2d(mp.tensor(x), mp.tensor(w), None if b is None else mp.tensor(b),
                                  **kw).numpy()
    np.testing.assert_array_equal(forward(x, w, b, **kw), channels_first)
    for by_planes in (False, True):
        np.testing.assert_array_equal(kernel_forward(x, w, b, kw, by_planes), channels_first)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
@pytest.mark.parametrize("by_planes", [False, True])
def test_direct_channels_last_one_and_two_threads_are_bit_identical(case, by_planes):
    x, w, b, kw = make(case, np.float32, seed=5)
    one, two = (kernel_forward(x, w, b, kw, by_planes, threads) for threads in (1, 2))
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_channels_last_through_conv2d_one_and_two_threads(case, direct):
    x, w, b, kw = make(case, np.float32, seed=5)
    one, two = (with_threads(t, lambda: forward(x, w, b, **kw)) for t in (1, 2))
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_channels_last_baseline_and_avx2_builds_give_the_same_bits(case, dtype, direct):
    check_avx2_and_baseline_builds_agree(case, dtype, lambda x, w, b, kw: [
        kernel_forward(x, w, b, kw, by_planes) for by_planes in (False, True)])


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_direct_channels_last_carries_a_non_finite_input(value, direct):
    check_direct_carries_a_non_finite_input(forward, value)


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_non_finite_weight_meets_the_padding_channels_last(value, direct):
    """0 * inf is NaN: such a weight takes the im2col path (the border outputs become
    NaN), and the direct entry point refuses it by name."""
    x, w = check_non_finite_weight_meets_the_padding(forward, value)
    with pytest.raises(ValueError, match="weight must be finite"):
        kernel_forward(x, w, None, dict(stride=1, padding=1, dilation=1, groups=1), False)


def test_direct_channels_last_rejects_mismatched_shapes():
    x = np.zeros((2, 5, 5, 3), np.float32)
    w = np.zeros((4, 27), np.float32)
    geometry = conv_module.ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, 5, 5, 1)
    with pytest.raises(ValueError, match="do not match geometry"):
        kernels.conv2d_direct_channels_last(x, w, None, np.zeros((2, 5, 5, 5), np.float32),
                                            geometry, 1)


@pytest.mark.parametrize("shape,out_channels,k,pad,on_direct", [
    ((64, 6, 14, 14), 16, 5, 0, True),      # LeNet's conv2
    ((64, 256, 4, 4), 256, 3, 1, True),
    ((64, 64, 4, 4), 64, 5, 2, True),
    ((64, 32, 16, 16), 64, 3, 1, True),
    ((64, 16, 32, 32), 16, 3, 1, True),
    ((64, 3, 32, 32), 32, 3, 1, True),
    ((64, 1, 32, 32), 6, 5, 0, False),      # one input channel: the column block
])
def test_automatic_choice_channels_last_is_the_measured_one(shape, out_channels, k, pad,
                                                            on_direct):
    check_automatic_direct_choice(kernels.uses_direct_channels_last, shape, out_channels, k,
                                  pad, on_direct)


def test_direct_by_planes_is_the_measured_choice():
    assert kernels.direct_by_planes(4, 4) and kernels.direct_by_planes(10, 10)
    assert not kernels.direct_by_planes(16, 16) and not kernels.direct_by_planes(32, 32)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 3),
       opg=st.integers(1, 18), H=st.integers(1, 9), W=st.integers(1, 12),
       k=st.integers(1, 5), stride=st.integers(1, 2), pad=st.integers(0, 3),
       dilation=st.integers(1, 2), ties=st.booleans(), by_planes=st.booleans(),
       special=st.sampled_from([None, np.inf, -np.inf, np.nan]), seed=st.integers(0, 99))
def test_random_geometry_on_direct_channels_last_matches_reference(
        N, groups, cpg, opg, H, W, k, stride, pad, dilation, ties, by_planes, special, seed):
    """Any geometry, small integer values (ties) or one inf/NaN in the input, NHWC read in
    place or as planes: as the loop reference, and through conv2d with every gradient."""
    inputs = random_geometry_inputs(N, groups, cpg, opg, H, W, k, stride, pad, dilation, ties,
                                    special, seed)
    if inputs is None:
        return
    x, w, b, kw = inputs
    with np.errstate(invalid="ignore"):
        ref = reference(x, w, b, **kw, grad_out=None)[0]
    np.testing.assert_allclose(kernel_forward(x, w, b, kw, by_planes), ref, rtol=1e-11,
                               atol=1e-11)
    previous = kernels.use_direct(2)
    try:
        out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kw)
    finally:
        kernels.use_direct(previous)
    with np.errstate(invalid="ignore"):
        ref = reference(x, w, b, **kw, grad_out=nchw(g))
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"],
                               (nchw(out), nchw(gx), gw, gb), ref):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=name)
