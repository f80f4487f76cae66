"""minipool.data: IDX reading, MNIST files and download, synthetic digits, loader, transforms."""
import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from minipool.data import (MNIST, ArrayDataset, DataLoader, DatasetNotFoundError, FashionMNIST,
                           IDXError, SyntheticDigits, default_data_dir, read_idx, transforms,
                           write_idx)
from tests.training.training_checks import check_offline_download_fails_with_instructions



# ------------------------------------------------------------------ IDX by hand
def idx_bytes(array, code):
    """IDX encoding built with struct, independent of write_idx."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B),
                                        (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_decodes_every_type(tmp_path, dtype, code, gz):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    raw = idx_bytes(array, code)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_write_idx_matches_the_format(tmp_path):
    array = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "w.idx", array)
    assert (tmp_path / "w.idx").read_bytes() == idx_bytes(array, 0x0C)
    write_idx(tmp_path / "w.idx.gz", array)
    assert gzip.decompress((tmp_path / "w.idx.gz").read_bytes()) == idx_bytes(array, 0x0C)


def test_read_idx_takes_the_count_from_the_header(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (7, 28, 28)).astype(np.uint8)
    (tmp_path / "x").write_bytes(idx_bytes(images, 0x08))
    assert read_idx(tmp_path / "x").shape == (7, 28, 28)


@pytest.mark.parametrize("mangle,words", [
    (lambda raw: raw[:-5], ["truncated"]),
    (lambda raw: raw[:6], ["truncated", "header"]),
    (lambda raw: raw[:2], ["truncated"]),
    (lambda raw: raw + b"\0\0", ["unexpected bytes"]),
    (lambda raw: b"\1" + raw[1:], ["not an IDX file"]),
    (lambda raw: raw[:2] + b"\x07" + raw[3:], ["not an IDX file"]),
])
def test_bad_idx_files_name_the_file(tmp_path, mangle, words):
    raw = idx_bytes(np.zeros((4, 3, 3), np.uint8), 0x08)
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(mangle(raw))
    with pytest.raises(IDXError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_corrupted_and_truncated_gzip_name_the_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(300, dtype=np.uint8).reshape(3, 10, 10), 0x08))
    for name, data in [("cut.gz", packed[: len(packed) // 2]),
                       ("flipped.gz", packed[:20] + bytes([packed[20] ^ 0xFF]) + packed[21:]),
                       ("garbage.gz", b"definitely not gzip data")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IDXError, match=name):
            read_idx(path)


def test_missing_idx_file(tmp_path):
    with pytest.raises(IDXError, match="not found"):
        read_idx(tmp_path / "nope.gz")


# ------------------------------------------------------------------ MNIST layout
def make_mnist_dir(root, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        arrays[split] = (images, labels)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(array, 0x08)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (root / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_mnist_reads_both_splits(tmp_path, gz, cls):
    arrays = make_mnist_dir(tmp_path, gz=gz)
    for train, split in ((True, "train"), (False, "t10k")):
        ds = cls(tmp_path, train=train)
        images, labels = arrays[split]
        assert len(ds) == len(labels)
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, labels)
        image, label = ds[3]
        assert image.shape == (1, 28, 28) and image.dtype == np.float32
        np.testing.assert_allclose(image[0], images[3] / 255.0, rtol=1e-6)
        assert label == labels[3]


def test_mnist_mismatched_counts(tmp_path):
    make_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(4, np.uint8), 0x08)))
    with pytest.raises(IDXError, match="5 images but"):
        MNIST(tmp_path, train=False)


def test_mnist_missing_files_say_where_to_put_them(tmp_path):
    root = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(root, train=True)
    message = str(info.value)
    assert str(root) in message and "train-images-idx3-ubyte" in message
    assert "--download" in message and "copy" in message


def test_download_offline_fails_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:9/",))
    monkeypatch.setattr(MNIST, "download_timeout", 5)
    check_offline_download_fails_with_instructions(
        lambda cache: MNIST(cache, train=False, download=True), tmp_path / "cache")


def _file_mirror(tmp_path, monkeypatch):
    """A mirror served from the local file system (file:// URLs go through urllib too)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    arrays = make_mnist_dir(mirror, n_test=6, seed=3)
    sums = {name: hashlib.md5((mirror / name).read_bytes()).hexdigest() for name in MNIST.resources}
    monkeypatch.setattr(MNIST, "mirrors", (mirror.as_uri() + "/",))
    return mirror, arrays, sums


def test_download_verifies_and_stores(tmp_path, monkeypatch):
    mirror, arrays, sums = _file_mirror(tmp_path, monkeypatch)
    monkeypatch.setattr(MNIST, "resources", sums)
    monkeypatch.setenv("MINIPOOL_DATA", str(tmp_path / "cache"))
    ds = MNIST(train=False, download=True)
    assert ds.root == str(tmp_path / "cache" / "mnist")
    np.testing.assert_array_equal(ds.images, arrays["t10k"][0])
    assert sorted(os.listdir(ds.root)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_download_rejects_a_bad_checksum(tmp_path, monkeypatch):
    mirror, arrays, sums = _file_mirror(tmp_path, monkeypatch)
    sums["t10k-images-idx3-ubyte.gz"] = "0" * 32
    monkeypatch.setattr(MNIST, "resources", sums)
    root = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        MNIST(root, train=False, download=True)
    assert "t10k-images-idx3-ubyte.gz" not in os.listdir(root)


def test_default_data_dir(monkeypatch):
    monkeypatch.setenv("MINIPOOL_DATA", "/some/where")
    assert default_data_dir() == "/some/where"
    monkeypatch.delenv("MINIPOOL_DATA")
    assert default_data_dir() == os.path.join(os.path.expanduser("~"), ".cache", "minipool")


def test_reduced_mnist_files(mnist_dir):
    train, test = MNIST(mnist_dir, train=True), MNIST(mnist_dir, train=False)
    assert len(train) == 15000 and len(test) == 10000
    assert train.images.shape[1:] == (28, 28) and set(np.unique(test.labels)) == set(range(10))
    # the test files are the official ones: their md5 is the published one
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        data = open(os.path.join(mnist_dir, name), "rb").read()
        assert hashlib.md5(data).hexdigest() == MNIST.resources[name]
    sums = dict(line.split()[::-1] for line in open(os.path.join(mnist_dir, "SHA256SUMS")))
    for name, digest in sums.items():
        assert hashlib.sha256(open(os.path.join(mnist_dir, name), "rb").read()).hexdigest() == digest


# ------------------------------------------------------------------ synthetic digits
def test_synthetic_is_deterministic_and_balanced():
    a, b, c = SyntheticDigits(300, seed=5), SyntheticDigits(300, seed=5), SyntheticDigits(300, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (300, 28, 28) and a.images.dtype == np.uint8
    assert np.bincount(a.labels, minlength=10).tolist() == [30] * 10
    # the digit sits in the middle: the border rows/cols are nearly empty, the centre is inked
    border = np.concatenate([a.images[:, :2].ravel(), a.images[:, -2:].ravel()])
    assert (border > 128).mean() < 0.01
    assert a.images[:, 6:22, 6:22].astype(float).mean() > 30


def test_synthetic_digits_vary_within_a_class():
    ds = SyntheticDigits(200, seed=0)
    sevens = ds.images[ds.labels == 7].astype(float)
    pairwise = [np.abs(sevens[i] - sevens[j]).mean() for i in range(5) for j in range(i + 1, 5)]
    assert min(pairwise) > 5


def test_synthetic_digits_are_learnable_by_nearest_neighbour():
    """An independent learner (1-nearest-neighbour on pixels) separates the classes on held-out data."""
    train, test = SyntheticDigits(2000, seed=0), SyntheticDigits(300, seed=1)
    x = train.images.reshape(len(train), -1).astype(np.float32) / 255
    y = test.images.reshape(len(test), -1).astype(np.float32) / 255
    dist = (y ** 2).sum(1)[:, None] - 2 * y @ x.T + (x ** 2).sum(1)[None]
    accuracy = (train.labels[dist.argmin(1)] == test.labels).mean()
    assert accuracy > 0.9


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        SyntheticDigits(-1)
    with pytest.raises(ValueError, match="n must be"):
        SyntheticDigits(2.5)


# ------------------------------------------------------------------ loader
def numbered_dataset(n):
    images = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 3, 3), np.uint8)
    return ArrayDataset(images, np.arange(n) % 10)


def ids(batch_images):
    return np.rint(batch_images.numpy()[:, 0, 0, 0] * 255).astype(int).tolist()


def test_loader_covers_each_example_once_per_epoch():
    loader = DataLoader(numbered_dataset(23), batch_size=5, shuffle=True, seed=3)
    seen_epochs = []
    for _ in range(3):
        seen = [i for x, y in loader for i in ids(x)]
        assert sorted(seen) == list(range(23))
        seen_epochs.append(seen)
    assert seen_epochs[0] != seen_epochs[1] != seen_epochs[2]
    again = DataLoader(numbered_dataset(23), batch_size=5, shuffle=True, seed=3)
    assert [i for x, y in again for i in ids(x)] == seen_epochs[0]


def test_loader_no_shuffle_and_drop_last():
    loader = DataLoader(numbered_dataset(11), batch_size=4, drop_last=True)
    batches = [ids(x) for x, y in loader]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(loader) == 2
    x, y = next(iter(DataLoader(numbered_dataset(11), batch_size=4)))
    assert x.shape == (4, 1, 3, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.numpy().tolist() == [0, 1, 2, 3]


def test_loader_resumes_mid_epoch_with_identical_batches():
    aug = transforms.RandomShift(1)
    loader = DataLoader(numbered_dataset(30), batch_size=4, shuffle=True, seed=9, transform=aug)
    full = [(x.numpy(), y.numpy()) for x, y in loader.batches(epoch=2)]
    tail = [(x.numpy(), y.numpy()) for x, y in loader.batches(epoch=2, start_batch=3)]
    assert len(tail) == len(full) - 3
    for (fx, fy), (tx, ty) in zip(full[3:], tail):
        np.testing.assert_array_equal(fx, tx)
        np.testing.assert_array_equal(fy, ty)


def test_loader_falls_back_to_getitem():
    class Plain:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.full((1, 2, 2), i, np.float32), i

    x, y = next(iter(DataLoader(Plain(), batch_size=3)))
    assert x.numpy()[:, 0, 0, 0].tolist() == [0, 1, 2] and y.numpy().tolist() == [0, 1, 2]


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_loader_rejects_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(numbered_dataset(4), batch_size=bad)


# ------------------------------------------------------------------ transforms
def test_pad_and_normalize():
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    padded = transforms.Pad(2)(x)
    assert padded.shape == (2, 1, 32, 32)
    np.testing.assert_array_equal(padded[:, :, 2:30, 2:30], x)
    assert not padded[:, :, :2].any() and not padded[:, :, :, 30:].any()
    assert transforms.Pad(2)(x[0]).shape == (1, 32, 32)
    normed = transforms.Normalize(0.1307, 0.3081)(x)
    np.testing.assert_allclose(normed, (x - 0.1307) / 0.3081, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="std"):
        transforms.Normalize(0.0, 0.0)


def test_random_shift_is_an_exact_translation():
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 8, 8)).astype(np.float32)
    out = transforms.RandomShift(2)(x, np.random.default_rng(1))
    shifts_used = set()
    for img, res in zip(x[:, 0], out[:, 0]):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(img)
                ys, xs = slice(max(dy, 0), 8 + min(dy, 0)), slice(max(dx, 0), 8 + min(dx, 0))
                yo, xo = slice(max(-dy, 0), 8 + min(-dy, 0)), slice(max(-dx, 0), 8 + min(-dx, 0))
                ref[ys, xs] = img[yo, xo]
                if np.array_equal(ref, res):
                    matches.append((dy, dx))
        assert len(matches) == 1
        shifts_used.add(matches[0])
    assert len(shifts_used) > 5
    again = transforms.RandomShift(2)(x, np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)


def test_random_affine_identity_and_seeding():
    x = np.random.default_rng(0).random((4, 1, 10, 10)).astype(np.float32)
    np.testing.assert_allclose(transforms.RandomAffine()(x, np.random.default_rng(0)), x, atol=1e-6)
    aug = transforms.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10)
    a = aug(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, aug(x, np.random.default_rng(5)))
    assert not np.allclose(a, x)


def test_random_affine_scaling_of_a_linear_ramp_is_exact():
    """Bilinear sampling reproduces a linear function exactly, so a zoom by 2 about the
    centre must give the ramp evaluated at centre + (p - centre) / 2."""
    h = w = 9
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (0.3 * xx + 0.7 * yy + 1.0)[None, None]
    out = transforms.RandomAffine(scale=(2.0, 2.0))(ramp, np.random.default_rng(0))[0, 0]
    c = (h - 1) / 2
    expected = 0.3 * (c + (xx - c) / 2) + 0.7 * (c + (yy - c) / 2) + 1.0
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_random_affine_translation_moves_content():
    x = np.zeros((1, 1, 20, 20), np.float32)
    x[0, 0, 10, 10] = 1.0
    aug = transforms.RandomAffine(translate=(0.2, 0.2))
    out = aug(x, np.random.default_rng(2))[0, 0]
    # integer or fractional shift: the mass is preserved (all inside) and the peak moved
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(out.argmax(), out.shape) != (10, 10) or out.max() < 1
