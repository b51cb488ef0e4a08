"""Peak resident memory of colour training at high resolution: the default widths, a few steps, in a fresh process.

Writes a folder of colour PNGs at each --size (smooth gradients and discs: memory does not depend on what the
pictures show), trains `dcgan train` from it for --steps steps with the default model widths and batch, and
prints that process's peak resident memory (ru_maxrss), its wall time and the images/s of its last log line.
The run ends as every run does (the EMA copy's BatchNorm recalibration, the final grid, the exported
generator); only the sampler choice, which needs a feature network, is off.

    python scripts/highres_memory.py --sizes 128 256 --steps 50
    python scripts/highres_memory.py --sizes 256 --batches 16 32 --steps 50
    python scripts/highres_memory.py --sizes 128 256 --steps 50 --micro-batch 16

Memory grows with the batch: the generator's activations kept for the backward pass are most of it. With
--micro-batch M (train.micro_batch) each update runs the batch in passes of M images, so only one pass's
activations are alive: the batch-64 update in the memory of a batch of M.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_memory import run_measured  # noqa: E402  (one way to measure a child process, shared)

DCGAN = Path(sys.executable).with_name("dcgan")


def write_pictures(folder: Path, size: int, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    folder.mkdir(parents=True)
    for i in range(n):
        a, b, c = rng.uniform(0, 1, 3)
        picture = np.stack([a * xx + (1 - a) * yy, b * (1 - xx), c * yy * xx], axis=-1)
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3)
        picture[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 1, 3)
        Image.fromarray((picture * 255).astype(np.uint8)).save(folder / f"{i:04d}.png")


def measure(size: int, steps: int, images: int, work: Path, batch: int, micro: int | None = None) -> dict:
    pictures = work / f"pictures{size}"
    if not pictures.exists():
        write_pictures(pictures, size, images)
    cmd = [str(DCGAN), "train", "--quiet", "--set", "data.name=folder", "--set", f"data.path={pictures}",
           "--set", f"data.image_size={size}", "--set", "data.channels=3", "--set", f"data.batch_size={batch}", "--set", f"train.steps={steps}",
           "--set", f"train.log_every={steps}", "--set", f"train.sample_every={steps}",
           "--set", f"train.checkpoint_every={steps}", "--set", "train.select_sampler=false",
           "--set", f"run.dir={work / 'runs'}", "--set", f"run.name=res{size}-batch{batch}"]
    if micro:
        cmd += ["--set", f"train.micro_batch={micro}"]
    env = {**os.environ, "DCGAN_CACHE": str(work / "cache")}
    status, seconds, peak, err = run_measured(cmd, work, env=env)
    if status != 0:
        raise SystemExit(f"size {size}: dcgan train failed ({status}): {err.strip().splitlines()[-1] if err.strip() else ''}")
    records = map(json.loads, (work / "runs" / f"res{size}-batch{batch}" / "metrics.jsonl").read_text().splitlines())
    last = [r for r in records if r.get("kind") == "train"][-1]
    return {"size": size, "batch": batch, "micro": micro or batch, "steps": steps, "peak_gb": peak / 1e9, "seconds": seconds,
            "images_per_s": last.get("images_per_s")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[64], help="data.batch_size of each run (default 64)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="train.micro_batch: images per pass of each update (default: the whole batch at once)")
    parser.add_argument("--images", type=int, default=128, help="pictures in each folder (at least one batch)")
    args = parser.parse_args()
    print("| size | batch | images per pass | steps | peak resident memory | wall | images/s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for batch in args.batches:
                r = measure(size, args.steps, max(args.images, batch), Path(tmp), batch, args.micro_batch)
                print(f"| {r['size']}x{r['size']}x3 | {r['batch']} | {r['micro']} | {r['steps']} | {r['peak_gb']:.2f} GB | "
                      f"{r['seconds']:.0f} s | {r['images_per_s']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
