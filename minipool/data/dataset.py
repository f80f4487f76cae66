"""In-memory image classification datasets: uint8 images plus integer labels."""
import numpy as np

__all__ = ["ArrayDataset"]


class ArrayDataset:
    """Images (N, H, W) uint8 and labels (N,) held in memory.

    Indexing gives one ``(image, label)`` pair with the image as float32
    (1, H, W) scaled to [0, 1]; :meth:`get_batch` gives many at once, which
    is what :class:`~minipool.data.DataLoader` uses.

    >>> import numpy as np
    >>> ds = ArrayDataset(np.zeros((5, 4, 4), np.uint8), np.arange(5))
    >>> image, label = ds[2]
    >>> image.shape, label
    ((1, 4, 4), 2)
    """

    classes = tuple(str(d) for d in range(10))

    def __init__(self, images, labels, name="array"):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 3:
            raise ValueError(f"{name}: images must have shape (N, H, W), got {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{name}: labels must have shape ({images.shape[0]},) to match the "
                             f"images, got {labels.shape}")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        self.name = name

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, index):
        image = self.images[index].astype(np.float32)[None] / np.float32(255)
        return image, int(self.labels[index])

    @property
    def image_shape(self):
        return (1,) + self.images.shape[1:]

    def get_batch(self, indices):
        """Images as float32 (n, 1, H, W) in [0, 1] and int64 labels for ``indices``."""
        images = self.images[indices].astype(np.float32)
        images *= np.float32(1 / 255)
        return images[:, None], self.labels[indices]

    def subset(self, indices, name=None):
        """A new dataset holding the examples at ``indices`` (copied)."""
        indices = np.asarray(indices)
        return type(self).from_arrays(self.images[indices], self.labels[indices],
                                      name or f"{self.name}[subset]")

    @classmethod
    def from_arrays(cls, images, labels, name):
        ds = ArrayDataset.__new__(cls)
        ArrayDataset.__init__(ds, images, labels, name)
        return ds

    def mean_std(self):
        """Mean and standard deviation of all pixels, in [0, 1] units (for Normalize)."""
        pixels = self.images.astype(np.float64) / 255
        return float(pixels.mean()), float(pixels.std())

    def __repr__(self):
        return f"{type(self).__name__}({self.name}: {len(self)} images of {self.images.shape[1:]})"
