#!/usr/bin/env python
"""Benchmark the train step against the minimal reference loop, per upsampling mode and image shape.

    python scripts/benchmark.py                                   # 28x28x1 and 32x32x3, all three modes
    python scripts/benchmark.py --shapes 28x1 --modes upsample --windows 7
    python scripts/benchmark.py -- --config configs/mnist.yaml    # anything after -- goes to `dcgan benchmark`

Each configuration runs `dcgan benchmark` in its own process (a clean TensorFlow
each time); the table at the end collects their JSON figures.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPES = {"28x1": ["data.name=fashion_mnist", "data.image_size=28", "data.channels=1"],
          "32x3": ["data.name=cifar10", "data.image_size=32", "data.channels=3"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="transpose,upsample,subpixel")
    parser.add_argument("--shapes", default="28x1,32x3", help=f"comma list of {', '.join(SHAPES)}")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-steps", type=int, default=20)
    parser.add_argument("--ema", type=float, default=0.995, help="train.ema_decay for the app step (EMA on, as by default)")
    parser.add_argument("extra", nargs="*", help="more arguments for `dcgan benchmark` (after --)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            for mode in args.modes.split(","):
                out = Path(tmp) / f"{shape}-{mode}.json"
                sets = SHAPES[shape] + [f"model.generator.upsampling={mode}", f"train.ema_decay={args.ema}"]
                if mode == "transpose":
                    sets.append("model.generator.transpose_kernel_size=4")
                cmd = [sys.executable, "-m", "dcgan", "benchmark", "--windows", str(args.windows),
                       "--window-steps", str(args.window_steps), "--no-sampling", "--json", str(out), *args.extra]
                cmd += ["--synthetic"] if shape == "32x3" else []
                for s in sets:
                    cmd += ["--set", s]
                print(f"== {shape} {mode}", flush=True)
                subprocess.run(cmd, check=True)
                rows.append((shape, mode, json.loads(out.read_text())))
    print("\n| shape | mode | G GFLOP/img | train GFLOP/img | reference img/s | app img/s (in-memory) | app img/s (tf.data) | app/reference | GFLOP/s (% of peak) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape, mode, r in rows:
        ips = r["images_per_s"]
        pct = 100 * r["achieved_gflops_per_s"] / r["peak_gflops_per_s"]
        print(f"| {shape} | {mode} | {r['generator_gflops_per_image']:.3f} | {r['train_gflops_per_image']:.3f} | "
              f"{ips['reference']:.0f} | {ips['app_synthetic']:.0f} | {ips['app_pipeline']:.0f} | "
              f"{r['ratio_app_pipeline']:.2f} | {r['achieved_gflops_per_s']:.0f} ({pct:.0f}%) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
