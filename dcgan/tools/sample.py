"""Sampling: images from a run's checkpoint by seed (and class), as a grid, PNG files, an npz or a latent walk.

A seed names one latent vector (dcgan.tools.latents), so an image can be asked for again by its seed, alone or
among any others. A conditional run draws each seed in each chosen class (every class unless --class says): the
latent is the same whatever the class, so across classes a seed keeps its "style". Arguments and output paths
are checked before TensorFlow is imported, so a typo fails at once rather than after a model has been built;
the generator is then restored alone (dcgan.tools.handle).
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
from dcgan.core.errors import DcganError, printable
from dcgan.core.files import atomic_write, check_output, inside, lock_run
from dcgan.tools.latents import (check_n, check_truncation, default_seeds, in_classes, latents, parse_class_list, parse_seeds,
                                 resolve_classes, walk, walk_length)
from dcgan.training.checkpoints import find_checkpoint
from dcgan.training.rundir import read_classes, read_run_config

if TYPE_CHECKING:
    from dcgan.tools.handle import GeneratorHandle

DEFAULT_GRID = (8, 8)
GRID_FILE = "sample_grid.png"
WALK_FILE = "interpolation.gif"
DEFAULT_FRAMES = 16
# One grid PNG, walk strip or GIF: 10,000 images is a 100x100 grid, or 1,000 s of GIF at 100 ms a frame.
MAX_PICTURE_IMAGES = 10_000
MAX_PICTURE_PIXELS = 100_000_000  # a 10,000 x 10,000 picture: 300 MB of RGB before PNG compresses it
MAX_SAMPLE_BYTES = 4 << 30  # the uint8 images of one call, all held in memory before they are written
GIF_FRAME_MS = 100
WALKS = ("gif", "strip", "video")
ANIMATIONS = ("gif", "video")  # a walk played in time: --grid RxC plays R*C walks side by side
VIDEO_FPS = 1000 / GIF_FRAME_MS  # the GIF's pace


# ---------------------------------------------------------------- arguments


def parse_grid(text: str) -> tuple[int, int]:
    """'8x4' -> (8 rows, 4 columns)."""
    m = re.fullmatch(r"\s*(\d{1,9})\s*[xX]\s*(\d{1,9})\s*", text)  # larger is refused anyway, as too many cells
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise DcganError(f"--grid {text!r}: expected ROWSxCOLS with positive integers, e.g. 8x8")
    return int(m[1]), int(m[2])


# ---------------------------------------------------------------- outputs


def output_kind(out: str | None, interpolate: int | None) -> str:
    """grid | strip | gif | npz | dir, from the output path's suffix."""
    suffix = Path(out).suffix.lower() if out and not out.endswith(("/", os.sep)) and not Path(out).is_dir() else ""
    if interpolate is not None:
        if out is None or suffix == ".gif":
            return "gif"
        if suffix == ".mp4":
            return "video"
        if suffix == ".png":
            return "strip"
        raise DcganError(f"--out {out}: an interpolation is written as a .gif or .mp4 animation or a .png strip")
    if out is None or suffix == ".png":
        return "grid"
    if suffix == ".npz":
        return "npz"
    if suffix in (".gif", ".mp4"):
        raise DcganError(f"--out {out}: a {suffix} is written for --interpolate only")
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
    latents_file: Path | None = None  # --latents: the latent vectors (and labels) come from this npz, not from seeds

    @property
    def walks(self) -> int:
        """Walks played side by side: the cells of an animation's --grid (1 without one)."""
        return self.grid[0] * self.grid[1] if self.kind in ANIMATIONS and self.grid else 1

    def generated(self) -> int:
        """Images to generate: one per seed and class, or every frame of every walk."""
        if self.kind in WALKS:
            return walk_length(len(self.seeds) // self.walks - 1, self.frames) * self.walks
        return len(self.seeds) * (len(self.classes) if self.classes else 1)

    def picture_images(self) -> int:
        """Images the output picture holds (0: an npz or a PNG per seed is no one picture)."""
        if self.kind == "grid":
            return self.grid[0] * self.grid[1]
        if self.kind in WALKS:
            return walk_picture_images(self.kind, len(self.seeds) // self.walks - 1, self.frames) * self.walks
        return 0


def walk_picture_images(kind: str, segments: int, frames: int) -> int:
    """An animation's frames, or the strip's cells: each of its rows also shows the segment's last endpoint."""
    return walk_length(segments, frames) if kind in ANIMATIONS else segments * (frames + 1)


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
    if n is not None:
        check_n(n)
    check_truncation(truncation)
    if frames is not None and interpolate is None:
        raise DcganError("--frames applies to --interpolate only")
    kind = output_kind(out, interpolate)
    chosen = parse_seeds(seeds) if seeds is not None else (list(range(n)) if n is not None else None)
    layout = parse_grid(grid) if grid is not None else None
    if layout and kind not in ("grid", *ANIMATIONS):
        raise DcganError("--grid applies to a grid PNG (no --out, or --out FILE.png) or to an animated walk "
                         "(--interpolate with a .gif or .mp4: one walk per cell)")
    if kind in WALKS:
        if interpolate < 1:
            raise DcganError(f"--interpolate {interpolate}: must be at least 1 (the number of segments)")
        frames = DEFAULT_FRAMES if frames is None else frames
        if frames < 1:
            raise DcganError(f"--frames {frames}: must be at least 1")
        walks = layout[0] * layout[1] if layout else 1
        check_picture(f"--interpolate {interpolate} --frames {frames}" + (f" --grid {grid}" if layout else ""),
                      walk_picture_images(kind, interpolate, frames) * walks, "fewer segments, frames or cells")
        wanted = (interpolate + 1) * walks
        chosen = list(range(wanted)) if chosen is None else chosen
        if len(chosen) != wanted:
            each = f" in each of {walks} cells ({wanted} in all)" if layout else ""
            raise DcganError(f"--interpolate {interpolate} walks between {interpolate + 1} seeds{each}, got {len(chosen)}")
        if classes is not None and len(classes) != 1:
            raise DcganError(f"--interpolate walks within one class of a conditional run, not {len(classes)}: "
                             "give --class with one name or index")
        return Request(kind, chosen, Path(out) if out else None, grid=layout, frames=frames, classes=classes)
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
        chosen = default_seeds(None)
    return Request(kind, chosen, Path(out) if out else None, grid=layout, classes=classes)


def class_rows_request(kind: str, chosen: list[int] | None, out: str | None, grid: str | None, classes: list[int]) -> Request:
    """Several classes: each seed in each class; a grid is one row per class, one column per seed."""
    chosen = default_seeds(classes) if chosen is None else chosen
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
    return run_dir / (WALK_FILE if request.kind in WALKS else GRID_FILE)


@dataclass
class Sampled:
    """What `sample` wrote: where, how many images (of which classes), from which generator, how fast."""

    path: Path
    images: int
    classes: str  # ' of class Sneaker', ' of 10 classes' or ''
    generator: str  # GeneratorHandle.describe()
    seconds: float

    def summary(self) -> str:
        return (f"{self.path}: {self.images} images{self.classes} from {self.generator} in {self.seconds:.2f} s "
                f"({self.images / max(self.seconds, 1e-9):.0f} images/s)")


def sample(target: str | Path, step: int | None = None, seeds: str | None = None, n: int | None = None,
           grid: str | None = None, out: str | None = None, interpolate: int | None = None,
           frames: int | None = None, truncation: float = 1.0, use_ema: bool | None = None, batch_size: int = 500,
           classes: str | None = None, latents_file: str | None = None) -> Sampled:
    """`dcgan sample`: write the requested images; returns what was written (its .summary() is the command's line).

    classes: --class as given (names, indices, ranges, all); a conditional run without it samples every class.
    """
    asked = dict(seeds=seeds, n=n, grid=grid, out=out, interpolate=interpolate, frames=frames, truncation=truncation)
    if latents_file is not None:
        return sample_latents(target, latents_file, step=step, grid=grid, out=out, use_ema=use_ema,
                              batch_size=batch_size, others=dict(seeds=seeds, n=n, interpolate=interpolate,
                                                                 truncation=truncation, classes=classes))
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


def sample_latents(target, latents_file: str, step=None, grid=None, out=None, use_ema=None, batch_size=500,
                   others: dict | None = None) -> Sampled:
    """`dcgan sample --latents FILE`: the latent vectors of an npz (`z`, and a conditional run's `labels`), e.g. the
    one `dcgan project` writes, drawn again exactly; written as a grid, one PNG each or an npz, as with seeds."""
    from dcgan.tools.latent_files import read_latents

    given = [f"--{k}" for k, v in (others or {}).items() if v is not None and not (k == "truncation" and v == 1.0)]
    if given:
        raise DcganError(f"--latents draws the file's latents as they are; drop {', '.join(given)}")
    kind = output_kind(out, None)
    checkpoint = find_checkpoint(target, step)
    cfg = read_run_config(checkpoint.run_dir)
    z, labels = read_latents(latents_file, cfg.model.generator.latent_dim, read_classes(checkpoint.run_dir, cfg))
    layout = parse_grid(grid) if grid is not None else grid_layout(len(z)) if kind == "grid" else None
    if grid is not None and kind != "grid":
        raise DcganError("--grid applies to a grid PNG only (no --out, or --out FILE.png)")
    if layout and layout[0] * layout[1] < len(z):
        raise DcganError(f"--grid {grid} has {layout[0] * layout[1]} cells for {len(z)} latents")
    request = Request(kind, list(range(len(z))), Path(out) if out else None, grid=layout, latents_file=Path(latents_file))
    check_output_size(request, cfg.data.image_size, cfg.data.channels)
    path = default_output(request, checkpoint.run_dir)
    if request.out is not None:
        check_output(request.out, is_dir=kind == "dir")
    with lock_run(checkpoint.run_dir, "dcgan sample") if inside(path, checkpoint.run_dir) else contextlib.nullcontext():
        return _sample(request, checkpoint, cfg, path, 1.0, use_ema, batch_size, given=(z, labels))


def _sample(request: Request, checkpoint, cfg, path: Path, truncation: float, use_ema: bool | None,
            batch_size: int, given: tuple | None = None) -> Sampled:
    """Generate and write what request asks for: from its seeds, or the (z, labels) given (--latents)."""
    from dcgan.tools.handle import load_handle  # TensorFlow: only once the request is known to be good

    gen = load_handle(checkpoint, ema=use_ema, cfg=cfg)
    z, labels = given if given is not None else request_latents(request, gen.latent_dim, truncation)
    start = time.perf_counter()
    images = gen.generate(z, labels, batch_size=batch_size)
    seconds = time.perf_counter() - start
    try:
        write(request, path, images, labels, gen, truncation)
    except OSError as e:
        raise DcganError(f"cannot write {path}: {e.strerror or e}") from None
    classes = request.classes if given is None else None if labels is None else labels.tolist()
    return Sampled(path, len(images), of_classes(classes, gen.classes), gen.describe(), seconds)


def request_latents(request: Request, latent_dim: int, truncation: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The latents (and a conditional run's labels) of a request's seeds, in the order its picture shows them."""
    z = latents(request.seeds, latent_dim, truncation)
    if request.kind in WALKS:  # each cell's seeds in turn: cell k walks seeds k*(K+1) .. k*(K+1)+K
        z = np.concatenate([walk(cell, request.frames) for cell in np.split(z, request.walks)])
    return in_classes(z, request.classes)


def grid_picture(request: Request, images: np.ndarray) -> np.ndarray:
    """The grid PNG's pixels: the images in the request's layout."""
    return fill_grid(images, *request.grid)


def npz_record(request: Request, images: np.ndarray, labels: np.ndarray | None, gen: GeneratorHandle,
               truncation: float) -> bytes:
    """The .npz file's bytes: the images with the seed (and label) of each and the generator they came from."""
    seeds = np.tile(np.asarray(request.seeds, np.int64), len(request.classes) if request.classes else 1)  # one per image
    if request.latents_file is not None:  # no seeds: -1 each, and the latents themselves travel in the npz
        seeds = np.full(len(images), -1, np.int64)
    extra = {} if labels is None else dict(labels=labels, classes=np.asarray(gen.classes, np.str_))
    return npz_bytes(images=images, seeds=seeds, **extra, step=np.int64(gen.checkpoint.step), ema=np.bool_(gen.ema),
                     truncation=np.float32(truncation))


def of_classes(classes: list[int] | None, names: list[str] | None) -> str:
    """' of class Sneaker' / ' of 10 classes' for the summary line."""
    if classes is None:
        return ""
    distinct = sorted(set(classes))
    return f" of class {printable(names[distinct[0]])}" if len(distinct) == 1 else f" of {len(distinct)} classes"


def animation_frames(images: np.ndarray, request: Request) -> np.ndarray:
    """The walk's frames; with --grid, frame t is the grid of every cell's t-th image."""
    if request.walks == 1:
        return images
    cells = images.reshape(request.walks, -1, *images.shape[1:])  # (cells, frames, H, W, C)
    return np.stack([viz.image_grid(cells[:, t], *request.grid) for t in range(cells.shape[1])])


def image_file(seed: int, label: int | None) -> str:
    """A PNG's name in --out DIR/: seed_0004.png, or class_07_seed_0004.png for a conditional run."""
    return f"seed_{seed:04d}.png" if label is None else f"class_{label:02d}_seed_{seed:04d}.png"


def write(request: Request, path: Path, images: np.ndarray, labels: np.ndarray | None, gen: GeneratorHandle,
          truncation: float) -> None:
    if request.kind == "grid":
        viz.save_png(path, grid_picture(request, images))
    elif request.kind == "dir":
        seeds = np.tile(np.asarray(request.seeds, np.int64), len(request.classes) if request.classes else 1)
        for i, image in enumerate(images):
            name = (f"latent_{i:04d}.png" if request.latents_file is not None
                    else image_file(int(seeds[i]), None if labels is None else int(labels[i])))
            viz.save_png(path / name, image)
    elif request.kind == "npz":
        atomic_write(path, npz_record(request, images, labels, gen, truncation))
    elif request.kind in ANIMATIONS:
        frames = animation_frames(images, request)
        if request.kind == "gif":
            viz.save_gif(path, list(frames), duration_ms=GIF_FRAME_MS)
        else:
            from dcgan.core.video import save_mp4

            save_mp4(path, frames, VIDEO_FPS)
    else:  # strip: one row per segment, both endpoints shown
        f = request.frames
        rows = [images[k * f : k * f + f + 1] for k in range(len(request.seeds) - 1)]
        viz.save_png(path, viz.image_grid(np.concatenate(rows), len(rows), f + 1))
