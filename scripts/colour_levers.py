#!/usr/bin/env python
"""The colour benchmark: two Debian-packaged collections, levers trained side by side, scored offline.

    apt-get install openclipart-png wesnoth-1.16-data
    python scripts/colour_levers.py build --out ~/colour          # ~/colour/clipart, ~/colour/sprites
    python scripts/colour_levers.py floor ~/colour/clipart        # real against real: the scale's floor
    taskset -c 0 python scripts/colour_levers.py run ~/colour/clipart --variants baseline --seeds 0
    taskset -c 1 python scripts/colour_levers.py run ~/colour/clipart --variants k4 --seeds 0
    python scripts/colour_levers.py report ~/colour/clipart       # the table, with the floor row

The collections (copied, links kept as links, so a picture linked into two categories counts once):

    clipart   openclipart-png: every category but computer, shapes and signs_and_symbols (mostly icons):
              drawings of animals, people, food, vehicles, plants, buildings; 2,515 distinct pictures
    sprites   wesnoth-1.16-data's unit sprites (data/core/images/units): painted fantasy units and their
              animation frames on transparent backgrounds, composited over white by the folder source

Each run is `dcgan train -c configs/folder_small.yaml --set data.path=FOLDER --set data.image_size=32` plus the
variant's overrides, stopped by train.time_budget_s=--seconds, one TensorFlow thread (pin one run per core).
Every run is scored by the folder's self-supervised encoder (FID and KID of --n samples against the folder's
images; trained once per folder and cached). The floor row is two random halves of the folder's real images
scored against each other by the same encoder: what a perfect generator would get with that many images.
Rows are merged into --out/results.json (several processes may add theirs); grids.png puts every run's samples
of the same latents side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

from folder_augment import plot_grids  # every run's samples of the same latents, one labelled panel each
from sweep import ints, merge_results

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "folder_small.yaml"
COLLECTIONS = {
    "clipart": (Path("/usr/share/openclipart/png"), ("computer", "shapes", "signs_and_symbols"), "openclipart-png"),
    "sprites": (Path("/usr/share/games/wesnoth/1.16/data/core/images/units"), (), "wesnoth-1.16-data"),
}
# each lever is a list of overrides on top of configs/folder_small.yaml at 32x32
VARIANTS = {
    "baseline": [],
    "k4": ["model.generator.upsampling=transpose", "model.generator.transpose_kernel_size=4"],
    "k4-blur": ["model.generator.upsampling=transpose", "model.generator.transpose_kernel_size=4",
                "model.generator.antialias=true"],
    "blur": ["model.generator.antialias=true"],
    "d-blurpool": ["model.discriminator.downsampling=blurpool"],
    "d-avgpool": ["model.discriminator.downsampling=avgpool"],
    "hinge-sn": ["train.loss=hinge", "model.discriminator.spectral_norm=true"],
    "ttur": ["train.lr_d=0.0004", "train.lr_g=0.0001"],
    "batch32": ["data.batch_size=32"],
    "wide48": ["model.generator.base_channels=48", "model.discriminator.base_channels=48"],
    "ema99": ["train.ema_decay=0.99", "train.ema_warmup=200"],
    "mbstd": ["model.discriminator.minibatch_std=true"],
    "no-ada": ["train.augment=[]", "train.ada_target=null"],
}


def overrides_of(variant: str) -> list[str]:
    """A variant, or several joined by + (k4+ttur): their overrides in order, later ones winning."""
    parts = variant.split("+")
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown:
        raise SystemExit(f"colour_levers: unknown variant {'+'.join(unknown)!r}; choose from {', '.join(VARIANTS)} "
                         "(or several joined by +)")
    return [o for p in parts for o in VARIANTS[p]]


def build(out: Path) -> None:
    for name, (source, left_out, package) in COLLECTIONS.items():
        if not source.is_dir():
            raise SystemExit(f"colour_levers: {source} is missing: apt-get install {package}")
        target = out / name
        if target.exists():
            print(f"{target}: there already, kept", file=sys.stderr)
            continue
        target.mkdir(parents=True)
        for entry in sorted(source.iterdir()):
            if entry.name in left_out:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target / entry.name, symlinks=True)
            elif entry.suffix.lower() == ".png":
                shutil.copy2(entry, target / entry.name, follow_symlinks=False)
        print(f"{target}: built from {source}", file=sys.stderr)


def folder_config(folder: Path, overrides=()):
    from dcgan.core.config import load_config

    return load_config(CONFIG, [f"data.path={folder}", "data.image_size=32", *overrides])


def floor(folder: Path, n_halves: int = 3) -> dict:
    """selfsup FID and KID between two random halves of the folder's images (mean of n_halves splits)."""
    import numpy as np

    from dcgan.data import pipeline as datalib
    from dcgan.evaluation.features import feature_net_for
    from dcgan.evaluation.metrics import feature_stats, fid, kid

    cfg = folder_config(folder)
    images = datalib.load_images(cfg.data, split="all")
    feats = feature_net_for(cfg.data, network="selfsup")(images)
    fids, kids = [], []
    for seed in range(n_halves):
        order = np.random.default_rng(seed).permutation(len(feats))
        a, b = feats[order[: len(order) // 2]], feats[order[len(order) // 2 :]]
        fids.append(fid(*feature_stats(a), *feature_stats(b)))
        kids.append(kid(a, b)[0])
    return {"variant": "floor", "seed": -1, "fid": statistics.mean(fids), "kid": statistics.mean(kids),
            "step": None, "images": len(images), "note": f"two halves of {len(images)} real images, {n_halves} splits"}


def run_one(folder: Path, out: Path, variant: str, seed: int, seconds: float, n: int, sets: list[str]) -> dict:
    from dcgan.tools.evaluate import evaluate
    from dcgan.training.loop import train
    from dcgan.training.rundir import METRICS_FILE, read_metrics

    name = f"{variant}-seed{seed}"
    run = out / name
    if not (run / "config.yaml").exists():
        overrides = [f"train.seed={seed}", f"train.time_budget_s={seconds}", "train.steps=1000000",
                     f"run.dir={out}", f"run.name={name}", *overrides_of(variant), *sets]
        train(folder_config(folder, overrides), quiet=True)
    scores = {r["metric"]: r["value"] for r in evaluate(run, n=n, metrics="fid,kid", quiet=True, network="selfsup")}
    records = read_metrics(run / METRICS_FILE, "train")
    return {"variant": variant, "seed": seed, "fid": scores["fid"], "kid": scores["kid"],
            "step": records[-1]["step"] if records else None,
            "images_per_s": statistics.median(r["images_per_s"] for r in records[1:]) if len(records) > 1 else None,
            "run": str(run)}


def order(results: Path, variants: list[str]) -> list[str]:
    """The table's row order: the floor, the single levers, then combinations as they were first run."""
    seen = [r["variant"] for r in json.loads(results.read_text())] if results.is_file() else []
    return list(dict.fromkeys(["floor", *VARIANTS, *seen, *variants]))


def table(rows: list[dict]) -> str:
    head = ["variant", "seed", "selfsup FID", "selfsup KID", "steps", "images/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([r["variant"], "-" if r["seed"] < 0 else str(r["seed"]), f"{r['fid']:.2f}",
                                         f"{r['kid']:.4f}", "-" if r["step"] is None else f"{r['step']:,}",
                                         "-" if not r.get("images_per_s") else f"{r['images_per_s']:.0f}"]) + " |")
    by = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r["fid"])
    return "\n".join(lines) + "\n\nmean selfsup FID: " + ", ".join(
        f"{v} {statistics.mean(f):.2f}" + (f" (±{statistics.stdev(f):.2f})" if len(f) > 1 else "") for v, f in by.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="copy the collections into --out")
    p.add_argument("--out", type=Path, required=True)
    for command in ("floor", "run", "report"):
        p = sub.add_parser(command)
        p.add_argument("folder", type=Path)
        p.add_argument("--out", type=Path, help="parent of the runs (default runs/colour-<folder name>)")
        if command == "run":
            p.add_argument("--variants", default="baseline", help=f"comma-separated, of {', '.join(VARIANTS)}")
            p.add_argument("--seeds", type=ints, default=[0])
            p.add_argument("--seconds", type=float, default=600.0)
            p.add_argument("--n", type=int, default=10000, help="generated images per score (default 10000)")
            p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.out.expanduser())
        return 0
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")  # one core per run: pin runs side by side
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    out = args.out or Path("runs") / f"colour-{args.folder.name}"
    results = out / "results.json"
    from dcgan.core.errors import DcganError

    try:
        if args.command == "floor":
            out.mkdir(parents=True, exist_ok=True)
            rows = merge_results(results, [floor(args.folder)], ("variant", "seed"), order(results, []))
        elif args.command == "run":
            variants = [v.strip() for v in args.variants.split(",")]
            for v in variants:
                overrides_of(v)
            out.mkdir(parents=True, exist_ok=True)
            for variant in variants:
                for seed in args.seeds:
                    row = run_one(args.folder, out, variant, seed, args.seconds, args.n, args.sets)
                    print(f"{variant}, seed {seed}: selfsup FID {row['fid']:.2f} at step {row['step']}", file=sys.stderr)
                    rows = merge_results(results, [row], ("variant", "seed"), order(results, variants))
        else:
            rows = json.loads(results.read_text()) if results.is_file() else []
            print(f"grids: {plot_grids(out, [r for r in rows if r.get('run')])}", file=sys.stderr)
    except DcganError as e:
        print(f"colour_levers: error: {e}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
