#!/usr/bin/env python
"""The memorisation probe: how close a run's generator gets to training images against images it never saw.

    python scripts/memorisation_probe.py runs/fashion_mnist-upsample --n 100 --steps 200 --starts 4

Projects --n training images and --n test images (a seeded choice of each split) with `dcgan project`'s optimiser
(dcgan.tools.project.project) and the run's own feature network, and prints the distances: a generator that copies
its training set reconstructs training images clearly better than test images; one that generalises, about the same.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from dcgan.api import load
from dcgan.data import pipeline as datalib
from dcgan.evaluation.features import feature_net_for
from dcgan.tools.project import project


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--starts", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    gen = load(args.run)
    cfg = gen.config
    net = feature_net_for(cfg.data, network=cfg.train.feature_network)
    rows = []
    for split in ("train", "test"):
        images = datalib.load_images(cfg.data, split=split)
        pick = np.sort(np.random.default_rng(args.seed).choice(len(images), args.n, replace=False))
        start = time.perf_counter()
        results = project(gen, net, {f"{split}-{i}": images[i] for i in pick}, args.steps, args.starts, args.seed)
        seconds = time.perf_counter() - start
        feature = [r.distances["feature"] for r in results]
        pixel = [r.distances["pixel_mse"] for r in results]
        rows.append({"split": split, "n": args.n, "feature_mean": statistics.mean(feature),
                     "feature_median": statistics.median(feature), "feature_sd": statistics.stdev(feature),
                     "pixel_mse_mean": statistics.mean(pixel), "pixel_mse_median": statistics.median(pixel),
                     "seconds_per_image": seconds / args.n})
    print("| images | n | feature distance, mean ± sd | median | pixel MSE ([-1, 1]), mean | median | s per image |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['split']} | {r['n']} | {r['feature_mean']:.4g} ± {r['feature_sd']:.2g} | {r['feature_median']:.4g} | "
              f"{r['pixel_mse_mean']:.4f} | {r['pixel_mse_median']:.4f} | {r['seconds_per_image']:.2f} |")
    print(f"run {args.run}, step {gen.step}, {gen.describe()}, feature network {net.key}, {args.steps} steps x "
          f"{args.starts} starts")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
