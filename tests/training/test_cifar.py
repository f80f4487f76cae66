"""CIFAR-10/100 binary files (folder and .tar.gz), download, damaged files; RandomCrop,
RandomHorizontalFlip, per-channel Normalize and the generator they draw from.

The real archives cannot be fetched here: every test writes files in the official binary
format itself (a few records), byte by byte, independently of the reader.
"""
import hashlib
import io
import os
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipool import _random
from minipool.data import (CIFAR10, CIFAR100, CIFARError, DataLoader, DatasetNotFoundError,
                           transforms)
from tests.training.training_checks import check_offline_download_fails_with_instructions

# ------------------------------------------------------------------ writing the official format


def random_images(rng, n):
    return rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)


def records(images, *label_columns):
    """Records as the dataset page describes them: the label byte(s), then 1024 red, 1024 green
    and 1024 blue bytes, each plane row after row (built pixel by pixel, not with tobytes)."""
    out = bytearray()
    for k, image in enumerate(images):
        out += bytes(int(col[k]) for col in label_columns)
        for channel in range(3):
            for row in range(32):
                out += bytes(int(v) for v in image[channel, row])
    return bytes(out)


def make_cifar10(root, counts=(3, 2, 4, 1, 2), n_test=3, seed=0, folder=True):
    """data_batch_1..5.bin and test_batch.bin under root/cifar-10-batches-bin (or root itself)."""
    rng = np.random.default_rng(seed)
    where = root / "cifar-10-batches-bin" if folder else root
    where.mkdir(parents=True, exist_ok=True)
    parts = {}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name, n in zip(names, list(counts) + [n_test]):
        images, labels = random_images(rng, n), rng.integers(0, 10, n)
        (where / name).write_bytes(records(images, labels))
        parts[name] = (images, labels)
    train = tuple(np.concatenate([parts[n][k] for n in names[:5]]) for k in range(2))
    return {"train": train, "test": parts["test_batch.bin"]}


def make_cifar100(root, n_train=5, n_test=3, seed=1):
    rng = np.random.default_rng(seed)
    where = root / "cifar-100-binary"
    where.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, coarse, fine = random_images(rng, n), rng.integers(0, 20, n), rng.integers(0, 100, n)
        (where / f"{split}.bin").write_bytes(records(images, coarse, fine))
        out[split] = (images, coarse, fine)
    return out


def tar_gz(folder, archive, prefix=""):
    """The folder's files packed as <prefix><folder name>/<file> in a .tar.gz."""
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(os.listdir(folder)):
            tar.add(folder / name, arcname=f"{prefix}{folder.name}/{name}")
    return archive


# ------------------------------------------------------------------ reading
@pytest.mark.parametrize("folder", [True, False])
def test_cifar10_reads_both_splits_from_the_folder(tmp_path, folder):
    arrays = make_cifar10(tmp_path, folder=folder)
    for train, split in ((True, "train"), (False, "test")):
        ds = CIFAR10(tmp_path, train=train)
        images, labels = arrays[split]
        assert len(ds) == len(labels) and ds.images.dtype == np.uint8
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.labels.dtype == np.int64 and ds.images.flags.writeable
        image, label = ds[1]
        assert image.shape == (3, 32, 32) and image.dtype == np.float32 and label == labels[1]
        np.testing.assert_allclose(image, images[1] / 255.0, rtol=1e-6)


def test_plane_order_is_red_green_blue_row_major(tmp_path):
    """One marked byte per plane at a known offset of the record (the layout of the dataset page)."""
    record = bytearray(1 + 3072)
    record[0] = 7
    record[1 + 0 * 1024 + 2 * 32 + 5] = 11    # red, row 2, column 5
    record[1 + 1 * 1024 + 31 * 32 + 0] = 22   # green, row 31, column 0
    record[1 + 2 * 1024 + 0 * 32 + 31] = 33   # blue, row 0, column 31
    (tmp_path / "test_batch.bin").write_bytes(bytes(record))
    ds = CIFAR10(tmp_path, train=False)
    assert ds.images[0, 0, 2, 5] == 11 and ds.images[0, 1, 31, 0] == 22 and ds.images[0, 2, 0, 31] == 33
    assert int(ds.images.sum()) == 66 and ds.labels.tolist() == [7]
    # torchvision's layouts: data is (N, H, W, C), targets a list
    assert ds.data.shape == (1, 32, 32, 3) and ds.data[0, 2, 5, 0] == 11 and ds.data[0, 0, 31, 2] == 33
    assert ds.targets == [7]


@pytest.mark.parametrize("prefix", ["", "./"])
def test_cifar10_reads_straight_from_the_archive(tmp_path, prefix):
    src = tmp_path / "src"
    arrays = make_cifar10(src, seed=4)
    root = tmp_path / "root"
    root.mkdir()
    tar_gz(src / "cifar-10-batches-bin", root / "cifar-10-binary.tar.gz", prefix)
    for train, split in ((True, "train"), (False, "test")):
        ds = CIFAR10(root, train=train)
        np.testing.assert_array_equal(ds.images, arrays[split][0])
        np.testing.assert_array_equal(ds.labels, arrays[split][1])
    assert os.listdir(root) == ["cifar-10-binary.tar.gz"], "nothing is unpacked"


def test_cifar10_finds_the_default_layout_subfolder(tmp_path, monkeypatch):
    arrays = make_cifar10(tmp_path / "data" / "cifar10")
    monkeypatch.setenv("MINIPOOL_DATA", str(tmp_path / "data"))
    ds = CIFAR10(train=False)
    assert ds.root == str(tmp_path / "data" / "cifar10")
    np.testing.assert_array_equal(ds.images, arrays["test"][0])
    np.testing.assert_array_equal(CIFAR10(tmp_path / "data", train=False).labels, arrays["test"][1])


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_fine_coarse_and_both(tmp_path, archive):
    arrays = make_cifar100(tmp_path / "src")
    root = tmp_path / "src"
    if archive:
        root = tmp_path / "root"
        root.mkdir()
        tar_gz(tmp_path / "src" / "cifar-100-binary", root / "cifar-100-binary.tar.gz")
    for train, split in ((True, "train"), (False, "test")):
        images, coarse, fine = arrays[split]
        ds = CIFAR100(root, train=train)
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, fine)
        np.testing.assert_array_equal(ds.coarse_labels, coarse)
        assert ds.classes == CIFAR100.classes and len(ds.classes) == 100
        cds = CIFAR100(root, train=train, label="coarse")
        np.testing.assert_array_equal(cds.labels, coarse)
        assert len(cds.classes) == 20 and cds[0][1] == coarse[0]
        both = CIFAR100(root, train=train, label="both")
        assert both.labels.shape == (len(fine), 2)
        assert both[2][1] == (fine[2], coarse[2])
        np.testing.assert_array_equal(both.get_batch(np.array([0, 2]))[1], [[fine[0], coarse[0]],
                                                                            [fine[2], coarse[2]]])


def test_class_names_as_torchvision():
    assert CIFAR10.classes == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                               "ship", "truck")
    fine, coarse = CIFAR100.fine_classes, CIFAR100.coarse_classes
    assert len(set(fine)) == 100 and len(set(coarse)) == 20
    # torchvision's order is the alphabetical one of the dataset's meta file
    assert list(fine) == sorted(fine) and list(coarse) == sorted(coarse)
    assert fine[:4] == ("apple", "aquarium_fish", "baby", "bear") and fine[-1] == "worm"
    assert "lawn_mower" in fine and "maple_tree" in fine and "large_man-made_outdoor_things" in coarse
    # the superclass table of the dataset page, as its singular names
    for name in ("beaver", "dolphin", "otter", "seal", "whale", "orchid", "poppy", "rose", "sunflower",
                 "tulip", "sweet_pepper", "pickup_truck", "streetcar", "willow_tree"):
        assert name in fine


def test_dataset_api_batches_subset_mean_std(tmp_path):
    arrays = make_cifar10(tmp_path, counts=(5, 5, 5, 5, 4))
    ds = CIFAR10(tmp_path)
    images, labels = arrays["train"]
    idx = np.array([3, 0, 17])
    x, y = ds.get_batch(idx)
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, images[idx] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels[idx])
    sub = ds.subset([1, 2, 3], "part")
    assert isinstance(sub, CIFAR10) and len(sub) == 3 and sub.classes == ds.classes
    np.testing.assert_array_equal(sub.images, images[1:4])
    assert sub.image_shape == (3, 32, 32) and "part" in repr(sub)
    # per-channel statistics, computed here in float64 the plain way
    mean, std = ds.mean_std()
    pixels = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=(0, 2, 3)), rtol=1e-12)
    loader = DataLoader(ds, batch_size=10, shuffle=True, seed=2)
    seen = np.concatenate([yb.numpy() for _, yb in loader])
    assert sorted(seen.tolist()) == sorted(labels.tolist())
    xb, _ = next(iter(loader))
    assert xb.shape == (10, 3, 32, 32)


def test_transform_and_target_transform(tmp_path):
    arrays = make_cifar10(tmp_path)
    ds = CIFAR10(tmp_path, train=False, transform=transforms.Normalize(0.5, 0.5),
                 target_transform=lambda y: y + 100)
    image, label = ds[0]
    np.testing.assert_allclose(image, (arrays["test"][0][0] / 255.0 - 0.5) / 0.5, rtol=1e-5, atol=1e-6)
    assert label == arrays["test"][1][0] + 100
    x, y = ds.get_batch(np.arange(2))
    np.testing.assert_array_equal(y, arrays["test"][1][:2] + 100)
    assert x.min() < 0  # normalised
    with pytest.raises(TypeError, match="transform must be callable"):
        CIFAR10(tmp_path, train=False, transform="flip")
    with pytest.raises(ValueError, match="label must be one of"):
        CIFAR100(tmp_path, label="super")


def test_arguments_after_train_are_keyword_only(tmp_path):
    """torchvision's third positional argument is transform, minipool's MNIST's is download:
    neither is guessed."""
    make_cifar10(tmp_path)
    with pytest.raises(TypeError):
        CIFAR10(tmp_path, False, None)


# ------------------------------------------------------------------ missing and damaged files
def test_missing_files_say_where_to_put_them(tmp_path):
    root = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(root, train=True)
    message = str(info.value)
    assert str(root) in message and "does not exist" in message and "data_batch_1.bin" in message
    assert "cifar-10-binary.tar.gz" in message and "--download" in message and "copy" in message
    with pytest.raises(DatasetNotFoundError, match="cifar-100-binary.tar.gz"):
        CIFAR100(root, train=False)


def test_a_partial_folder_names_the_missing_batch(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-bin" / "data_batch_4.bin").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(tmp_path, train=True)
    assert "data_batch_4.bin" in str(info.value) and "data_batch_3.bin" not in str(info.value)
    assert len(CIFAR10(tmp_path, train=False)) == 3  # the test split is whole


@pytest.mark.parametrize("damage,match", [
    (lambda b: b[:-1], "not a whole number of 3073-byte records"),
    (lambda b: b + b"\0" * 100, "not a whole number"),
    (lambda b: b"", "is empty"),
    (lambda b: bytes([10]) + b[1:], "record 0 has label 10, out of range 0-9"),
])
def test_damaged_batch_files_raise_naming_the_file(tmp_path, damage, match):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CIFARError, match=match) as info:
        CIFAR10(tmp_path, train=False)
    assert str(path) in str(info.value)


def test_label_errors_name_the_record_and_field(tmp_path):
    make_cifar100(tmp_path)
    path = tmp_path / "cifar-100-binary" / "train.bin"
    raw = bytearray(path.read_bytes())
    raw[2 * 3074 + 1] = 100  # fine label of record 2
    path.write_bytes(bytes(raw))
    with pytest.raises(CIFARError, match=r"record 2 has fine label 100, out of range 0-99"):
        CIFAR100(tmp_path)
    raw[2 * 3074 + 1], raw[3 * 3074] = 5, 20  # coarse label of record 3
    path.write_bytes(bytes(raw))
    with pytest.raises(CIFARError, match=r"record 3 has coarse label 20, out of range 0-19"):
        CIFAR100(tmp_path)


def test_cifar100_files_are_not_read_as_cifar10(tmp_path):
    make_cifar100(tmp_path, n_test=3)
    (tmp_path / "test_batch.bin").write_bytes((tmp_path / "cifar-100-binary" / "test.bin").read_bytes())
    with pytest.raises(CIFARError, match="3073-byte records"):
        CIFAR10(tmp_path, train=False)


def test_damaged_archives_raise_naming_the_archive(tmp_path):
    make_cifar10(tmp_path / "src")
    whole = tar_gz(tmp_path / "src" / "cifar-10-batches-bin", tmp_path / "whole.tar.gz").read_bytes()
    root = tmp_path / "root"
    root.mkdir()
    archive = root / "cifar-10-binary.tar.gz"
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0xFF
    for damaged in (whole[:len(whole) // 2], bytes(flipped), b"not a gzip file at all"):
        archive.write_bytes(damaged)
        with pytest.raises(CIFARError, match="not a readable .tar.gz") as info:
            CIFAR10(root, train=False)
        assert str(archive) in str(info.value)
    # a sound archive without the wanted member
    with tarfile.open(archive, "w:gz") as tar:
        info_ = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
        tar.addfile(info_, io.BytesIO(b""))
    with pytest.raises(CIFARError, match="does not hold cifar-10-batches-bin/test_batch.bin"):
        CIFAR10(root, train=False)
    # a damaged member inside a sound archive names the member
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cifar-10-batches-bin").mkdir()
    (tmp_path / "bad" / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\1" * 3072)
    tar_gz(tmp_path / "bad" / "cifar-10-batches-bin", archive)
    with pytest.raises(CIFARError, match="test_batch.bin: 3072 bytes") as info:
        CIFAR10(root, train=False)
    assert str(archive) in str(info.value)


# ------------------------------------------------------------------ download
def test_download_offline_fails_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-binary.tar.gz")
    monkeypatch.setattr(CIFAR10, "download_timeout", 5)
    check_offline_download_fails_with_instructions(
        lambda cache: CIFAR10(cache, train=False, download=True), tmp_path / "cache")


def _serve_archive(tmp_path, monkeypatch, cls=CIFAR10):
    src = tmp_path / "src"
    if cls is CIFAR10:
        arrays = make_cifar10(src, seed=9)
        archive = tar_gz(src / "cifar-10-batches-bin", tmp_path / cls.archive)
    else:
        arrays = make_cifar100(src, seed=9)
        archive = tar_gz(src / "cifar-100-binary", tmp_path / cls.archive)
    monkeypatch.setattr(cls, "url", archive.as_uri())
    return arrays, hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.mark.parametrize("cls", [CIFAR10, CIFAR100])
def test_download_verifies_and_stores(tmp_path, monkeypatch, cls):
    arrays, md5 = _serve_archive(tmp_path, monkeypatch, cls)
    monkeypatch.setattr(cls, "md5", md5)
    monkeypatch.setenv("MINIPOOL_DATA", str(tmp_path / "cache"))
    ds = cls(train=False, download=True)
    assert ds.root == str(tmp_path / "cache" / cls.folder)
    np.testing.assert_array_equal(ds.images, arrays["test"][0])
    assert os.listdir(ds.root) == [cls.archive]
    # present now: a second download=True does not touch the network
    monkeypatch.setattr(cls, "url", "http://127.0.0.1:9/gone.tar.gz")
    assert len(cls(train=True, download=True)) == len(arrays["train"][0])


def test_download_rejects_a_bad_checksum(tmp_path, monkeypatch):
    _serve_archive(tmp_path, monkeypatch)
    monkeypatch.setattr(CIFAR10, "md5", "0" * 32)
    root = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        CIFAR10(root, train=False, download=True)
    assert os.listdir(root) == []


def test_published_checksums_are_well_formed():
    for cls in (CIFAR10, CIFAR100):
        assert len(cls.md5) == 32 and int(cls.md5, 16) >= 0
        assert cls.url.startswith("https://www.cs.toronto.edu/~kriz/") and cls.url.endswith(cls.archive)
        assert "binary" in cls.archive


# ------------------------------------------------------------------ RandomCrop
def padded_reference(image, left, top, right, bottom, fill=0.0):
    """Zero (fill) padding with loops, for one (C, H, W) image."""
    c, h, w = image.shape
    out = np.full((c, h + top + bottom, w + left + right), fill, image.dtype)
    for ch in range(c):
        for r in range(h):
            for col in range(w):
                out[ch, r + top, col + left] = image[ch, r, col]
    return out


def window_positions(big, small):
    """Every (top, left) where ``small`` sits in ``big`` (exact match)."""
    th, tw = small.shape[-2:]
    return [(r, c) for r in range(big.shape[-2] - th + 1) for c in range(big.shape[-1] - tw + 1)
            if np.array_equal(big[..., r:r + th, c:c + tw], small)]


def test_random_crop_is_a_window_of_the_padded_image():
    rng = np.random.default_rng(0)
    x = rng.random((40, 3, 8, 8)).astype(np.float32)
    out = transforms.RandomCrop(8, padding=2)(x, np.random.default_rng(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    corners = set()
    for image, crop in zip(x, out):
        positions = window_positions(padded_reference(image, 2, 2, 2, 2), crop)
        assert positions, "every crop is a window of the zero-padded image"
        corners.update(positions)
    assert len(corners) > 12, "the offsets vary per image over the 5x5 positions"


def test_random_crop_covers_every_position_uniformly():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4).repeat(5000, axis=0)
    out = transforms.RandomCrop(2)(x, np.random.default_rng(1))
    # the top-left pixel of the crop identifies its position (values are distinct)
    counts = np.bincount(out[:, 0, 0, 0].astype(int), minlength=16).reshape(4, 4)
    assert (counts[3, :] == 0).all() and (counts[:, 3] == 0).all()
    assert counts[:3, :3].min() > 5000 / 9 * 0.8 and counts[:3, :3].max() < 5000 / 9 * 1.2


@pytest.mark.parametrize("padding,sides", [(3, (3, 3, 3, 3)), ((1, 2), (1, 2, 1, 2)),
                                           ((1, 0, 2, 3), (1, 0, 2, 3)), ([2], (2, 2, 2, 2))])
def test_random_crop_padding_forms(padding, sides):
    x = np.random.default_rng(2).random((2, 2, 5, 6)).astype(np.float32)
    left, top, right, bottom = sides
    size = (5 + top + bottom, 6 + left + right)
    out = transforms.RandomCrop(size, padding=padding, fill=0.25)(x)  # whole padded image: no draw
    for image, crop in zip(x, out):
        np.testing.assert_array_equal(crop, padded_reference(image, *sides, fill=0.25))


def test_random_crop_per_channel_fill_and_uint8():
    x = np.full((1, 3, 2, 2), 9, np.uint8)
    out = transforms.RandomCrop(4, padding=1, fill=(1, 2, 3))(x)
    assert out.dtype == np.uint8
    for ch, v in enumerate((1, 2, 3)):
        assert out[0, ch, 0, 0] == v and out[0, ch, 1, 1] == 9


@pytest.mark.parametrize("mode,torch_mode", [("constant", "constant"), ("edge", "replicate"),
                                              ("reflect", "reflect")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_crop_padding_modes_match_torch_pad(mode, torch_mode, dtype):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(2, 3, 6, 7)).astype(dtype)
    pads = (2, 1, 3, 2)  # left, top, right, bottom
    out = transforms.RandomCrop((6 + 1 + 2, 7 + 2 + 3), padding=pads, padding_mode=mode)(x)
    expected = torch.nn.functional.pad(torch.from_numpy(x), (2, 3, 1, 2), mode=torch_mode).numpy()
    np.testing.assert_array_equal(out, expected)


def test_random_crop_symmetric_repeats_the_edge():
    x = np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3)
    out = transforms.RandomCrop((1, 7), padding=(2, 0), padding_mode="symmetric")(x)
    np.testing.assert_array_equal(out[0, 0, 0], [1, 0, 0, 1, 2, 2, 1])


def test_random_crop_pad_if_needed_as_torchvision():
    # torchvision pads by the whole shortfall on both sides, then crops at random
    x = np.ones((30, 1, 3, 5), np.float32)
    out = transforms.RandomCrop((5, 5), pad_if_needed=True)(x, np.random.default_rng(0))
    assert out.shape == (30, 1, 5, 5)
    for crop in out:
        assert window_positions(padded_reference(x[0], 0, 2, 0, 2), crop)
    with pytest.raises(ValueError, match=r"crop size \(5, 5\) is larger than the \(padded\) image size"):
        transforms.RandomCrop(5)(x)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       pad=st.integers(0, 3), data=st.data())
def test_random_crop_property(n, c, h, w, pad, data):
    th = data.draw(st.integers(1, h + 2 * pad))
    tw = data.draw(st.integers(1, w + 2 * pad))
    x = np.random.default_rng(n * 100 + h).normal(size=(n, c, h, w)).astype(np.float32)
    x.flat[0] = np.nan if data.draw(st.booleans()) else x.flat[0]
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    t = transforms.RandomCrop((th, tw), padding=pad)
    out = t(x, np.random.default_rng(seed))
    assert out.shape == (n, c, th, tw)
    np.testing.assert_array_equal(out, t(x, np.random.default_rng(seed)))  # reproducible
    for image, crop in zip(np.nan_to_num(x, nan=-7.0), np.nan_to_num(out, nan=-7.0)):
        assert window_positions(padded_reference(image, pad, pad, pad, pad), crop)


# ------------------------------------------------------------------ RandomHorizontalFlip
def test_horizontal_flip_per_image_and_probability():
    x = np.random.default_rng(0).random((4000, 2, 3, 4)).astype(np.float32)
    out = transforms.RandomHorizontalFlip(0.3)(x, np.random.default_rng(1))
    flipped = np.array([np.array_equal(o, i[:, :, ::-1]) for o, i in zip(out, x)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert (flipped ^ kept).all(), "each image is itself or its mirror"
    assert abs(flipped.mean() - 0.3) < 0.03
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(0.0)(x), x)
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(1)(x), x[..., ::-1])
    single = transforms.RandomHorizontalFlip(1.0)(x[0])
    assert single.shape == x[0].shape and np.array_equal(single, x[0][..., ::-1])


def test_horizontal_flip_matches_torch_flip():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).normal(size=(3, 3, 5, 4))
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(1.0)(x),
                                  torch.flip(torch.from_numpy(x), dims=[-1]).numpy())


# ------------------------------------------------------------------ Normalize per channel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_per_channel_matches_loops_and_torch(dtype):
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    x = np.random.default_rng(4).random((2, 3, 4, 5)).astype(dtype)
    out = transforms.Normalize(mean, std)(x)
    assert out.dtype == np.float32
    expected = np.empty_like(x, dtype=np.float32)
    for i in range(2):
        for ch in range(3):
            expected[i, ch] = (x[i, ch].astype(np.float32) - np.float32(mean[ch])) / np.float32(std[ch])
    np.testing.assert_array_equal(out, expected)
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x.astype(np.float32))
    ref = (t - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6, atol=1e-7)


def test_normalize_inplace_and_channel_mismatch():
    x = np.random.default_rng(5).random((2, 3, 2, 2)).astype(np.float32)
    before = x.copy()
    t = transforms.Normalize((0.1, 0.2, 0.3), (0.5, 0.5, 0.5), inplace=True)
    out = t(x)
    assert out is x
    np.testing.assert_array_equal(out, transforms.Normalize((0.1, 0.2, 0.3), (0.5, 0.5, 0.5))(before))
    with pytest.raises(ValueError, match="3 mean values for images with 1 channels"):
        transforms.Normalize((0.1, 0.2, 0.3), (0.5, 0.5, 0.5))(np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="same length"):
        transforms.Normalize((0.1, 0.2, 0.3), (0.5, 0.5))
    with pytest.raises(ValueError, match="mean must be finite"):
        transforms.Normalize(np.nan, 1.0)
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        transforms.Normalize((0.5, 0.5, 0.5), (0.2, 0.0, 0.2))


# ------------------------------------------------------------------ generators
@pytest.mark.parametrize("make", [lambda **k: transforms.RandomCrop(6, padding=2, **k),
                                  lambda **k: transforms.RandomHorizontalFlip(**k),
                                  lambda **k: transforms.RandomShift(2, **k),
                                  lambda **k: transforms.RandomAffine(degrees=20, **k)])
def test_random_transforms_draw_from_the_shared_or_given_generator(make):
    x = np.random.default_rng(6).random((16, 1, 6, 6)).astype(np.float32)
    t = make()
    _random.manual_seed(11)
    a = t(x)
    _random.manual_seed(11)
    np.testing.assert_array_equal(a, t(x))  # shared default generator, reseeded
    _random.manual_seed(12)
    assert not np.array_equal(a, t(x))
    own = make(generator=np.random.default_rng(3))
    b = own(x)
    np.testing.assert_array_equal(b, make(generator=np.random.default_rng(3))(x))
    # a generator passed at call time (the DataLoader's) wins over the transform's own
    np.testing.assert_array_equal(own(x, np.random.default_rng(8)), make()(x, np.random.default_rng(8)))
    # an int seed: a generator of its own, made once (a sequence, reproducible from the seed)
    seeded, again = make(generator=42), make(generator=42)
    first = seeded(x)
    np.testing.assert_array_equal(first, again(x))
    assert not np.array_equal(first, seeded(x)), "the seeded generator advances between calls"
    with pytest.raises(TypeError, match="generator must be None, an int seed, an mp.Generator or a numpy.random.Generator"):
        make(generator="42")
    with pytest.raises(ValueError, match="generator seed must be >= 0"):
        make(generator=-1)


@pytest.mark.parametrize("build,match", [
    (lambda: transforms.RandomCrop(0), "size must be an int >= 1"),
    (lambda: transforms.RandomCrop((4, 4, 4)), "size must be"),
    (lambda: transforms.RandomCrop(4.5), "size must be"),
    (lambda: transforms.RandomCrop(4, padding=-1), "padding must be"),
    (lambda: transforms.RandomCrop(4, padding=(1, 2, 3)), "padding must be"),
    (lambda: transforms.RandomCrop(4, padding_mode="circular"), "padding_mode must be one of"),
    (lambda: transforms.RandomCrop(4, fill=np.inf), "fill must be a finite number"),
    (lambda: transforms.RandomHorizontalFlip(1.5), r"p must be a probability in \[0, 1\]"),
    (lambda: transforms.RandomHorizontalFlip(-0.1), "p must be"),
    (lambda: transforms.RandomHorizontalFlip(True), "p must be"),
])
def test_bad_transform_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_transform_inputs():
    x = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match="reflect padding"):
        transforms.RandomCrop(4, padding=4, padding_mode="reflect")(x)
    with pytest.raises(ValueError, match="2 fill values for images with 3 channels"):
        transforms.RandomCrop(4, padding=1, fill=(0, 1))(x)
    with pytest.raises(ValueError, match=r"shaped \(n, C, H, W\)"):
        transforms.RandomHorizontalFlip()(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"shaped \(n, C, H, W\)"):
        transforms.RandomCrop(2)(np.zeros((4, 4)))
