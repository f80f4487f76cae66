"""``nn.Softmax()`` / ``nn.LogSoftmax()`` without ``dim``: PyTorch's default is ``dim=None``,
its deprecated implicit choice (the last dim of a 1-d/2-d input, dim 0 of a 3-d one, dim 1
beyond).  minipool's layers defaulted to ``dim=-1``: on a 3-d or 4-d input (a segmentation
head) they normalised another axis than PyTorch, silently.  Now they take ``dim=None`` as
``F.softmax`` does: the last dim up to 2-d, a ValueError naming ``dim`` beyond."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax"])
def test_default_dim_is_none_as_torch(name):
    mine, theirs = getattr(mp.nn, name)(), getattr(torch.nn, name)()
    assert repr(mine) == repr(theirs) == f"{name}(dim=None)"
    rng = np.random.default_rng(0)
    for shape in [(5,), (3, 5)]:  # the same implicit choice in both libraries: the last dim
        x = rng.standard_normal(shape)
        with pytest.warns(UserWarning):
            want = theirs(torch.tensor(x)).numpy()
        np.testing.assert_allclose(mine(mp.tensor(x)).numpy(), want, rtol=1e-12)
    for shape in [(2, 3, 4), (2, 3, 4, 5)]:  # PyTorch would pick dim 0 / dim 1: name the dim
        with pytest.raises(ValueError, match="pass dim"):
            mine(mp.tensor(rng.standard_normal(shape)))
    x = rng.standard_normal((2, 3, 4, 5))  # an explicit dim: as PyTorch on 4-d
    for dim in (1, -1):
        np.testing.assert_allclose(getattr(mp.nn, name)(dim)(mp.tensor(x)).numpy(),
                                   getattr(torch.nn, name)(dim)(torch.tensor(x)).numpy(), rtol=1e-12)
