"""Shared plumbing for the examples: the --quick/--out flags, optional matplotlib, a text log.

Kept out of the example scripts so that each of them shows only its own idea.
"""
import argparse
import importlib.util
import os
import sys


def parse_args(description, argv=None, add_arguments=None):
    """The flags every example accepts, plus any ``add_arguments(parser)`` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="a fast run (seconds), as CI does")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for pictures and the text log "
                             "(default: example_output/<example name>)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.out is None:
        name = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "example"
        args.out = os.path.join("example_output", name)
    os.makedirs(args.out, exist_ok=True)
    return args


def pyplot():
    """matplotlib.pyplot on the headless Agg backend, or None when matplotlib is absent."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Log:
    """print() that also keeps the lines, so the run's text lands in ``<out>/<name>.txt``."""

    def __init__(self, out_dir, name):
        self.path = os.path.join(out_dir, name + ".txt")
        self.lines = []

    def __call__(self, *parts, sep=" "):
        text = sep.join(str(p) for p in parts)
        print(text, flush=True)
        self.lines.append(text)

    def save(self):
        with open(self.path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines) + "\n")
        print(f"[text log written to {self.path}]")
        return self.path


def save_figure(plt, fig, out_dir, file_name, dpi=100, max_colors=None):
    """Save and close ``fig``; print where it went.

    ``max_colors`` stores the PNG with a colour palette of that size (a photograph
    then takes about a third of the bytes, small enough to commit for a README).
    """
    path = os.path.join(out_dir, file_name)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    if max_colors is not None:
        from PIL import Image  # matplotlib depends on Pillow, so it is there

        with Image.open(path) as picture:
            small = picture.convert("RGB").quantize(colors=max_colors)
        small.save(path, optimize=True)
    print(f"[picture written to {path}]")
    return path
