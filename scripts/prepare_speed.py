#!/usr/bin/env python
"""How fast a folder of PNGs is prepared, and how fast training starts from the result.

    python scripts/prepare_speed.py                      # 50,000 64x64 RGB PNGs
    python scripts/prepare_speed.py --n 2000 --size 32   # a one-minute smoke test

Writes --n PNGs into a scratch folder (Fashion-MNIST garments, resized to --size and tinted a random colour each, so
every file is its own picture and compresses like one; random pixels without Fashion-MNIST), then times:

    prepare        `dcgan prepare FOLDER OUT --size S --channels 3` in a fresh process: wall seconds, images/s
    start          `dcgan train` from the prepared dataset (data.name=prepared), twice: seconds from launching the
                   process to its first training step done (TensorFlow's import and the step's trace included),
                   read from the run's metrics.jsonl as it appears
    folder start   the same from the folder itself (data.name=folder), twice: the first decodes it into the
                   folder cache, the second reads the cache

and prints one line each with the machine. The scratch folder is removed at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def write_pngs(folder: Path, n: int, size: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    if FASHION.is_file():
        from dcgan.data.mnist import read_idx

        garments = read_idx(FASHION)
    else:
        garments = rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8)
    folder.mkdir(parents=True)
    for i in range(n):
        gray = np.asarray(Image.fromarray(garments[i % len(garments)]).resize((size, size), Image.BILINEAR), np.float32)
        tint = rng.uniform(0.3, 1.0, 3)
        rgb = (gray[..., None] * tint + (255 - gray[..., None]) * rng.uniform(0, 0.3, 3)).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:06d}.png")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"prepare_speed: {' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def seconds_to_first_step(data: list[str], runs: Path, name: str) -> float:
    """Launch a one-step `dcgan train` and return when its first train record lands in metrics.jsonl."""
    metrics = runs / name / "metrics.jsonl"
    cmd = [sys.executable, "-m", "dcgan", "train", "--quiet", *data, "--set", "train.steps=1", "--set", "train.log_every=1",
           "--set", "train.select_sampler=false", "--set", f"run.dir={runs}", "--set", f"run.name={name}"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while first is None and proc.poll() is None:
        if metrics.is_file() and '"kind": "train"' in metrics.read_text():
            first = time.perf_counter() - start
        time.sleep(0.02)
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"prepare_speed: training failed:\n{err[-2000:]}")
    if first is None:  # it finished between two polls
        first = time.perf_counter() - start
    return first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="PNG files (default 50,000)")
    parser.add_argument("--size", type=int, default=64, help="their side and the prepared size (default 64)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dcgan-prepare-speed-"))
    env_cache = work / "cache"  # a cold folder cache, not the user's
    os.environ["DCGAN_CACHE"] = str(env_cache)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    machine = f"{cpu}, {os.cpu_count()} cores"
    try:
        t0 = time.perf_counter()
        write_pngs(work / "pngs", args.n, args.size)
        mb = sum(f.stat().st_size for f in (work / "pngs").iterdir()) / 1e6
        print(f"wrote {args.n:,} {args.size}x{args.size} RGB PNGs ({mb:.0f} MB) in {time.perf_counter() - t0:.0f} s", flush=True)
        seconds = timed([sys.executable, "-m", "dcgan", "prepare", str(work / "pngs"), str(work / "prepared"),
                         "--size", str(args.size), "--channels", "3", "--quiet"])
        print(f"prepare: {args.n:,} PNGs in {seconds:.1f} s = {args.n / seconds:,.0f} images/s ({machine})", flush=True)
        shape = ["--set", f"data.image_size={args.size}", "--set", "data.channels=3"]
        prepared = ["--set", "data.name=prepared", "--set", f"data.path={work / 'prepared'}", *shape]
        folder = ["--set", "data.name=folder", "--set", f"data.path={work / 'pngs'}", *shape]
        for label, data in (("prepared", prepared), ("folder", folder)):
            starts = [seconds_to_first_step(data, work / "runs", f"{label}-{i}") for i in range(2)]
            print(f"start from the {label}: first step {starts[0]:.1f} s, then {starts[1]:.1f} s after launch "
                  f"({'the first decodes the folder into its cache' if label == 'folder' else 'both read the shards'})",
                  flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
