"""Peak resident memory of training from an in-memory dataset, against the size of its pixels.

Tiles Fashion-MNIST's training images (or random images, with --synthetic) into one IDX file of about
--gigabytes of pixels, trains the default model a few steps from it in a fresh process
(`dcgan train --set data.path=...`), and prints that process's peak resident memory (ru_maxrss) next to
the data's size. The same command with --gigabytes 0.05 gives the constant (TensorFlow, the model).

    python scripts/data_memory.py --gigabytes 1.0
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")


def source_images(synthetic: bool) -> np.ndarray:
    if synthetic or not FASHION.is_dir():
        return np.random.default_rng(0).integers(0, 256, (60000, 28, 28), dtype=np.uint8)
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def write_tiled_idx(folder: Path, images: np.ndarray, n: int) -> None:
    """train/t10k images and labels as plain (not gzipped) IDX files, the training set tiled to n images."""
    with open(folder / "train-images-idx3-ubyte", "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", n, 28, 28))
        for start in range(0, n, len(images)):
            f.write(images[: min(len(images), n - start)].tobytes())
    for prefix, count in (("train", n), ("t10k", 1000)):
        with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", count) + bytes(count))
    with open(folder / "t10k-images-idx3-ubyte", "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 1000, 28, 28) + images[:1000].tobytes())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0, help="pixels of the tiled training set (default 1.0)")
    parser.add_argument("--steps", type=int, default=50, help="training steps (default 50)")
    parser.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")
    args = parser.parse_args(argv)
    n = max(1000, int(args.gigabytes * 1e9 / (28 * 28)))
    work = Path(tempfile.mkdtemp(prefix="dcgan-memory-"))
    try:
        write_tiled_idx(work, source_images(args.synthetic), n)
        data_bytes = n * 28 * 28
        cmd = [sys.executable, "-m", "dcgan", "train", "--quiet", "--set", "data.name=mnist", "--set", f"data.path={work}",
               "--set", f"train.steps={args.steps}", "--set", "train.select_sampler=false",
               "--set", f"train.log_every={args.steps}", "--set", f"run.dir={work / 'runs'}"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
        print(f"images {n:,}  pixels {data_bytes / 1e9:.2f} GB  peak resident {peak / 1e9:.2f} GB  "
              f"ratio {peak / data_bytes:.2f}x  ({args.steps} steps, {seconds:.0f} s, {cpu}, {os.cpu_count()} cores)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
