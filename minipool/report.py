"""Training reports: confusion matrices as text, metrics, and PNG plots (matplotlib, optional)."""
import os

import numpy as np

__all__ = ["confusion_matrix", "format_confusion_matrix", "save_plots"]


def confusion_matrix(true_labels, predicted, n_classes):
    """Counts (n_classes, n_classes): row = true class, column = predicted class.

    >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3).tolist()
    [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    """
    true_labels = np.asarray(true_labels, np.int64)
    predicted = np.asarray(predicted, np.int64)
    flat = np.bincount(true_labels * n_classes + predicted, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def format_confusion_matrix(matrix, class_names=None):
    """The matrix as an aligned text table with per-class recall in the last column."""
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    names = [str(c) for c in (class_names or range(n))]
    short = [name[:6] for name in names]
    width = max(5, len(str(matrix.max())) + 1, *(len(s) + 1 for s in short))
    label_width = max(len(s) for s in short) + 1
    lines = ["true \\ predicted".ljust(label_width + 2)]
    lines[0] = " " * (label_width + 1) + "".join(s.rjust(width) for s in short) + "  recall"
    for i in range(n):
        total = matrix[i].sum()
        recall = f"{100 * matrix[i, i] / total:6.1f}%" if total else "     -"
        lines.append(short[i].rjust(label_width) + " " + "".join(str(v).rjust(width) for v in matrix[i])
                     + "  " + recall)
    return "\n".join(lines)


def save_plots(out_dir, history, matrix, class_names, filters=None, feature_maps=None, sample=None):
    """Write PNG plots into ``out_dir``; returns the file names, or [] without matplotlib.

    ``filters``: first-layer weights (out, in, kh, kw); ``feature_maps``: ordered
    ``name -> (C, H, W)`` activations of one ``sample`` image (H, W).
    """
    try:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return []
    written = []

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(name)

    if history:
        epochs = [h["epoch"] for h in history]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
        ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
        ax_loss.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
        ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
        ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train")
        ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], "s-", label="validation")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        for ax in (ax_loss, ax_acc):
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend()
        save(fig, "curves.png")

    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(n), [str(c)[:8] for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(c)[:8] for c in class_names])
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    fig.colorbar(im, ax=ax)
    save(fig, "confusion_matrix.png")

    if filters is not None:
        filters = np.asarray(filters)[:, 0]
        limit = float(np.abs(filters).max()) or 1.0
        fig, ax = plt.subplots(figsize=(1.2 * filters.shape[0], 1.6))
        ax.imshow(_mosaic(filters, fill=np.nan), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"first-layer filters ({filters.shape[0]}, {filters.shape[1]}x{filters.shape[2]})")
        ax.axis("off")
        save(fig, "filters.png")

    if feature_maps:
        rows = list(feature_maps.items())
        if sample is not None:
            rows.insert(0, ("input", np.asarray(sample)[None]))
        fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.3 * len(rows) + 0.4), squeeze=False)
        for ax, (name, maps) in zip(axes[:, 0], rows):
            maps = np.asarray(maps, dtype=np.float64)
            lo = maps.min(axis=(1, 2), keepdims=True)
            span = maps.max(axis=(1, 2), keepdims=True) - lo
            ax.imshow(_mosaic((maps - lo) / np.where(span > 0, span, 1), fill=np.nan), cmap="viridis")
            ax.set_title(f"{name} ({maps.shape[0]} maps of {maps.shape[1]}x{maps.shape[2]})",
                         fontsize=8, loc="left")
            ax.axis("off")
        fig.suptitle("feature maps after each pooling layer (each map scaled to its own range)")
        save(fig, "feature_maps.png")
    return written


def _mosaic(images, fill=0.0, gap=1):
    """(k, h, w) images side by side in one (h, k*(w+gap)-gap) array, separated by ``fill``."""
    k, h, w = images.shape
    out = np.full((h, k * (w + gap) - gap), fill, dtype=np.float64)
    for i in range(k):
        out[:, i * (w + gap):i * (w + gap) + w] = images[i]
    return out
