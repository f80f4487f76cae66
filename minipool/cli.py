"""The command line: ``python -m minipool {train,evaluate,export,config,demo}``."""
import argparse
import sys


def _demo(args):
    """A tiny end-to-end check: an autograd expression and its gradcheck."""
    import numpy as np

    import minipool as mp

    x = mp.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype="float64", requires_grad=True)
    y = (x.tanh() * x.exp()).sum()
    y.backward()
    print(f"y = sum(tanh(x) * exp(x)) = {y.item():.6f}")
    print("dy/dx =\n", x.grad.numpy())
    ok = mp.gradcheck(lambda t: (t.tanh() * t.exp()).sum(), [x])
    print("gradcheck:", "passed" if ok else "FAILED")
    return 0


def _config(args):
    import minipool

    minipool.show_config()
    return 0


# Options of `train` that map one-to-one onto TrainConfig fields.
TRAIN_FIELDS = ("model", "dataset", "data_dir", "download", "epochs", "batch_size", "optimizer", "lr",
                "momentum", "weight_decay", "schedule", "augment", "threads", "seed", "out",
                "train_size", "val_size", "test_size", "classic_output", "progress", "plots")


def _fail(command, message, code):
    print(f"python -m minipool {command}: error: {message}", file=sys.stderr)
    return code


def _train(args):
    from minipool.train import TrainConfig, TrainError, TrainingDiverged, TrainingInterrupted, run_training

    explicit = {k for k in TRAIN_FIELDS if getattr(args, k) is not None}
    values = {k: getattr(args, k) for k in explicit}
    config = TrainConfig(**values)
    try:
        run_training(config, resume=args.resume, explicit=explicit)
    except TrainingDiverged as e:
        return _fail("train", str(e), 1)
    except TrainError as e:
        return _fail("train", str(e), 2)
    except TrainingInterrupted as e:
        print(f"interrupted: resumable checkpoint written to {e.path}\n"
              f"continue with: python -m minipool train --resume {e.path}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("aborted (no checkpoint written for the current epoch)", file=sys.stderr)
        return 130
    return 0


def _evaluate(args):
    from minipool.train import TrainError, evaluate_checkpoint, set_threads

    if args.batch_size is not None and args.batch_size < 1:
        return _fail("evaluate", f"batch-size must be an integer >= 1, got {args.batch_size}", 2)
    if args.threads is not None:
        if args.threads < 1:
            return _fail("evaluate", f"threads must be an integer >= 1, got {args.threads}", 2)
        set_threads(args.threads)
    try:
        evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_dir=args.data_dir,
                            download=bool(args.download), test_size=args.test_size,
                            batch_size=args.batch_size or 500)
    except TrainError as e:
        return _fail("evaluate", str(e), 2)
    return 0


def _add_train_parser(sub):
    from minipool.models import MODELS
    from minipool.train_setup import DATASETS, OPTIMIZERS, SCHEDULES, colour_models

    p = sub.add_parser(
        "train", help="train a network (defaults: modern LeNet-5 on synthetic digits, ~1 minute)",
        description="Train a network on minipool's own autograd and kernels. Unset options take the "
                    "dataset's defaults (synthetic: 12,000 images, 4 epochs, SGD lr 0.05 one-cycle; mnist and "
                    "fashion-mnist: 10 epochs, SGD lr 0.1 one-cycle, weight decay 5e-4, augmentation on; "
                    "cifar10 and cifar100: 15 epochs, SGD lr 0.05 one-cycle, weight decay 5e-4, random "
                    "crops and flips; lenet5-classic: lr 0.01, no weight decay).")
    # names are checked by TrainConfig, which gives one clear message for a wrong one
    colour = colour_models()
    p.add_argument("--model", metavar="{" + ",".join(MODELS) + "}",
                   help=f"network, one of: {', '.join(MODELS)} (default lenet5); cifar10/cifar100 need "
                        f"one built for 3-channel images: "
                        f"{', '.join(colour) if colour else 'none registered yet'}")
    p.add_argument("--dataset", metavar="{" + ",".join(DATASETS) + "}",
                   help="data (default: inferred from the files in --data-dir; without --data-dir, "
                        "synthetic: no files needed)")
    p.add_argument("--data-dir", help="folder with the dataset files: MNIST/Fashion-MNIST IDX files, or "
                                      "the CIFAR binary archive (cifar-10-binary.tar.gz, "
                                      "cifar-100-binary.tar.gz) or its extracted folder (default "
                                      "$MINIPOOL_DATA/<dataset> or ~/.cache/minipool/<dataset>)")
    p.add_argument("--download", action="store_true", default=None,
                   help="download missing MNIST/Fashion-MNIST/CIFAR files (checksums verified)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="default 64")
    p.add_argument("--optimizer", metavar="{" + ",".join(OPTIMIZERS) + "}", help="default sgd")
    p.add_argument("--lr", type=float, help="learning rate (the peak rate for onecycle)")
    p.add_argument("--schedule", metavar="{" + ",".join(SCHEDULES) + "}", help="default onecycle")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random affine jitter of the training digits; random crops and flips for CIFAR")
    p.add_argument("--threads", type=int,
                   help="threads for minipool's kernels (BLAS runs on one: LeNet's GEMMs are too small "
                        "to split)")
    p.add_argument("--seed", type=int, help="default 0; same seed, same run")
    p.add_argument("--out", help="output folder (default runs/<model>-<dataset>)")
    p.add_argument("--resume", metavar="CKPT", help="continue a run from its last.safetensors (or best.safetensors; .npz checkpoints of minipool <= 0.1 too)")
    extra = p.add_argument_group("more options")
    extra.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    extra.add_argument("--weight-decay", type=float,
                       help="default 5e-4 for lenet5 on mnist/fashion-mnist, else 0")
    extra.add_argument("--classic-output", metavar="{rbf,softmax}",
                       help="output layer of lenet5-classic (default rbf, the paper's)")
    extra.add_argument("--train-size", type=int, help="use at most this many training images")
    extra.add_argument("--val-size", type=int, help="images held out of training for validation")
    extra.add_argument("--test-size", type=int, help="test images (synthetic: how many to draw)")
    extra.add_argument("--progress", choices=["auto", "bar", "lines", "none"],
                       help="progress display (auto: a bar on a terminal, lines otherwise)")
    extra.add_argument("--plots", action=argparse.BooleanOptionalAction, default=None,
                       help="write PNG plots when matplotlib is installed (default on)")
    p.set_defaults(run=_train)


def _add_evaluate_parser(sub):
    from minipool.train import DATASETS

    p = sub.add_parser("evaluate", help="report a checkpoint's test accuracy",
                       description="Accuracy and confusion matrix of a checkpoint on a test set.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--dataset", metavar="{" + ",".join(DATASETS) + "}",
                   help="default: the checkpoint's dataset")
    p.add_argument("--data-dir")
    p.add_argument("--download", action="store_true")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--test-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int)
    p.set_defaults(run=_evaluate)


def _export(args):
    """Write a checkpoint's model as ONNX (needs ``pip install minipool[onnx]``)."""
    from minipool.train import TrainError, load_model_from_checkpoint

    try:
        import minipool.onnx as onnx_export
    except ImportError as e:
        return _fail("export", str(e), 2)
    try:
        model, meta, _ = load_model_from_checkpoint(args.checkpoint)
    except TrainError as e:
        return _fail("export", str(e), 2)
    if args.input_shape is not None:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            return _fail("export", f"input-shape must be C,H,W (three integers >= 1), got "
                                   f"{args.input_shape!r}", 2)
    else:  # minipool's datasets are all 32x32 (digits padded); channels from the model's config
        shape = (int(meta.get("model", {}).get("config", {}).get("in_channels", 1)), 32, 32)
    if args.opset is not None and args.opset < onnx_export.MIN_OPSET:
        return _fail("export", f"opset must be >= {onnx_export.MIN_OPSET}, got {args.opset}", 2)
    import numpy as np

    from minipool.tensor import Tensor

    example = Tensor(np.zeros((1,) + shape, dtype=np.float32))
    try:
        onnx_export.export(model, example, args.out, opset=args.opset,
                           dynamic_batch=not args.static_batch)
    except (onnx_export.UnsupportedOpError, ValueError, TypeError, OSError) as e:
        return _fail("export", str(e), 2)
    print(f"wrote {args.out}: {meta['model']['name']} from {args.checkpoint}, input "
          f"({'batch' if not args.static_batch else 1}, {', '.join(map(str, shape))}) float32")
    return 0


def _add_export_parser(sub):
    p = sub.add_parser("export", help="write a checkpoint's model as ONNX (pip install minipool[onnx])",
                       description="Trace a checkpoint's model in eval mode and write it as an ONNX "
                                   "model (checked by onnx.checker), runnable with onnxruntime.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("--out", required=True, metavar="MODEL.onnx")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18; Gelu needs 20)")
    p.add_argument("--input-shape", metavar="C,H,W", help="one image's shape (default C,32,32)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch size at 1")
    p.set_defaults(run=_export)


def _experiment(args):
    from minipool.experiments import ExperimentError, run_experiment

    try:
        run_experiment(args.name, quick=args.quick, seeds=args.seeds, epochs=args.epochs,
                       dataset=args.dataset, data_dir=args.data_dir, out=args.out, jobs=args.jobs,
                       scheduler=args.scheduler, variants=args.variants, train_size=args.train_size,
                       test_size=args.test_size, progress=args.progress, threads=args.threads)
    except ExperimentError as e:
        return _fail("experiment", str(e), 2)
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


def _add_experiment_parser(sub):
    from minipool.experiments import EXPERIMENTS

    p = sub.add_parser(
        "experiment", help="measure the course's claims about pooling and upsampling (pooling, shift, "
                           "upsampling)",
        description="Run an experiment grid (variants x seeds); each finished run is saved in "
                    "OUT/runs/, so a re-run resumes. Writes OUT/results.csv, OUT/results.md and pictures.")
    # the name is checked by run_experiment, which lists the choices in its message
    p.add_argument("name", metavar="NAME", help=f"one of: {', '.join(EXPERIMENTS)}")
    p.add_argument("--quick", action="store_true", help="a smoke test in seconds (small data, 1-2 epochs)")
    p.add_argument("--seeds", type=int, help="number of seeds, 0..N-1 (default 3; 1 with --quick)")
    p.add_argument("--epochs", type=int, help="epochs of the full-data runs")
    p.add_argument("--dataset", help="mnist or synthetic (default: mnist with --data-dir, else synthetic)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files")
    p.add_argument("--out", help="output folder (default runs/experiment-NAME[-quick])")
    p.add_argument("--jobs", type=int, default=1,
                   help="local worker processes (each gets cores // jobs kernel threads)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the grid on a Dask distributed cluster (pip install 'minipool[dask]')")
    p.add_argument("--threads", type=int, help="kernel threads per run (default cores // jobs)")
    p.add_argument("--variants", help="comma-separated subset of the experiment's variants")
    p.add_argument("--train-size", type=int, help="training images of the full-data runs")
    p.add_argument("--test-size", type=int, help="test images")
    p.add_argument("--progress", choices=["auto", "bar", "lines", "none"], default="auto")
    p.set_defaults(run=_experiment)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (plus a pointer to --help), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(prog="python -m minipool",
                                     description="minipool: autograd, pooling kernels, LeNet-5.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_export_parser(sub)
    _add_experiment_parser(sub)
    sub.add_parser("config", help="show how minipool was built").set_defaults(run=_config)
    sub.add_parser("demo", help="a tiny autograd + gradcheck demo").set_defaults(run=_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
