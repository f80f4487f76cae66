"""CIFAR-10 and CIFAR-100 from the official *binary* archives, with an optional download.

The binary version is a plain record format, read without pickle:

* CIFAR-10 (``cifar-10-binary.tar.gz`` -> ``cifar-10-batches-bin/``):
  ``data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin``, each
  record 1 label byte then 3072 pixel bytes (the red, green and blue 32x32
  planes, rows in order);
* CIFAR-100 (``cifar-100-binary.tar.gz`` -> ``cifar-100-binary/``):
  ``train.bin`` and ``test.bin``, each record a coarse label byte, a fine
  label byte, then the same 3072 pixel bytes.

Files are read from the extracted folder, or straight from the ``.tar.gz``
(nothing is unpacked to disk).  ``download=True`` fetches the archive into
``root`` (by default ``$MINIPOOL_DATA/<name>`` or ``~/.cache/minipool/<name>``),
checks its published MD5 before keeping it and writes it atomically.  Without
a network the error says which files to put where by hand.  A truncated or
damaged file raises :class:`CIFARError`, whose message names the file.
"""
import copy
import gzip
import os
import tarfile
import tempfile
import zlib

import numpy as np

from minipool.data.dataset import ArrayDataset
from minipool.data.mnist import (DatasetNotFoundError, _file_digest, default_data_dir,
                                 missing_files_message)

__all__ = ["CIFAR10", "CIFAR100", "CIFARError"]

_PIXELS = 3 * 32 * 32
_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


class CIFARError(ValueError):
    """A CIFAR file or archive is truncated, corrupted or not what was expected."""


class CIFAR10(ArrayDataset):
    """CIFAR-10: 32x32 colour images in 10 classes (50,000 train, 10,000 test).

    ``images`` is uint8 (N, 3, 32, 32) (channels first, as stored), ``labels``
    int64 (N,); ``data`` (N, 32, 32, 3) and ``targets`` are torchvision's views
    of the same.  Indexing gives ``(image, label)`` with the image float32
    (3, 32, 32) in [0, 1] (what torchvision's ``ToTensor`` would give), after
    ``transform`` when one is set; ``target_transform`` maps the label.  Any
    number of records per file is accepted, so reduced subsets work.

    >>> import os, tempfile, numpy as np
    >>> root = os.path.join(tempfile.mkdtemp(), "cifar-10-batches-bin")
    >>> os.makedirs(root)
    >>> record = bytes([3]) + bytes(range(256)) * 12          # label 3 ("cat")
    >>> with open(os.path.join(root, "test_batch.bin"), "wb") as f:
    ...     _ = f.write(record * 2)
    >>> test = CIFAR10(os.path.dirname(root), train=False)
    >>> len(test), test.images.shape, test.classes[test.labels[0]]
    (2, (2, 3, 32, 32), 'cat')
    >>> image, label = test[1]
    >>> image.shape, image.dtype, label
    ((3, 32, 32), dtype('float32'), 3)
    """

    folder = "cifar10"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    archive = "cifar-10-binary.tar.gz"
    # MD5 of the binary archive as published on the dataset page (_PAGE): "CIFAR-10 binary
    # version (suitable for C programs) ... c32a1d4ab5d03f1284b67883e8d87530".
    md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    base_folder = "cifar-10-batches-bin"
    train_files = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    test_files = ("test_batch.bin",)
    # label name -> number of classes, in the order of the label bytes of a record
    label_fields = (("label", 10),)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    download_timeout = 30

    def __init__(self, root=None, train=True, *, download=False, transform=None, target_transform=None):
        self.root = os.path.expanduser(os.fspath(root)) if root is not None else \
            os.path.join(default_data_dir(), self.folder)
        self.train = bool(train)
        for name, fn in (("transform", transform), ("target_transform", target_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{type(self).__name__}: {name} must be callable or None, "
                                f"got {type(fn).__name__}")
        self.transform, self.target_transform = transform, target_transform
        if download:
            self.download()
        names = self.train_files if self.train else self.test_files
        images, fields = self._decode(self._read(names))
        self._set_labels(fields)
        self.images = images
        self.name = "train" if self.train else "test"

    def _set_labels(self, fields):
        self.labels = fields["label"]

    # -- the record format -------------------------------------------------------------
    @classmethod
    def record_size(cls):
        """Bytes per record: the label bytes plus 3072 pixel bytes."""
        return len(cls.label_fields) + _PIXELS

    def _decode(self, sources):
        """Images (N, 3, 32, 32) and {label name: int64 (N,)} from [(where, bytes), ...]."""
        size, n_labels = self.record_size(), len(self.label_fields)
        what = f"{type(self).__name__} binary file"
        layout = (f"{size}-byte records ({n_labels} label byte{'s' if n_labels > 1 else ''} + "
                  f"{_PIXELS} pixel bytes)")
        images, fields = [], {name: [] for name, _ in self.label_fields}
        for where, data in sources:
            if len(data) == 0:
                raise CIFARError(f"{where} is empty: a {what} holds {layout}")
            if len(data) % size:
                raise CIFARError(f"{where}: {len(data)} bytes is not a whole number of {layout}; the "
                                 f"file is truncated or is not a {what} (python and Matlab versions "
                                 f"are not read)")
            records = np.frombuffer(data, np.uint8).reshape(-1, size)
            for k, (name, count) in enumerate(self.label_fields):
                column = records[:, k]
                bad = np.flatnonzero(column >= count)
                if bad.size:
                    raise CIFARError(f"{where}: record {bad[0]} has {name} {column[bad[0]]}, out of "
                                     f"range 0-{count - 1}; the file is corrupted or is not a {what}")
                fields[name].append(column.astype(np.int64))
            images.append(records[:, n_labels:].reshape(-1, 3, 32, 32))
        # one copy, into an array that owns its memory (frombuffer views are read-only)
        return np.concatenate(images), {name: np.concatenate(v) for name, v in fields.items()}

    # -- locating files ----------------------------------------------------------------
    def _folders(self):
        return (self.root, os.path.join(self.root, self.folder))

    def _extracted(self, names):
        """(the folder holding all ``names``, or None; the missing names of the best candidate)."""
        best = list(names)
        for folder in self._folders():
            for where in (os.path.join(folder, self.base_folder), folder):
                missing = [n for n in names if not os.path.isfile(os.path.join(where, n))]
                if not missing:
                    return where, []
                if len(missing) < len(best):
                    best = [os.path.join(where, n) for n in missing]
        return None, best

    @classmethod
    def present_in(cls, root):
        """Whether ``root`` holds this dataset's archive or any of its binary files, in any of the
        places the constructor looks (how ``train --data-dir`` without ``--dataset`` tells it)."""
        root = os.path.expanduser(os.fspath(root))
        names = cls.train_files + cls.test_files
        for folder in (root, os.path.join(root, cls.folder)):
            if os.path.isfile(os.path.join(folder, cls.archive)):
                return True
            for where in (os.path.join(folder, cls.base_folder), folder):
                if any(os.path.isfile(os.path.join(where, n)) for n in names):
                    return True
        return False

    def _archive_path(self):
        for folder in self._folders():
            path = os.path.join(folder, self.archive)
            if os.path.isfile(path):
                return path
        return None

    def _read(self, names):
        """[(where, bytes)] for ``names``: from the extracted folder, else from the archive."""
        where, missing = self._extracted(names)
        if where is not None:
            out = []
            for name in names:
                path = os.path.join(where, name)
                with open(path, "rb") as f:
                    out.append((path, f.read()))
            return out
        archive = self._archive_path()
        if archive is None:
            shown = [m if os.path.isabs(m) else f"{self.base_folder}/{m}" for m in missing]
            raise DatasetNotFoundError(self._missing_message(shown))
        return self._read_archive(archive, names)

    def _read_archive(self, path, names):
        wanted = {f"{self.base_folder}/{n}": n for n in names}
        found = {}
        try:
            # one pass over a stream ("r|"), then on to the end of the gzip data: its CRC is
            # checked only there, and a flipped byte in a stored block is found no other way
            with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as unzipped:
                with tarfile.open(fileobj=unzipped, mode="r|") as tar:
                    for member in tar:
                        key = os.path.normpath(member.name).replace(os.sep, "/")
                        if key in wanted and member.isfile():
                            found[wanted[key]] = tar.extractfile(member).read()
                while unzipped.read(1 << 20):
                    pass
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise CIFARError(f"{path} is not a readable .tar.gz archive (truncated or damaged?): "
                             f"{e}") from None
        missing = [key for key, n in wanted.items() if n not in found]
        if missing:
            raise CIFARError(f"{path} does not hold {', '.join(missing)}; is it {self.archive} "
                             f"(the binary version, from {_PAGE})?")
        return [(f"{path}:{self.base_folder}/{n}", found[n]) for n in names]

    def _missing_message(self, names, reason=""):
        return missing_files_message(
            self, names, reason, f"{self.archive} (the binary version, published at {self.url}; "
                                 f"the archive itself or its extracted {self.base_folder} folder)",
            "it")

    # -- download ----------------------------------------------------------------------
    def download(self):
        """Fetch the archive into ``root`` and verify its MD5, unless the files are already there."""
        have_all = all(self._extracted(names)[0] is not None for names in (self.train_files, self.test_files))
        if have_all or self._archive_path() is not None:
            return
        os.makedirs(self.root, exist_ok=True)
        import urllib.request  # here, not at import time: it pulls in ssl and http

        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{self.archive}.", suffix=".part")
        error = None
        try:
            with os.fdopen(fd, "wb") as out, \
                    urllib.request.urlopen(self.url, timeout=self.download_timeout) as response:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
            actual = _file_digest(tmp, "md5")
            if actual == self.md5:
                os.replace(tmp, os.path.join(self.root, self.archive))
                return
            error = f"{self.url}: checksum mismatch (md5 {actual}, expected {self.md5})"
        except OSError as e:  # URLError, timeouts and HTTP errors are OSErrors
            error = f"{self.url}: {getattr(e, 'reason', e)}"
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise DatasetNotFoundError(self._missing_message([self.archive], reason="Download failed:\n  " + error))

    # -- the dataset API ---------------------------------------------------------------
    @property
    def image_shape(self):
        return self.images.shape[1:]

    @property
    def data(self):
        """The images as (N, 32, 32, 3) uint8, torchvision's layout (a view, no copy)."""
        return self.images.transpose(0, 2, 3, 1)

    @property
    def targets(self):
        """The labels as a list of ints, as torchvision holds them."""
        return self.labels.tolist()

    def _target(self, label):
        label = tuple(int(v) for v in label) if np.ndim(label) else int(label)
        return self.target_transform(label) if self.target_transform is not None else label

    def __getitem__(self, index):
        image = self.images[index].astype(np.float32) / np.float32(255)
        if self.transform is not None:
            image = self.transform(image)
        return image, self._target(self.labels[index])

    def get_batch(self, indices):
        """Images as float32 (n, 3, 32, 32) in [0, 1] and int64 labels for ``indices``.

        ``transform`` (when set) draws from its own generator here; the
        reproducible place for augmentation is ``DataLoader(transform=...)``.
        """
        images = self.images[indices].astype(np.float32)
        images *= np.float32(1 / 255)
        if self.transform is not None:
            images = self.transform(images)
        labels = self.labels[indices]
        if self.target_transform is not None:
            labels = np.asarray([self._target(v) for v in labels])
        return images, labels

    def subset(self, indices, name=None):
        """A new dataset holding the examples at ``indices`` (copied), same classes and transforms."""
        indices = np.asarray(indices)
        out = copy.copy(self)
        for attr in ("images", "labels", "fine_labels", "coarse_labels"):
            if hasattr(self, attr):
                setattr(out, attr, getattr(self, attr)[indices])
        out.name = name or f"{self.name}[subset]"
        return out

    @classmethod
    def from_arrays(cls, images, labels, name):
        """A dataset of this class around in-memory (N, 3, H, W) uint8 images and (N,) labels."""
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"{name}: images must have shape (N, C, H, W), got {images.shape}")
        if labels.shape[:1] != images.shape[:1]:
            raise ValueError(f"{name}: labels must have {images.shape[0]} rows to match the images, "
                             f"got shape {labels.shape}")
        ds = cls.__new__(cls)
        ds.images, ds.labels, ds.name = images, labels.astype(np.int64, copy=False), name
        ds.root, ds.train, ds.transform, ds.target_transform = None, None, None, None
        return ds

    def mean_std(self):
        """Per-channel mean and standard deviation of the pixels, in [0, 1] units (for Normalize).

        Computed from each channel's 256-bin histogram: exact, and no float copy of the images.
        """
        if len(self) == 0:
            raise ValueError(f"{self.name}: mean_std of an empty dataset")
        values = np.arange(256) / 255.0
        means, stds = [], []
        for c in range(self.images.shape[1]):
            counts = np.bincount(self.images[:, c].ravel(), minlength=256).astype(np.float64)
            total = counts.sum()
            mean = float(counts @ values / total)
            means.append(mean)
            stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / total)))
        return means, stds

    def __repr__(self):
        return f"{type(self).__name__}({self.name}: {len(self)} images of {tuple(self.image_shape)})"


class CIFAR100(CIFAR10):
    """CIFAR-100: 32x32 colour images in 100 fine classes grouped in 20 coarse ones.

    ``label`` picks ``labels``: ``"fine"`` (default, torchvision's only
    choice), ``"coarse"``, or ``"both"`` (labels (N, 2): fine, coarse; an item's
    label is the pair).  ``fine_labels`` and ``coarse_labels`` are always there;
    ``classes`` names the chosen labels (the fine names for ``"both"``),
    ``fine_classes`` and ``coarse_classes`` name each.
    """

    folder = "cifar100"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
    archive = "cifar-100-binary.tar.gz"
    # MD5 of the binary archive as listed on the dataset page (_PAGE), "CIFAR-100 binary version
    # (suitable for C programs)"; the stored copy of the page seen here was cut before that
    # table, so the value was confirmed from copies of the table and independent loaders.
    md5 = "03b5dce01913d631647c71ecec9e9cb8"
    base_folder = "cifar-100-binary"
    train_files = ("train.bin",)
    test_files = ("test.bin",)
    label_fields = (("coarse label", 20), ("fine label", 100))
    fine_classes = (
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
        "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
        "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
        "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
        "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
        "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
        "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
        "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
        "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm")
    coarse_classes = (
        "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
        "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
        "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
        "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
        "vehicles_1", "vehicles_2")
    classes = fine_classes
    LABELS = ("fine", "coarse", "both")

    def __init__(self, root=None, train=True, *, download=False, transform=None, target_transform=None,
                 label="fine"):
        if label not in self.LABELS:
            raise ValueError(f"CIFAR100: label must be one of {', '.join(map(repr, self.LABELS))}, "
                             f"got {label!r}")
        self.label = label
        super().__init__(root, train, download=download, transform=transform,
                         target_transform=target_transform)

    def _set_labels(self, fields):
        self.coarse_labels, self.fine_labels = fields["coarse label"], fields["fine label"]
        if self.label == "fine":
            self.labels, self.classes = self.fine_labels, self.fine_classes
        elif self.label == "coarse":
            self.labels, self.classes = self.coarse_labels, self.coarse_classes
        else:
            self.labels = np.stack([self.fine_labels, self.coarse_labels], axis=1)
            self.classes = self.fine_classes
