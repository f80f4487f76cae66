"""MNIST and Fashion-MNIST from the standard IDX files, with an optional download.

Files are looked up in ``root`` (plain or ``.gz``).  ``download=True`` fetches
the missing ones into ``root`` (by default ``$MINIPOOL_DATA/<name>`` or
``~/.cache/minipool/<name>``), checks each against its published MD5 before
keeping it, and writes it atomically.  Without a network the error says which
files to put where by hand.
"""
import hashlib
import os
import tempfile

import numpy as np

from minipool.data.dataset import ArrayDataset
from minipool.data.idx import IDXError, read_idx

__all__ = ["MNIST", "FashionMNIST", "DatasetNotFoundError", "default_data_dir"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are not there and could not be downloaded."""


def default_data_dir():
    """Where downloads go: ``$MINIPOOL_DATA``, else ``~/.cache/minipool``."""
    env = os.environ.get("MINIPOOL_DATA", "").strip()
    return os.path.expanduser(env) if env else os.path.join(os.path.expanduser("~"), ".cache", "minipool")


def _file_digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_files_message(dataset, names, reason, copy_what, fetched):
    """What ``dataset`` (MNIST, CIFAR10, ...) did not find in its root (``names``, or why:
    ``reason``) and how to fix it: copy ``copy_what`` there, download (``fetched``: "it" or
    "them"; not offered when a ``reason`` says the files are there but unusable), or point
    root= elsewhere."""
    root = dataset.root
    where = root if os.path.isdir(root) else f"{root} (does not exist)"
    text = f"{type(dataset).__name__} files not found in {where}: {', '.join(names)}."
    if reason:
        text += " " + reason
    fetch = "" if reason else f" or pass --download (download=True) to fetch {fetched} there,"
    return (text + f"\nTo fix it, copy {copy_what} into {root},{fetch} or point --data-dir "
                   f"(root=) at a folder that has them.")


class MNIST(ArrayDataset):
    """The MNIST handwritten digits: 28x28 uint8 images, labels 0-9.

    The number of images comes from the IDX headers, so reduced subsets work.

    >>> import os, tempfile, numpy as np
    >>> from minipool.data import write_idx
    >>> root = tempfile.mkdtemp()
    >>> write_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"), np.zeros((3, 28, 28), np.uint8))
    >>> write_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"), np.array([7, 2, 1], np.uint8))
    >>> test = MNIST(root, train=False)
    >>> len(test), test.images.shape[1:], test[0][1]
    (3, (28, 28), 7)
    """

    folder = "mnist"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    # file name -> published MD5 of the official gzip file
    resources = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    download_timeout = 30

    def __init__(self, root=None, train=True, download=False):
        self.root = os.path.expanduser(os.fspath(root)) if root is not None else \
            os.path.join(default_data_dir(), self.folder)
        self.train = bool(train)
        split = "train" if self.train else "t10k"
        wanted = [f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"]
        if download:
            self.download(wanted)
        image_path, label_path = (self._locate(name) for name in wanted)
        images = read_idx(image_path, expect_ndim=3)
        labels = read_idx(label_path, expect_ndim=1)
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise IDXError(f"{image_path} / {label_path}: expected uint8 images and labels, "
                           f"got {images.dtype} and {labels.dtype}")
        if images.shape[0] != labels.shape[0]:
            raise IDXError(f"{image_path} holds {images.shape[0]} images but {label_path} holds "
                           f"{labels.shape[0]} labels")
        if labels.size and labels.max() >= len(self.classes):
            raise IDXError(f"{label_path}: label {labels.max()} is out of range 0-{len(self.classes) - 1}")
        super().__init__(images, labels, name="train" if self.train else "test")

    # -- locating files -------------------------------------------------------------
    def _candidates(self, gz_name):
        plain = gz_name[:-3]
        for folder in (self.root, os.path.join(self.root, self.folder)):
            for name in (gz_name, plain):
                yield os.path.join(folder, name)

    def _locate(self, gz_name):
        for path in self._candidates(gz_name):
            if os.path.isfile(path):
                return path
        raise DatasetNotFoundError(self._missing_message([gz_name]))

    def _missing_message(self, names, reason=""):
        return missing_files_message(
            self, names, reason, f"{', '.join(self.resources)} (plain or .gz; published at "
                                 f"{' or '.join(self.mirrors)})", "them")

    # -- download ----------------------------------------------------------------------
    def download(self, names=None):
        """Fetch the missing files among ``names`` (default: all four) and verify them."""
        names = list(self.resources) if names is None else names
        missing = [n for n in names if not any(os.path.isfile(p) for p in self._candidates(n))]
        if not missing:
            return
        os.makedirs(self.root, exist_ok=True)
        for name in missing:
            self._download_one(name)

    def _download_one(self, name):
        import urllib.request  # here, not at import time: it pulls in ssl and http

        expected_md5 = self.resources[name]
        errors = []
        for mirror in self.mirrors:
            url = mirror + name
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, \
                        urllib.request.urlopen(url, timeout=self.download_timeout) as response:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        out.write(chunk)
                actual = _file_digest(tmp, "md5")
                if actual != expected_md5:
                    errors.append(f"{url}: checksum mismatch (md5 {actual}, expected {expected_md5})")
                    continue
                os.replace(tmp, os.path.join(self.root, name))
                return
            except OSError as e:  # URLError, timeouts and HTTP errors are OSErrors
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        raise DatasetNotFoundError(self._missing_message(
            [name], reason="Download failed:\n  " + "\n  ".join(errors)))


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): 28x28 grey clothing images in 10 classes, MNIST's file format."""

    folder = "fashion-mnist"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    resources = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
