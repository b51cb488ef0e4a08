"""Sampling: images from a run's checkpoint by seed, as a grid, PNG files, an npz or a latent walk.

A seed names one latent vector (numpy's default_rng(seed)), so an image can be
asked for again by its seed, alone or among any others. Arguments and output
paths are checked before TensorFlow is imported, so a typo fails at once rather
than after a model has been built.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcgan import viz
from dcgan.checkpoints import find_checkpoint
from dcgan.errors import DcganError
from dcgan.rundir import atomic_write, check_output, inside, lock_run, read_run_config

if TYPE_CHECKING:
    from dcgan.gan import RunGenerator

DEFAULT_GRID = (8, 8)
GRID_FILE = "sample_grid.png"
WALK_FILE = "interpolation.gif"
DEFAULT_FRAMES = 16
MAX_SEEDS = 1_000_000  # a typo like 0-1000000000 should fail, not fill the memory
# One grid PNG, walk strip or GIF: 10,000 images is a 100x100 grid, or 1,000 s of GIF at 100 ms a frame.
MAX_PICTURE_IMAGES = 10_000
MAX_PICTURE_PIXELS = 100_000_000  # a 10,000 x 10,000 picture: 300 MB of RGB before PNG compresses it
MAX_SAMPLE_BYTES = 4 << 30  # the uint8 images of one call, all held in memory before they are written
MAX_TRUNCATION = 10.0  # z ~ N(0, 1): past ~3 the generator saturates; 1e308 overflows float32 to inf
GIF_FRAME_MS = 100
WALKS = ("gif", "strip")


# ---------------------------------------------------------------- arguments


def parse_seeds(text: str) -> list[int]:
    """'0-15,42' -> [0, 1, ..., 15, 42]; ranges are inclusive, order and repeats are kept."""
    seeds: list[int] = []
    for item in text.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d{1,18})(?:\s*-\s*(\d{1,18}))?", item)  # int() refuses > 4300 digits
        if not m:
            raise DcganError(f"--seeds {text!r}: {item!r} is not a seed or a range like 0-15 "
                             "(seeds are integers >= 0 of at most 18 digits)")
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo:
            raise DcganError(f"--seeds {text!r}: range {item!r} runs backwards")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise DcganError(f"--seeds {text!r}: more than {MAX_SEEDS} seeds")
        seeds.extend(range(lo, hi + 1))
    return seeds


def parse_grid(text: str) -> tuple[int, int]:
    """'8x4' -> (8 rows, 4 columns)."""
    m = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", text)  # larger is refused anyway, as too many cells
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise DcganError(f"--grid {text!r}: expected ROWSxCOLS with positive integers, e.g. 8x8")
    return int(m[1]), int(m[2])


def latents(seeds, latent_dim: int, truncation: float = 1.0) -> np.ndarray:
    """One standard normal vector per seed, each from its own generator, scaled by truncation."""
    z = np.empty((len(seeds), latent_dim), np.float32)
    for i, seed in enumerate(seeds):
        z[i] = np.random.default_rng(seed).standard_normal(latent_dim)
    return z * np.float32(truncation) if truncation != 1.0 else z


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: Gaussian latents live near a sphere, a straight line cuts inside it.

    t = 0 and t = 1 give a and b exactly, so a walk's endpoints are its seeds' images.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:  # (anti)parallel: the great circle is undefined, a line is as good
        out = (1.0 - t) * a64 + t * b64
    else:
        out = (np.sin((1.0 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def walk_length(segments: int, frames: int) -> int:
    """Latents (images) of a walk: `frames` per segment, then the last endpoint."""
    return segments * frames + 1


def walk(endpoints: np.ndarray, frames: int) -> np.ndarray:
    """K+1 endpoints -> K*frames+1 latents: `frames` steps per segment, then the last endpoint."""
    steps = [slerp(a, b, i / frames) for a, b in zip(endpoints[:-1], endpoints[1:]) for i in range(frames)]
    return np.stack(steps + [endpoints[-1]])


# ---------------------------------------------------------------- outputs


def output_kind(out: str | None, interpolate: int | None) -> str:
    """grid | strip | gif | npz | dir, from the output path's suffix."""
    suffix = Path(out).suffix.lower() if out and not out.endswith(("/", os.sep)) and not Path(out).is_dir() else ""
    if interpolate is not None:
        if out is None or suffix == ".gif":
            return "gif"
        if suffix == ".png":
            return "strip"
        raise DcganError(f"--out {out}: an interpolation is written as a .gif animation or a .png strip")
    if out is None or suffix == ".png":
        return "grid"
    if suffix == ".npz":
        return "npz"
    if suffix == ".gif":
        raise DcganError(f"--out {out}: a .gif is written for --interpolate only")
    if suffix:
        raise DcganError(f"--out {out}: unsupported file type {suffix}; use a directory, .png, .npz or .gif")
    return "dir"


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def grid_layout(n: int) -> tuple[int, int]:
    """A near-square layout for n images (columns >= rows)."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def fill_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The grid picture; cells past the last image stay black."""
    blank = np.zeros((rows * cols - len(images), *images.shape[1:]), np.uint8)
    return viz.image_grid(np.concatenate([images, blank]), rows, cols)


# ---------------------------------------------------------------- the command


@dataclass
class Request:
    """What to sample and where to write it, validated."""

    kind: str
    seeds: list[int]
    out: Path | None  # None: the default file inside the run directory
    grid: tuple[int, int] | None = None
    frames: int = DEFAULT_FRAMES

    def generated(self) -> int:
        """Images to generate: one per seed, or every frame of the walk."""
        return walk_length(len(self.seeds) - 1, self.frames) if self.kind in WALKS else len(self.seeds)

    def picture_images(self) -> int:
        """Images the output picture holds (0: an npz or a PNG per seed is no one picture)."""
        if self.kind == "grid":
            return self.grid[0] * self.grid[1]
        return walk_picture_images(self.kind, len(self.seeds) - 1, self.frames) if self.kind in WALKS else 0


def walk_picture_images(kind: str, segments: int, frames: int) -> int:
    """The GIF's frames, or the strip's cells: each of its rows also shows the segment's last endpoint."""
    return walk_length(segments, frames) if kind == "gif" else segments * (frames + 1)


def check_picture(what: str, images: int, hint: str) -> None:
    """Refuse a picture too large to hold, before its seeds are even listed."""
    if images > MAX_PICTURE_IMAGES:
        raise DcganError(f"{what}: {images:,} images in one picture; at most {MAX_PICTURE_IMAGES:,} ({hint})")


def check_output_size(request: Request, size: int, channels: int) -> None:
    """Pixels and bytes, known once the run's config gives the image size (1024 pixels is 1,300 times 28x28)."""
    cells, images = request.picture_images(), request.generated()
    if cells * size * size > MAX_PICTURE_PIXELS:
        raise DcganError(f"{cells:,} images of {size}x{size} make a {cells * size * size / 1e6:,.0f}-megapixel picture; "
                         f"at most {MAX_PICTURE_PIXELS / 1e6:.0f} megapixels (a smaller --grid, fewer seeds, frames or segments)")
    if images * size * size * channels > MAX_SAMPLE_BYTES:
        raise DcganError(f"{images:,} images of {size}x{size}x{channels} are {images * size * size * channels / 2**30:,.1f} GiB; "
                         f"at most {MAX_SAMPLE_BYTES >> 30} GiB per call (split --seeds or --n over several calls)")


def parse_request(seeds: str | None = None, n: int | None = None, grid: str | None = None, out: str | None = None,
         interpolate: int | None = None, frames: int | None = None, truncation: float = 1.0) -> Request:
    """Check every argument (no TensorFlow needed) and decide the seeds and the layout."""
    if seeds is not None and n is not None:
        raise DcganError("give --seeds or --n, not both")
    if n is not None and not 1 <= n <= MAX_SEEDS:
        raise DcganError(f"--n {n}: must be between 1 and {MAX_SEEDS}")
    if not 0 < truncation <= MAX_TRUNCATION:  # nan fails both comparisons
        raise DcganError(f"--truncation {truncation:g}: must be in (0, {MAX_TRUNCATION:g}] (1 = no truncation)")
    if frames is not None and interpolate is None:
        raise DcganError("--frames applies to --interpolate only")
    kind = output_kind(out, interpolate)
    chosen = parse_seeds(seeds) if seeds is not None else (list(range(n)) if n is not None else None)
    layout = parse_grid(grid) if grid is not None else None
    if layout and kind != "grid":
        raise DcganError("--grid applies to a grid PNG only (no --out, or --out FILE.png)")
    if kind in WALKS:
        if interpolate < 1:
            raise DcganError(f"--interpolate {interpolate}: must be at least 1 (the number of segments)")
        frames = DEFAULT_FRAMES if frames is None else frames
        if frames < 1:
            raise DcganError(f"--frames {frames}: must be at least 1")
        check_picture(f"--interpolate {interpolate} --frames {frames}", walk_picture_images(kind, interpolate, frames),
                      "fewer segments or frames")
        chosen = list(range(interpolate + 1)) if chosen is None else chosen
        if len(chosen) != interpolate + 1:
            raise DcganError(f"--interpolate {interpolate} walks between {interpolate + 1} seeds, got {len(chosen)}")
        return Request(kind, chosen, Path(out) if out else None, frames=frames)
    if kind == "grid":
        layout = layout or (grid_layout(len(chosen)) if chosen is not None else DEFAULT_GRID)
        cells = layout[0] * layout[1]
        given = f"--grid {grid}" if grid is not None else f"--n {n}" if n is not None else f"--seeds {seeds!r}"
        check_picture(given, cells, "for more images write --out DIR/ or --out FILE.npz")
        if chosen is None:
            chosen = list(range(cells))
        elif grid is not None and len(chosen) != cells:
            raise DcganError(f"--grid {grid} has {cells} cells but {len(chosen)} seeds were given")
    elif chosen is None:
        chosen = list(range(DEFAULT_GRID[0] * DEFAULT_GRID[1]))
    return Request(kind, chosen, Path(out) if out else None, grid=layout)


def default_output(request: Request, run_dir: Path) -> Path:
    if request.out is not None:
        return request.out
    return run_dir / (WALK_FILE if request.kind == "gif" else GRID_FILE)


def sample(target: str | Path, step: int | None = None, seeds: str | None = None, n: int | None = None,
           grid: str | None = None, out: str | None = None, interpolate: int | None = None,
           frames: int | None = None, truncation: float = 1.0, use_ema: bool | None = None, batch_size: int = 500) -> str:
    """`dcgan sample`: write the requested images; returns a one-line summary."""
    request = parse_request(seeds, n, grid, out, interpolate, frames, truncation)
    if batch_size < 1:
        raise DcganError(f"--batch-size {batch_size}: must be at least 1")
    if request.out is not None:
        check_output(request.out, is_dir=request.kind == "dir")
    checkpoint = find_checkpoint(target, step)
    cfg = read_run_config(checkpoint.run_dir)
    check_output_size(request, cfg.data.image_size, cfg.data.channels)
    path = default_output(request, checkpoint.run_dir)
    # into the run (its sample_grid.png, by default) is a write into the run: not while another command writes there
    with lock_run(checkpoint.run_dir, "dcgan sample") if inside(path, checkpoint.run_dir) else contextlib.nullcontext():
        return _sample(request, checkpoint, cfg, path, truncation, use_ema, batch_size)


def _sample(request: Request, checkpoint, cfg, path: Path, truncation: float, use_ema: bool | None, batch_size: int) -> str:
    from dcgan.gan import generate_images, load_generator  # TensorFlow: only once the request is known to be good

    gen = load_generator(checkpoint, use_ema, cfg)
    z = latents(request.seeds, gen.latent_dim, truncation)
    if request.kind in WALKS:
        z = walk(z, request.frames)
    start = time.perf_counter()
    images = generate_images(gen.model, z, batch_size)
    seconds = time.perf_counter() - start
    try:
        write(request, path, images, gen, truncation)
    except OSError as e:
        raise DcganError(f"cannot write {path}: {e.strerror or e}") from None
    return f"{path}: {len(images)} images from {gen.describe()} in {seconds:.2f} s ({len(images) / max(seconds, 1e-9):.0f} images/s)"


def write(request: Request, path: Path, images: np.ndarray, gen: RunGenerator, truncation: float) -> None:
    if request.kind == "grid":
        viz.save_png(path, fill_grid(images, *request.grid))
    elif request.kind == "dir":
        for seed, image in zip(request.seeds, images):
            viz.save_png(path / f"seed_{seed:04d}.png", image)
    elif request.kind == "npz":
        atomic_write(path, npz_bytes(images=images, seeds=np.asarray(request.seeds, np.int64),
                                     step=np.int64(gen.checkpoint.step), ema=np.bool_(gen.ema),
                                     truncation=np.float32(truncation)))
    elif request.kind == "gif":
        viz.save_gif(path, list(images), duration_ms=GIF_FRAME_MS)
    else:  # strip: one row per segment, both endpoints shown
        f = request.frames
        rows = [images[k * f : k * f + f + 1] for k in range(len(request.seeds) - 1)]
        viz.save_png(path, viz.image_grid(np.concatenate(rows), len(rows), f + 1))
