"""Sampling: images from a run's checkpoint by seed (and class), as a grid, PNG files, an npz or a latent walk.

A seed names one latent vector (numpy's default_rng(seed)), so an image can be
asked for again by its seed, alone or among any others. A conditional run draws
each seed in each chosen class (every class unless --class says): the latent is
the same whatever the class, so across classes a seed keeps its "style". Arguments
and output paths are checked before TensorFlow is imported, so a typo fails at
once rather than after a model has been built.
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

from dcgan.core import viz
from dcgan.training.checkpoints import find_checkpoint
from dcgan.core.errors import DcganError, clip, printable
from dcgan.training.rundir import read_classes, read_run_config
from dcgan.core.files import atomic_write, check_output, inside, lock_run

if TYPE_CHECKING:
    from dcgan.training.gan import RunGenerator

DEFAULT_GRID = (8, 8)
DEFAULT_CLASS_SEEDS = 8  # several classes: one row per class, seeds 0..7 across
LISTED_CLASSES = 12  # an error lists at most this many of a run's classes (a folder dataset may have hundreds)
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


def parse_class_list(text: str) -> list[str | tuple[int, int]]:
    """'0-3,sneaker' -> [(0, 3), 'sneaker']: inclusive index ranges and names, order and repeats kept.

    Only the syntax is checked here: which names and indices exist is the run's to say (resolve_classes).
    """
    picks: list[str | tuple[int, int]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise DcganError(f"--class {clip(text)!r}: an empty item; give class names or indices separated by "
                             "commas, e.g. 0-3,sneaker (or all)")
        m = re.fullmatch(r"(\d{1,18})(?:\s*-\s*(\d{1,18}))?", item)  # anything else is a name: T-shirt/top has a '-'
        if m and int(m[2] or m[1]) < int(m[1]):
            raise DcganError(f"--class {clip(text)!r}: range {item!r} runs backwards")
        picks.append((int(m[1]), int(m[2] or m[1])) if m else item)
    return picks


def class_key(name: str) -> str:
    """How a class name is matched: any case, and '_' for a space (ankle_boot needs no quotes)."""
    return re.sub(r"[\s_]+", " ", name.strip()).casefold()


def class_list(names: list[str]) -> str:
    """'0: T-shirt/top, 1: Trouser, ...' for an error message, cut short for a run with many classes."""
    shown = [f"{i}: {printable(name)}" for i, name in enumerate(names[:LISTED_CLASSES])]
    if len(names) > LISTED_CLASSES:
        shown.append(f"... {len(names) - 1}: {printable(names[-1])}")
    return ", ".join(shown)


def resolve_classes(text: str | None, names: list[str] | None, run_dir) -> list[int] | None:
    """--class against the run's class names -> label indices; every class when not given; None: unconditional run."""
    if names is None:
        if text is not None:
            raise DcganError(f"--class {clip(text)!r}: {run_dir} is an unconditional run; it has no classes")
        return None
    if text is None:
        return list(range(len(names)))
    by_key: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        by_key.setdefault(class_key(name), []).append(index)
    chosen: list[int] = []
    for pick in parse_class_list(text):
        if isinstance(pick, tuple):
            if pick[1] >= len(names):
                raise DcganError(f"--class {clip(text)!r}: no class {pick[1]}; the classes are {class_list(names)}")
            chosen.extend(range(pick[0], pick[1] + 1))
        elif class_key(pick) == "all":
            chosen.extend(range(len(names)))
        elif len(by_key.get(class_key(pick), [])) == 1:
            chosen.extend(by_key[class_key(pick)])
        else:
            matches = by_key.get(class_key(pick))
            why = (f"{clip(pick)!r} names classes {', '.join(map(str, matches))}, give an index" if matches
                   else f"unknown class {clip(pick)!r}")
            raise DcganError(f"--class {clip(text)!r}: {why}; the classes are {class_list(names)}")
    return chosen


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
    classes: list[int] | None = None  # a conditional run's labels: each seed (or the walk) in each class, class-major

    def generated(self) -> int:
        """Images to generate: one per seed and class, or every frame of the walk."""
        if self.kind in WALKS:
            return walk_length(len(self.seeds) - 1, self.frames)
        return len(self.seeds) * (len(self.classes) if self.classes else 1)

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
         interpolate: int | None = None, frames: int | None = None, truncation: float = 1.0,
         classes: list[int] | None = None) -> Request:
    """Check every argument (no TensorFlow needed) and decide the seeds and the layout.

    classes: a conditional run's labels (resolve_classes); one class lays out as an unconditional run does,
    several make a grid of one row per class and one column per seed.
    """
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
        if classes is not None and len(classes) != 1:
            raise DcganError(f"--interpolate walks within one class of a conditional run, not {len(classes)}: "
                             "give --class with one name or index")
        return Request(kind, chosen, Path(out) if out else None, frames=frames, classes=classes)
    if classes is not None and len(classes) > 1:
        return class_rows_request(kind, chosen, out, grid, classes)
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
    return Request(kind, chosen, Path(out) if out else None, grid=layout, classes=classes)


def class_rows_request(kind: str, chosen: list[int] | None, out: str | None, grid: str | None, classes: list[int]) -> Request:
    """Several classes: each seed in each class; a grid is one row per class, one column per seed."""
    chosen = list(range(DEFAULT_CLASS_SEEDS)) if chosen is None else chosen
    layout = None
    if kind == "grid":
        if grid is not None:
            raise DcganError(f"--grid {grid}: a grid of {len(classes)} classes is one row per class and one column "
                             "per seed; drop --grid, or give one --class")
        layout = (len(classes), len(chosen))
        check_picture(f"{len(classes)} classes x {len(chosen):,} seeds", len(classes) * len(chosen),
                      "fewer classes or seeds, or write --out DIR/ or --out FILE.npz")
    return Request(kind, chosen, Path(out) if out else None, grid=layout, classes=classes)


def default_output(request: Request, run_dir: Path) -> Path:
    if request.out is not None:
        return request.out
    return run_dir / (WALK_FILE if request.kind == "gif" else GRID_FILE)


def sample(target: str | Path, step: int | None = None, seeds: str | None = None, n: int | None = None,
           grid: str | None = None, out: str | None = None, interpolate: int | None = None,
           frames: int | None = None, truncation: float = 1.0, use_ema: bool | None = None, batch_size: int = 500,
           classes: str | None = None) -> str:
    """`dcgan sample`: write the requested images; returns a one-line summary.

    classes: --class as given (names, indices, ranges, all); a conditional run without it samples every class.
    """
    asked = dict(seeds=seeds, n=n, grid=grid, out=out, interpolate=interpolate, frames=frames, truncation=truncation)
    request = parse_request(**asked)  # what needs no run: a typo or a huge picture fails before the run is looked up
    if classes is not None:
        parse_class_list(classes)  # and so does a malformed --class; its names wait for the run's classes.json
    if batch_size < 1:
        raise DcganError(f"--batch-size {batch_size}: must be at least 1")
    if request.out is not None:
        check_output(request.out, is_dir=request.kind == "dir")
    checkpoint = find_checkpoint(target, step)
    cfg = read_run_config(checkpoint.run_dir)
    labels = resolve_classes(classes, read_classes(checkpoint.run_dir, cfg), checkpoint.run_dir)
    if labels is not None:  # the run's classes decide the layout and the default seeds
        request = parse_request(**asked, classes=labels)
    check_output_size(request, cfg.data.image_size, cfg.data.channels)
    path = default_output(request, checkpoint.run_dir)
    # into the run (its sample_grid.png, by default) is a write into the run: not while another command writes there
    with lock_run(checkpoint.run_dir, "dcgan sample") if inside(path, checkpoint.run_dir) else contextlib.nullcontext():
        return _sample(request, checkpoint, cfg, path, truncation, use_ema, batch_size)


def _sample(request: Request, checkpoint, cfg, path: Path, truncation: float, use_ema: bool | None, batch_size: int) -> str:
    from dcgan.training.gan import generate_images, load_generator  # TensorFlow: only once the request is known to be good

    gen = load_generator(checkpoint, use_ema, cfg)
    z = latents(request.seeds, gen.latent_dim, truncation)
    if request.kind in WALKS:
        z = walk(z, request.frames)
    z, labels = in_classes(z, request.classes)
    start = time.perf_counter()
    images = generate_images(gen.model, z, labels=labels, batch_size=batch_size)
    seconds = time.perf_counter() - start
    try:
        write(request, path, images, labels, gen, truncation)
    except OSError as e:
        raise DcganError(f"cannot write {path}: {e.strerror or e}") from None
    return (f"{path}: {len(images)} images{of_classes(request.classes, gen.classes)} from {gen.describe()} "
            f"in {seconds:.2f} s ({len(images) / max(seconds, 1e-9):.0f} images/s)")


def in_classes(z: np.ndarray, classes: list[int] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The same latents once per class, class-major, with their labels (None: an unconditional run)."""
    if classes is None:
        return z, None
    return np.tile(z, (len(classes), 1)), np.repeat(np.asarray(classes, np.int64), len(z))


def of_classes(classes: list[int] | None, names: list[str] | None) -> str:
    """' of class Sneaker' / ' of 10 classes' for the summary line."""
    if classes is None:
        return ""
    distinct = sorted(set(classes))
    return f" of class {printable(names[distinct[0]])}" if len(distinct) == 1 else f" of {len(distinct)} classes"


def image_file(seed: int, label: int | None) -> str:
    """A PNG's name in --out DIR/: seed_0004.png, or class_07_seed_0004.png for a conditional run."""
    return f"seed_{seed:04d}.png" if label is None else f"class_{label:02d}_seed_{seed:04d}.png"


def write(request: Request, path: Path, images: np.ndarray, labels: np.ndarray | None, gen: RunGenerator,
          truncation: float) -> None:
    seeds = np.tile(np.asarray(request.seeds, np.int64), len(request.classes) if request.classes else 1)  # one per image
    if request.kind == "grid":
        viz.save_png(path, fill_grid(images, *request.grid))
    elif request.kind == "dir":
        for i, image in enumerate(images):
            viz.save_png(path / image_file(int(seeds[i]), None if labels is None else int(labels[i])), image)
    elif request.kind == "npz":
        extra = {} if labels is None else dict(labels=labels, classes=np.asarray(gen.classes, np.str_))
        atomic_write(path, npz_bytes(images=images, seeds=seeds, **extra, step=np.int64(gen.checkpoint.step),
                                     ema=np.bool_(gen.ema), truncation=np.float32(truncation)))
    elif request.kind == "gif":
        viz.save_gif(path, list(images), duration_ms=GIF_FRAME_MS)
    else:  # strip: one row per segment, both endpoints shown
        f = request.frames
        rows = [images[k * f : k * f + f + 1] for k in range(len(request.seeds) - 1)]
        viz.save_png(path, viz.image_grid(np.concatenate(rows), len(rows), f + 1))
