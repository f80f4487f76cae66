"""Shared fixtures.  ``mnist_dir``: the one place the tests learn where real MNIST files are.

Looked up in order: ``$MINIPOOL_MNIST_DIR`` (must hold the files when set: a
wrong setting fails instead of skipping), then ``<checkout>/../shared/data/mnist``.
Without either, the tests that need real MNIST skip and say how to enable them.
"""
import os

import pytest

from tests.helpers import CHECKOUT

MNIST_PROBE = "t10k-images-idx3-ubyte.gz"


def locate_mnist():
    """(folder, "") when MNIST files are found, else (None, the reason)."""
    env = os.environ.get("MINIPOOL_MNIST_DIR", "").strip()
    if env:
        if os.path.isfile(os.path.join(env, MNIST_PROBE)):
            return env, ""
        return None, f"MINIPOOL_MNIST_DIR={env} holds no {MNIST_PROBE}"
    beside = os.path.normpath(os.path.join(CHECKOUT, "..", "shared", "data", "mnist"))
    if os.path.isfile(os.path.join(beside, MNIST_PROBE)):
        return beside, ""
    return None, (f"real MNIST not found: set MINIPOOL_MNIST_DIR to a folder with the IDX files "
                  f"or put them in {beside}")


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the MNIST IDX files (the test skips when there is none)."""
    folder, reason = locate_mnist()
    if folder is None:
        if os.environ.get("MINIPOOL_MNIST_DIR", "").strip():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return folder


def pytest_configure(config):
    """Tests that compare thread counts must really get them: the kernels' load-adaptive
    team (which shrinks while other processes keep cores busy) is off in tests, except
    where tests/core/test_adaptive_threads.py turns it on to test it."""
    import minipool

    os.environ["MINIPOOL_ADAPTIVE_THREADS"] = "0"  # for the tests' own subprocesses too
    minipool.set_adaptive_threads(False)
