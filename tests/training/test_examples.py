"""Run every example as CI does (--quick --out DIR) and check what it prints and writes.

The expected numbers come from the issue's hand-worked examples and from NumPy
computations written here, never from the examples' own output.
"""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import CHECKOUT

EXAMPLES = os.path.join(CHECKOUT, "examples")
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
PICTURES = {  # example -> the pictures it draws when matplotlib is installed
    "pooling_by_hand": ["pooling_by_hand.png"],
    "argmax_routing": ["argmax_routing.png"],
    "translation_invariance": ["translation_invariance.png"],
    "image_pooling": ["image_pooling.png"],
    "gradient_unit_tests": [],
    "upsampling_by_hand": ["upsampling_by_hand.png"],
    "train_lenet5": ["train_lenet5.png"],
    "what_the_network_sees": ["what_the_network_sees.png"],
}
# Run an example with matplotlib hidden: find_spec() returns None for a None entry in sys.modules.
WITHOUT_MATPLOTLIB = ("import runpy, sys; sys.modules['matplotlib'] = None; "
                      "sys.path.insert(0, sys.argv[1]); script = sys.argv[2]; sys.argv = sys.argv[2:]; "
                      "runpy.run_path(script, run_name='__main__')")


def run_example(name, out_dir, *extra, matplotlib=True):
    script = os.path.join(EXAMPLES, name + ".py")
    args = [script, "--quick", "--out", str(out_dir), *extra]
    command = [sys.executable] + (args if matplotlib else ["-c", WITHOUT_MATPLOTLIB, EXAMPLES] + args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=str(out_dir))
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def flat(text):
    """Whitespace-insensitive text, for matching printed grids."""
    return " ".join(text.split())


def check_outputs(name, out_dir, matplotlib=True):
    log = out_dir / f"{name}.txt"
    assert log.is_file() and log.stat().st_size > 0
    for picture in PICTURES[name]:
        path = out_dir / picture
        if matplotlib and HAS_MATPLOTLIB:
            assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
        else:
            assert not path.exists()
    return log.read_text()


# ------------------------------------------------------------------------- the numbers
def test_pooling_by_hand(tmp_path):
    out = run_example("pooling_by_hand", tmp_path)
    check_outputs("pooling_by_hand", tmp_path)
    text = flat(out)
    # x = [1, 2, -1, 0, 2, 3, -2, 0], window 2: the worked example
    first = text.split("kernel 3, stride 1")[0]
    assert "max pooling -> [2, 0, 3, 0]" in first
    assert "avg pooling -> [1.5, -0.5, 2.5, -1]" in first
    assert "min pooling -> [1, -1, 2, -2]" in first
    assert "sum pooling -> [3, -1, 5, -2]" in first
    l2 = [np.sqrt(1 + 4), np.sqrt(1 + 0), np.sqrt(4 + 9), np.sqrt(4 + 0)]
    assert "L2 pooling -> [" + ", ".join(f"{v:.4g}" for v in l2) + "]" in first
    assert "out = floor((8 + 2*0 - 1*(2-1) - 1) / 2) + 1 = 4" in first
    # 4x4, 2x2 max pooling with stride 1
    assert "max pooling -> [[3 3 4] [7 7 8] [7 7 8]]" in text
    assert "max pooling -> [[3 4] [7 8]]" in text
    assert "avg pooling -> [[2 2.5 3] [4 4.5 5] [6 6.5 7]]" in text   # 2x2 means, stride 1
    # 3x3 windows, stride 2, padding 1: avg counts the padded zeros (divides by 9)
    assert "avg pooling -> [[0.8889 2] [3.111 5.667]]" in text
    # ceil_mode adds a partial last window (cells 6, 7; 8 is past the end)
    ceil = text.split("ceil_mode True")[1]
    assert "= 4" in ceil.split("out[0]")[0]
    assert "out[3] cells [6, 7, 8] values [-2, 0, past end]" in ceil
    # stochastic pooling in evaluation: sum(a^2)/sum(a) per window
    assert "evaluation (probability-weighted average): [[2.5 2] [3 1]]" in text


def test_upsampling_by_hand(tmp_path):
    out = run_example("upsampling_by_hand", tmp_path)
    check_outputs("upsampling_by_hand", tmp_path)
    text = flat(out)
    # x = [1, 2, 4, 3] doubled: nearest repeats each cell; linear (half-pixel centres) mixes
    # neighbours 3:1 and 1:3, and clamps the first source (-0.25) to the first cell
    assert "nearest -> [1, 1, 2, 2, 4, 4, 3, 3]" in text
    x = np.array([1.0, 2.0, 4.0, 3.0])
    half_pixel = [x[0], .75 * x[0] + .25 * x[1], .25 * x[0] + .75 * x[1], .75 * x[1] + .25 * x[2],
                  .25 * x[1] + .75 * x[2], .75 * x[2] + .25 * x[3], .25 * x[2] + .75 * x[3], x[3]]
    assert "linear -> [" + ", ".join(f"{v:.4g}" for v in half_pixel) + "]" in text
    assert "out[0] source -0.25, clamped to 0" in text
    corners = np.interp(np.arange(8) * 3 / 7, np.arange(4), x)  # align_corners=True
    assert "linear -> [" + ", ".join(f"{v:.4g}" for v in corners) + "]" in text
    # 4 -> 3: nearest takes floor(i*4/3) = 0, 1, 2; nearest-exact floor((i+.5)*4/3) = 0, 2, 3
    assert "nearest 4 -> 3 copies cells [0, 1, 2]" in text
    assert "nearest-exact 4 -> 3 copies cells [0, 2, 3]" in text
    # stride-2 stamps of a 3x3 kernel: 1 2 1 2 ... in each direction, 4 where two rows of 2 meet
    assert "1-D stamp counts [1, 2, 1, 2, 1, 2, 1] -> a checkerboard" in text
    assert "1 2 1 2 1 2 1 2 4 2 4 2 4 2" in text
    assert "1-D stamp counts [1, 1, 1, 1, 1, 1, 1, 1] -> even inside" in text
    assert "1-D stamp counts [1, 2, 2, 2, 2, 2, 2, 1] -> even inside" in text
    assert re.search(r"largest relative difference \d\.\de-1[3-9]", text)
    # pixel_shuffle: channel c = 2*dy + dx of x = 1..16 as (4, 2, 2)
    shuffled = np.arange(1, 17).reshape(2, 2, 2, 2).transpose(2, 0, 3, 1).reshape(4, 4)
    assert " ".join(str(v) for v in shuffled.ravel()) in text


def test_argmax_routing(tmp_path):
    out = run_example("argmax_routing", tmp_path)
    check_outputs("argmax_routing", tmp_path)
    text = flat(out)
    # windows of [[1 6 2 0] [4 3 8 5] [9 0 1 7] [2 3 4 6]]: maxima 6 at (0,1), 8 at (1,2),
    # 9 at (2,0), 7 at (2,3); upstream gradients 10, 20, 30, 40 land there.
    assert "indices (flat position h*W + w of each max, W = 4): 1 6 8 11" in text
    assert "all else is 0: 0 10 0 0 0 0 20 0 30 0 0 40 0 0 0 0" in text
    assert "(zeros elsewhere): 0 6 0 0 0 0 8 0 9 0 0 7 0 0 0 0" in text
    # overlapping 3x3 stride-1 windows: the 9 wins 4, the 8 wins 3, the 3 and the 2 one each
    assert "win one each: 0 0 0 0 1 0 4 0 0 0 0 0 0 0 0 0 0 0 3 0 1 0 0 0 0" in text
    assert "sum of dL/dx = 9 = number of outputs 9" in text
    # ties: the first maximum takes the whole gradient
    assert "takes it all: 1 0 0 0" in text
    assert "top-left cell: 1 0 1 0 0 0 0 0" in text
    # average pooling: a quarter of each upstream gradient per cell
    assert "1/4 per cell: 2.5 2.5 5 5 2.5 2.5 5 5 7.5 7.5 10 10 7.5 7.5 10 10" in text
    coverage = np.convolve(np.ones(3), np.ones(3))  # windows covering each of 5 positions
    expected = np.round(np.outer(coverage, coverage) / 9, 4)
    assert "whatever the input values are: " + " ".join(f"{v:g}" for v in expected.ravel()) in text


def test_translation_invariance(tmp_path):
    out = run_example("translation_invariance", tmp_path)
    check_outputs("translation_invariance", tmp_path)
    assert "Shift left by one: edge response moved from column 1 to 0; pooled response " \
           "unchanged: True" in flat(out)
    assert "Shift right by one: edge response moved from column 1 to 2; pooled response " \
           "unchanged: False" in flat(out)
    # the original image's response: column 1 lights up in all 5 rows; pooled 3x2 with ceil_mode
    original = flat(out.split("shifted 1 pixel left")[0])
    assert "edge response 5x3: " + " ".join(["0 1 0"] * 5) in original
    assert "max-pooled response 3x2: " + " ".join(["1 0"] * 3) in original


def _load_example_module(name):
    sys.path.insert(0, EXAMPLES)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(EXAMPLES)


def test_image_pooling(tmp_path):
    out = run_example("image_pooling", tmp_path)
    check_outputs("image_pooling", tmp_path)
    rows = re.findall(r"^\s*(subsample|max|avg|min)\s+(\d)x\s+(nearest|bilinear|bicubic)\s+"
                      r"([\d.]+)\s+([\d.]+)\s+([+-][\d.]+)$", out, re.M)
    assert len(rows) == 4 * 2 * 3
    table = {(p, int(f), m): (float(rmse), float(psnr), float(shift))
             for p, f, m, rmse, psnr, shift in rows}
    # An independent round trip: 2x2 block means, then nearest upsampling = repeat each pixel.
    photo = _load_example_module("image_pooling").load_photo(quick=True)[0].astype(np.float64)
    h, w, c = photo.shape
    for f in (2, 4):
        means = photo.reshape(h // f, f, w // f, f, c).mean(axis=(1, 3))
        restored = means.repeat(f, axis=0).repeat(f, axis=1)
        rmse = np.sqrt(np.mean((restored - photo) ** 2))
        assert table["avg", f, "nearest"][0] == pytest.approx(rmse, abs=6e-5)
        assert table["avg", f, "nearest"][1] == pytest.approx(20 * np.log10(1 / rmse), abs=6e-3)
        maxima = photo.reshape(h // f, f, w // f, f, c).max(axis=(1, 3))
        shift = np.mean(maxima.repeat(f, axis=0).repeat(f, axis=1) - photo)
        assert table["max", f, "nearest"][2] == pytest.approx(shift, abs=6e-5)
    for f in (2, 4):
        for m in ("nearest", "bilinear", "bicubic"):
            assert table["max", f, m][2] > 0 > table["min", f, m][2]   # brighter / darker
            assert abs(table["avg", f, m][2]) < 2e-3                     # the mean is kept
            assert table["avg", f, m][1] > max(table["max", f, m][1], table["min", f, m][1])
    for key in table:
        if key[1] == 2:
            assert table[key][1] > table[key[0], 4, key[2]][1]           # 2x beats 4x


def test_gradient_unit_tests(tmp_path):
    out = run_example("gradient_unit_tests", tmp_path)
    check_outputs("gradient_unit_tests", tmp_path)
    assert "gradcheck(Swish.apply, [x]) -> True" in out
    errors = re.findall(r"GradcheckError: gradient of x \(shape \(2, 3\)\) mismatch at .*analytic "
                        r".*numerical", out)
    assert len(errors) == 2
    assert "gradcheck(max_pool2d, k=2) -> True" in out
    assert "routes the gradient to the first max: [[1.0, 0.0], [0.0, 0.0]]" in out
    assert re.search(r"gradcheck at the tie fails: gradient of tied window .* analytic", out)


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """train_lenet5.py --quick, run once: (its --out folder, what it printed)."""
    out_dir = tmp_path_factory.mktemp("train_lenet5")
    return out_dir, run_example("train_lenet5", out_dir)


def test_train_lenet5(lenet_run):
    out_dir, out = lenet_run
    check_outputs("train_lenet5", out_dir)
    assert re.search(r"epoch 1/1: mean training loss \d+\.\d+, test accuracy", out)
    printed = float(re.search(r"final test accuracy ([\d.]+)%", out).group(1))
    # The saved checkpoint must be the model that was evaluated: recompute its accuracy on the
    # same 200 held-out digits, with the command line's loader and our own argmax.
    import minipool as mp
    from minipool.data import SyntheticDigits
    from minipool.train import load_model_from_checkpoint

    model, meta, _ = load_model_from_checkpoint(str(out_dir / "lenet5.safetensors"))
    assert model.name == "lenet5"
    test = SyntheticDigits(200, seed=2 ** 31 - 1)
    mean, std = meta["normalization"]
    images = np.pad(test.images.astype(np.float32) / 255, ((0, 0), (2, 2), (2, 2)))[:, None]
    model.eval()
    with mp.no_grad():
        logits = model(mp.tensor((images - np.float32(mean)) / np.float32(std))).numpy()
    assert printed == pytest.approx(100 * np.mean(logits.argmax(axis=1) == test.labels), abs=0.006)


LAYER_SHAPES = [("conv1 + ReLU", "(6, 28, 28)"), ("max-pool 1", "(6, 14, 14)"),
                ("conv2 + ReLU", "(16, 10, 10)"), ("max-pool 2", "(16, 5, 5)")]


def layer_table(out):
    return re.findall(r"^(conv1 \+ ReLU|max-pool 1|conv2 \+ ReLU|max-pool 2)\s+(\(.*?\))", out, re.M)


def test_what_the_network_sees_trains_a_model_first(tmp_path):
    out = run_example("what_the_network_sees", tmp_path)
    check_outputs("what_the_network_sees", tmp_path)
    assert "no --checkpoint given: training LeNet-5 first" in out
    assert (tmp_path / "training_run" / "best.safetensors").is_file()
    assert layer_table(out) == LAYER_SHAPES


def test_what_the_network_sees_text_only_from_a_checkpoint(tmp_path, lenet_run):
    checkpoint = str(lenet_run[0] / "lenet5.safetensors")
    out = run_example("what_the_network_sees", tmp_path, "--checkpoint", checkpoint, "--digit", "3",
                      matplotlib=False)
    check_outputs("what_the_network_sees", tmp_path, matplotlib=False)
    assert f"model lenet5 from {checkpoint}" in out and "test digit #3" in out
    assert layer_table(out) == LAYER_SHAPES
    assert "matplotlib is not installed: text output only" in out
    assert not (tmp_path / "training_run").exists()


# ------------------------------------------------------------------------- headless, no matplotlib
@pytest.mark.parametrize("name", ["pooling_by_hand", "argmax_routing", "translation_invariance",
                                  "image_pooling", "upsampling_by_hand"])
def test_text_only_without_matplotlib(tmp_path, name):
    out = run_example(name, tmp_path, matplotlib=False)
    text = check_outputs(name, tmp_path, matplotlib=False)
    assert "matplotlib is not installed: text output only" in out
    assert text.strip() in out.replace("\r", "")
