"""Command line: parse, then call one function. TensorFlow is imported only inside commands."""

from __future__ import annotations

import argparse
import os
import sys

from dcgan import __version__
from dcgan.core.errors import DcganError, first_line
from dcgan.core.tfimport import quiet_tensorflow


def cmd_train(args) -> int:
    from pathlib import Path

    from dcgan.core.config import load_config
    from dcgan.training.distribute import make_strategy, tf_config_from_flags
    from dcgan.training.rundir import resume_config

    overrides = args.set
    if args.workers is not None or args.worker_index is not None:
        if args.workers is None or args.worker_index is None:
            raise DcganError("--workers and --worker-index go together")
        os.environ["TF_CONFIG"] = tf_config_from_flags(args.workers, args.worker_index)
        overrides = ["distribute.strategy=multi_worker", *overrides]
    if args.resume is not None:
        if not args.resume.strip():  # an unset shell variable: never a reason to start a new full training
            raise DcganError("--resume: empty run directory name")
        cfg, run_dir = resume_config(args.resume, args.config, overrides), Path(args.resume)
    else:
        cfg, run_dir = load_config(args.config, overrides), None
    if args.workers is not None and cfg.distribute.strategy != "multi_worker":
        raise DcganError(f"--workers needs distribute.strategy=multi_worker, not {cfg.distribute.strategy}")
    quiet_tensorflow()
    # before any other TensorFlow work: MultiWorkerMirroredStrategy must be created at program start
    strategy = make_strategy(cfg.distribute)
    from dcgan.training.loop import train

    print(train(cfg, resume_dir=run_dir, quiet=args.quiet, strategy=strategy))
    return 0


def _generator_choice(p, verb: str) -> None:
    """--ema / --no-ema; neither: the copy the run chose for the checkpoint (train.select_sampler)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--ema", dest="use_ema", action="store_const", const=True,
                       help=f"{verb} the EMA copy of the generator (default: the copy the run chose at this checkpoint)")
    group.add_argument("--no-ema", dest="use_ema", action="store_const", const=False,
                       help=f"{verb} the raw generator (default: the copy the run chose at this checkpoint)")


def cmd_sample(args) -> int:
    quiet_tensorflow()
    from dcgan.tools.sample import sample

    written = sample(args.run, step=args.step, seeds=args.seeds, n=args.n, grid=args.grid, out=args.out,
                     interpolate=args.interpolate, frames=args.frames, truncation=args.truncation,
                     use_ema=args.use_ema, batch_size=args.batch_size, classes=args.classes,
                     latents_file=args.latents)
    print(written.summary())
    return 0


def cmd_export(args) -> int:
    quiet_tensorflow()
    from dcgan.tools.export import export

    print(export(args.run, fmt=args.format, out=args.out, step=args.step, use_ema=args.use_ema, force=args.force))
    return 0


def cmd_benchmark(args) -> int:
    from dcgan.core.config import load_config

    cfg = load_config(args.config, args.set)
    quiet_tensorflow()
    from dcgan.tools import benchmark

    benchmark.run(cfg, windows=args.windows, window_steps=args.window_steps, sampling=not args.no_sampling,
                  fid=args.fid, synthetic=args.synthetic, as_json=args.json)
    return 0


def cmd_evaluate(args) -> int:
    quiet_tensorflow()
    from dcgan.tools.evaluate import evaluate

    scores = evaluate(args.run, n=args.n, metrics=args.metrics, step=args.step, use_ema=args.use_ema,
                      feature_model=args.feature_model, feature_layer=args.feature_layer, network=args.features,
                      on_step=lambda line: print(line, file=sys.stderr, flush=True))
    print(scores.table())
    print(scores.summary())
    return 0


def cmd_features(args) -> int:
    quiet_tensorflow()
    from dcgan.evaluation.features import train_classifier

    path, info = train_classifier(args.data, args.path, epochs=args.epochs)
    how = "cached, not retrained" if info["cached"] else f"trained in {info['train_seconds']} s"
    print(f"{path}\n{args.data} feature classifier ({how}): test accuracy {info['test_accuracy']:.4f} after {info['epochs']} epoch(s)")
    return 0


def cmd_compare(args) -> int:
    from dcgan.tools.compare import compare
    from dcgan.tools.modes import make_plan

    p = make_plan(config=args.config, modes=args.modes, budget=args.budget, steps=args.steps, seconds=args.seconds,
                  seeds=args.seeds, name=args.name, overrides=args.set, eval_samples=args.eval_samples,
                  eval_every=args.eval_every)
    quiet_tensorflow()
    print(compare(p, quiet=args.quiet))
    return 0


def cmd_inspect(args) -> int:
    from dcgan.tools.anatomy import inspect_run, resolve  # no TensorFlow behind them

    source = resolve(args.run, args.init, args.set, args.step, args.use_ema, args.n, args.out)  # bad arguments fail fast
    quiet_tensorflow()
    print(inspect_run(source, args.use_ema, args.n))
    return 0


def command(module: str, function: str, tensorflow: bool = True):
    """A command that hands its arguments to module.function (imported once it runs) and prints what it returns."""
    def run(args) -> int:
        import importlib

        if tensorflow:
            quiet_tensorflow()
        print(getattr(importlib.import_module(module), function)(args))
        return 0

    return run


def _evaluate_step(text: str):
    if text in ("best", "all"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a step number, 'best' or 'all', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from dcgan.core.config import FEATURE_NETWORKS
    from dcgan.evaluation.evaluator import METRICS  # the metrics table; no TensorFlow behind it

    parser = argparse.ArgumentParser(prog="dcgan", description="Train, sample, evaluate and compare DCGANs.")
    parser.add_argument("--version", action="version", version=f"dcgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train from a YAML config (or resume a run)")
    p.add_argument("--config", "-c", help="YAML config file (default: built-in defaults = configs/fashion_mnist.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.steps=500 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar; one log line per logged step")
    p.add_argument("--workers", metavar="HOST:PORT,...", help="multi-worker training: every worker's address, the same list "
                   "on each machine (builds TF_CONFIG; worker 0 is the chief)")
    p.add_argument("--worker-index", type=int, metavar="I", help="this machine's position in --workers")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("benchmark", help="training images/s against a minimal reference loop, FLOPs, peak")
    p.add_argument("--config", "-c", help="YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--windows", type=int, default=5, help="timed windows per variant (median reported)")
    p.add_argument("--window-steps", type=int, default=20, help="train steps per timed window")
    p.add_argument("--synthetic", action="store_true", help="random images of the config's shape instead of the dataset")
    p.add_argument("--no-sampling", action="store_true", help="skip the sampling images/s measurement")
    p.add_argument("--fid", action="store_true", help="also time FID on 10,000 generated images")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("sample", help="images from a checkpoint: grid, PNG per seed, npz, or a latent walk")
    p.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (latest checkpoint) or a checkpoint path like RUN/checkpoints/ckpt-400")
    p.add_argument("--step", type=int, help="use the run's checkpoint of this step instead of the latest")
    p.add_argument("--seeds", help="seeds as a list with ranges, e.g. 0-15,42 (one image per seed, always the same)")
    p.add_argument("--n", type=int, help="seeds 0..N-1")
    p.add_argument("--grid", metavar="ROWSxCOLS", help="grid layout of the PNG (default 8x8); with --interpolate and a "
                   ".gif/.mp4, ROWSxCOLS walks played side by side (cell k walks seeds k*(K+1)..k*(K+1)+K)")
    p.add_argument("--out", help="FILE.png grid, DIR/ one PNG per seed, FILE.npz uint8 images, FILE.gif/.mp4/.png walk "
                   "(.mp4 needs the [video] extra; default RUN/sample_grid.png)")
    p.add_argument("--class", "--classes", dest="classes", metavar="CLASSES",
                   help="conditional runs: class names (any case) or indices, a list with ranges like seeds, e.g. "
                        "0-3,sneaker, or all (the default). Each seed is drawn in each class (--n N: N per class; DIR/ "
                        "gets class_07_seed_0004.png, an npz 'labels'); with several classes a grid has one row per class "
                        "and one column per seed (default seeds 0-7), one class lays out like an unconditional run")
    p.add_argument("--latents", metavar="FILE", help="draw the latent vectors of an npz ('z', and 'labels' for a "
                   "conditional run), such as the latent.npz `dcgan project` writes, instead of seeds")
    p.add_argument("--interpolate", type=int, metavar="K", help="spherical walk through K+1 seeds (--seeds, default 0..K); a conditional run's walk needs one --class")
    p.add_argument("--frames", type=int, help="frames per walk segment (default 16)")
    p.add_argument("--truncation", type=float, default=1.0, help="scale latent vectors by this factor (<1: typical, less varied images)")
    _generator_choice(p, "use")
    p.add_argument("--batch-size", type=int, default=500, help="images per generator call")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("export", help="the generator as a .keras file, a TensorFlow SavedModel or an ONNX model "
                       "(a conditional one takes z and label)")
    p.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (latest checkpoint) or a checkpoint path")
    p.add_argument("--format", default="keras", help="keras (default), savedmodel, onnx (needs the [onnx] extra) or hub (a Hugging Face "
                   "model folder: the .keras generator, config, classes, samples, a model card)")
    p.add_argument("--out", help="keras, onnx: FILE.keras / FILE.onnx or DIR (DIR/generator.keras, .onnx); savedmodel: "
                   "the SavedModel directory; hub: the model folder (default RUN/export/...)")
    p.add_argument("--step", type=int, help="use the run's checkpoint of this step instead of the latest")
    _generator_choice(p, "export")
    p.add_argument("--force", action="store_true", help="replace an existing export")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="FID, KID, precision/recall, checkerboard score (and for a conditional run class "
                       "accuracy, intra-FID) -> table + RUN/eval.json")
    p.add_argument("run", metavar="RUN_DIR", help="a run directory")
    p.add_argument("--n", type=int, default=10000, help="generated images to score (default 10000)")
    p.add_argument("--metrics", help=f"comma-separated subset of {', '.join(METRICS)} (default: all that apply to the run: "
                   "class_accuracy and intra_fid only for a conditional one; memorisation, the copy check against "
                   "the run's training images, only when named)")
    p.add_argument("--step", type=_evaluate_step,
                   help="the checkpoint of this step, 'best' (by FID) or 'all' (every kept checkpoint: the curve), instead of the latest")
    _generator_choice(p, "score")
    p.add_argument("--features", choices=FEATURE_NETWORKS,
                   help="the feature network of FID, KID and precision/recall: classifier (mnist, fashion_mnist), inception, "
                        "selfsup (trained on the dataset's own images, offline, cached) or auto (default: the run's "
                        "train.feature_network)")
    p.add_argument("--feature-model", metavar="FILE.keras", help="your own feature network instead of the default "
                   "(wins over --features)")
    p.add_argument("--feature-layer", metavar="NAME", help="the layer of --feature-model whose output is the features (default: its output)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("features", help="feature networks for evaluation")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("train", help="train (or reuse) the dataset's classifier (mnist, fashion_mnist: FID's features; "
                           "and cifar10: class_accuracy)")
    q.add_argument("--data", required=True, metavar="NAME", help="mnist, fashion_mnist or cifar10")
    q.add_argument("--path", help="local dataset files (as data.path): mnist.npz or an IDX folder")
    q.add_argument("--epochs", type=int, help="training epochs (default 3; a cached classifier with other epochs is retrained)")
    q.set_defaults(func=cmd_features)

    p = sub.add_parser("compare", help="one run per upsampling mode under one budget -> report.md, report.json, figures")
    p.add_argument("--config", "-c", help="YAML config file shared by every run")
    p.add_argument("--modes", required=True, help="comma-separated: transpose[:kN], upsample[:nearest|bilinear], subpixel, "
                   "or one mode per block joined by + (transpose+upsample[:kN]); :blur adds the anti-aliasing low-pass "
                   "(model.generator.antialias) to every block")
    p.add_argument("--budget", choices=("steps", "seconds"), default="steps", help="same steps per run (default) or same wall-clock seconds")
    p.add_argument("--steps", type=int, help="--budget steps: training steps per run (default: the config's train.steps)")
    p.add_argument("--seconds", type=float, help="--budget seconds: training seconds per run")
    p.add_argument("--seeds", help="train.seed values, each run for every mode, e.g. 0,1 (default: the config's seed); several give mean ± std")
    p.add_argument("--name", help="runs/compare-NAME (default: <dataset>-<budget>); run it again to resume")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key in every run (repeatable)")
    p.add_argument("--eval-samples", type=int, default=10000, help="generated images for each run's final scores (default 10000)")
    p.add_argument("--eval-every", type=float, help="steps (--budget steps) or seconds (--budget seconds) between FID-curve evaluations (default: budget/5)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("prepare", help="decode, resize and shard a dataset once, as TFRecord files that training streams "
                       "(data.name=prepared); --verify checks one")
    p.add_argument("source", nargs="?", metavar="SOURCE", help="an image folder or a .zip/.tar/.tar.gz of one, an IDX "
                   "folder or mnist.npz, or CIFAR-10 (cifar-10-batches-py or its tar.gz)")
    p.add_argument("out", nargs="?", metavar="OUT", help="the folder to write (written as OUT.partial, renamed when complete)")
    p.add_argument("--size", type=int, help="image side in pixels (shorter side resized, centre-cropped), as data.image_size")
    p.add_argument("--channels", type=int, help="1 (grayscale) or 3 (RGB), as data.channels")
    p.add_argument("--shard-mb", type=float, default=64.0, help="about this many MB per shard file (default 64)")
    _picture_options(p, "image folder or archive: label each image by its immediate subfolder (sorted names are "
                     "classes 0, 1, ...), or by FILE: a dataset.json or a CSV (path, class name), inside SOURCE or absolute")
    p.add_argument("--dedupe", action="store_true", help="image folder or archive: drop exact duplicates (the same file "
                   "bytes; they are reported either way)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="IDX, npz, CIFAR-10: which split (default train)")
    p.add_argument("--shuffle", type=int, metavar="SEED", help="store the images in this seed's random order "
                   "(default: the source's order; use it for folders sorted by class)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an earlier prepared dataset (nothing else)")
    p.add_argument("--verify", metavar="DIR", help="instead: check a prepared dataset's shards (sha256), records and content hash")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=command("dcgan.tools.prepare", "prepare_command"))

    from dcgan.tools.project import DEFAULTS as PROJECT  # plain numbers: no TensorFlow behind them

    p = sub.add_parser("project", help="find the latent (and class) whose image is closest to each real picture -> "
                       "RUN/projections/<name>/: target_vs_projection.png, latent.npz (dcgan sample --latents), "
                       "projection.json")
    p.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (latest checkpoint) or a checkpoint path")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG pictures, resized as the run's dataset was")
    p.add_argument("--step", type=int, help="use the run's checkpoint of this step instead of the latest")
    _generator_choice(p, "project with")
    p.add_argument("--class", "--classes", dest="classes", metavar="CLASS",
                   help="conditional runs: project within this class (default: search every class)")
    p.add_argument("--steps", type=int, default=PROJECT["steps"], help=f"Adam steps (default {PROJECT['steps']})")
    p.add_argument("--starts", type=int, default=PROJECT["starts"], help=f"random starts optimised at once, the best "
                   f"kept (default {PROJECT['starts']})")
    p.add_argument("--seed", type=int, default=0, help="seed of the starts (default 0)")
    p.add_argument("--video", nargs="?", const="mp4", choices=("mp4", "gif"), help="also write the optimisation as "
                   "optimisation.mp4 (the [video] extra) or .gif")
    p.add_argument("--out", metavar="DIR", help="where each picture's folder goes (default RUN/projections/)")
    p.add_argument("--force", action="store_true", help="replace an earlier projection's files")
    p.add_argument("--quiet", "-q", action="store_true", help="no notes from the feature network")
    p.set_defaults(func=command("dcgan.tools.project", "project_command"))

    p = sub.add_parser("data", help="a look at an image folder or archive before training: counts, sizes, aspect ratios, "
                       "channels, classes, skipped files, duplicates, and a contact sheet after the crop and resize")
    p.add_argument("path", metavar="PATH", help="an image folder, or a .zip/.tar/.tar.gz of one")
    p.add_argument("--size", type=int, default=64, help="image side the contact sheet shows (default 64), as data.image_size")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="as data.channels (default 3)")
    _picture_options(p, "count the classes: the immediate subfolders, or FILE (a dataset.json or a CSV), as data.labels")
    p.add_argument("--n", type=int, default=64, help="pictures on the contact sheet, drawn at random (default 64)")
    p.add_argument("--seed", type=int, default=0, help="which pictures the contact sheet draws (default 0)")
    p.add_argument("--out", metavar="DIR", help="where data.json, contact.png and histograms.png go (default ./data-<name>/)")
    p.add_argument("--force", action="store_true", help="replace the files of an earlier `dcgan data` in DIR")
    p.set_defaults(func=command("dcgan.tools.look", "look_command"))

    p = sub.add_parser("studio", help="explore a folder of runs in the browser: runs, samples, walks, upsampling, comparisons")
    p.add_argument("runs", nargs="?", default="runs", metavar="RUNS_DIR", help="the folder of runs (default runs/)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860; 0: any free port)")
    p.set_defaults(func=command("dcgan.studio.server", "studio_command", tensorflow=False))  # the page first, TF after

    from dcgan.tools.anatomy import DEFAULT_LATENTS  # no TensorFlow behind it either

    p = sub.add_parser("inspect", help="where the checkerboard comes from: each block's overlap pattern, activation spectrum "
                       "and score, and D's gradient -> RUN/inspect/inspect.png, inspect.json")
    p.add_argument("run", nargs="?", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (latest checkpoint) or a checkpoint path")
    p.add_argument("--init", nargs="?", const="", metavar="CONFIG",
                   help="inspect the untrained models of a YAML config instead (no CONFIG: the built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="with --init: override a config key (repeatable)")
    p.add_argument("--step", type=int, help="use the run's checkpoint of this step instead of the latest")
    _generator_choice(p, "inspect")
    p.add_argument("--n", type=int, default=DEFAULT_LATENTS,
                   help=f"latents (seeds 0..N-1) the activations and gradients are averaged over (default {DEFAULT_LATENTS})")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN/inspect/, or ./inspect-<name>/ with --init)")
    p.set_defaults(func=cmd_inspect)
    return parser


def _picture_options(p, labels_help: str) -> None:
    """data.fit, data.resize, data.pad and data.labels as options (dcgan prepare, dcgan data)."""
    from dcgan.core.schema import FITS, RESIZE_FILTERS

    p.add_argument("--labels", nargs="?", const=True, default=False, metavar="FILE", help=labels_help)
    p.add_argument("--fit", choices=FITS, default="center", help="how a picture becomes square, as data.fit (default center)")
    p.add_argument("--resize", choices=RESIZE_FILTERS, default="area", help="the resize filter, as data.resize (default area)")
    p.add_argument("--pad", default="white", help="the letterbox of --fit pad and center-wide: white | black | edge | #rrggbb")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except DcganError as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dcgan {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # last resort: the specific checks name the file and say why, this at least names the path
        where = f"{e.filename}: " if e.filename else ""
        print(f"dcgan {args.command}: error: {where}{e.strerror or first_line(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"dcgan {args.command}: error: out of memory; ask for less (fewer images, a smaller grid or batch)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
