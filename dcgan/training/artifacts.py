"""The pictures a run draws and its final artifacts: the fixed-noise grid, the loss plot, the progress GIF, generator.keras.

A conditional run's grid has one row per class, at most MAX_GRID_ROWS of them: with thousands of classes
an uncapped grid is a picture of hundreds of megapixels drawn at every sample_every steps. The progress GIF is
made of the grids as drawn (arrays, never decoded again), and of earlier sessions' PNGs only when they are this
run's grid: the right size, a regular file (no link), read without the limits meant for hostile images.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import tensorflow as tf

from dcgan.core import plots, viz
from dcgan.core.errors import DcganError, first_line
from dcgan.training.callbacks import Callback, Due, Run
from dcgan.training.gan import GAN
from dcgan.models.sampling import generate_images
from dcgan.training.restoring import save_generator
from dcgan.training.rundir import METRICS_FILE, read_metrics

MAX_GRID_ROWS = 32  # as many as the largest unconditional grid has (train.sample_grid's maximum)
GRID_PAD = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def grid_classes(num_classes: int) -> list[int]:
    """The classes a conditional grid shows, one row each: all of them, or MAX_GRID_ROWS spread evenly from first to last."""
    if num_classes <= MAX_GRID_ROWS:
        return list(range(num_classes))
    return [i * (num_classes - 1) // (MAX_GRID_ROWS - 1) for i in range(MAX_GRID_ROWS)]


class SampleGrid(Callback):
    """Every train.sample_every steps (and at the last): the fixed-noise grid, as samples/step_N.png and in TensorBoard."""

    def __init__(self, gan: GAN, run_dir: Path):
        self.gan, self.run_dir = gan, Path(run_dir)
        rows, self.cols = gan.grid_shape
        self.classes = grid_classes(gan.num_classes) if gan.num_classes else None
        self.rows = len(self.classes) if self.classes is not None else rows
        self.drawn: dict[int, np.ndarray] = {}  # step -> the picture as written: the progress GIF's frames

    def note(self) -> str | None:
        """A line for the run's log when the grid leaves classes out."""
        if self.classes is None or len(self.classes) == self.gan.num_classes:
            return None
        return (f"sample grids: {len(self.classes)} of the {self.gan.num_classes:,} classes, one row each "
                f"(classes {', '.join(map(str, self.classes[:3]))}, ..., {self.classes[-1]})")

    def on_start(self, run: Run) -> None:
        self.writer = run.writer
        (self.run_dir / "samples").mkdir(exist_ok=True)

    def on_checkpoint(self, step: int, due: Due) -> None:
        if due.sample:
            self.draw(step)

    def draw(self, step: int) -> None:
        z = self.gan.fixed_noise.numpy()
        labels = None
        if self.classes is not None:  # the fixed noise is the same cols latents in every row: take as many rows as shown
            z, labels = z[: self.rows * self.cols], np.repeat(np.asarray(self.classes, np.int32), self.cols)
        images = generate_images(self.gan.sampling_generator(), z, labels)
        grid = viz.image_grid(images, self.rows, self.cols, pad=GRID_PAD)
        picture = viz.upscale(grid, upscaling(images.shape[1]))
        path = self.run_dir / "samples" / f"step_{step:07d}.png"
        try:
            viz.save_png(path, picture)
        except OSError as e:
            raise DcganError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
        self.drawn[step] = picture
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None], step=step)

    def picture_shape(self) -> tuple[int, int, int]:
        size, channels = self.gan.cfg.data.image_size, self.gan.cfg.data.channels
        factor = upscaling(size)
        return ((self.rows * (size + GRID_PAD) + GRID_PAD) * factor, (self.cols * (size + GRID_PAD) + GRID_PAD) * factor,
                channels)


def upscaling(size: int) -> int:
    """Small images are drawn twice their size, so that 28x28 pixels stay visible in a viewer."""
    return 2 if size < 48 else 1


def progress_frames(grid: SampleGrid) -> list[np.ndarray]:
    """The GIF's frames in step order: this session's grids as drawn, earlier sessions' read back when they fit."""
    frames = []
    for path in sorted((grid.run_dir / "samples").glob("step_*.png")):
        step = int(path.stem.split("_")[1]) if path.stem.split("_")[1].isdigit() else None
        frame = grid.drawn.get(step)
        frame = frame if frame is not None else read_own_picture(path, grid.picture_shape())
        if frame is not None:
            frames.append(frame)
    return frames


def read_own_picture(path: Path, shape: tuple[int, int, int]) -> np.ndarray | None:
    """A PNG this run wrote, decoded only when its header says it has this run's grid size (None otherwise).

    The size is the run's own, so Pillow's decompression-bomb limit (meant for strangers' images) is off here:
    a 32-row grid of 1024-pixel images is over it.
    """
    from PIL import Image

    if path.is_symlink() or not path.is_file():
        return None
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    if struct.unpack(">II", head[16:24]) != (shape[1], shape[0]):
        return None
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as img:
            array = np.asarray(img)
    except (OSError, ValueError, SyntaxError):  # damaged: the GIF goes without it
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    array = array[..., None] if array.ndim == 2 else array
    return array if array.shape == shape and array.dtype == np.uint8 else None


def finish(gan: GAN, run_dir: Path, grid: SampleGrid | None = None) -> None:
    """The end-of-run artifacts: loss plot, progress GIF, the sampling generator as .keras.

    grid: the session's grid drawer, holding the pictures it drew (None: a session that drew none).
    """
    grid = grid or SampleGrid(gan, run_dir)
    try:
        records = read_metrics(run_dir / METRICS_FILE, "train")
        if records:
            plots.plot_losses(run_dir / "losses.png", records)
        frames = progress_frames(grid)
        if frames:
            viz.save_gif(run_dir / "progress.gif", frames, duration_ms=300)
        save_generator(gan.sampling_generator(), run_dir / "generator.keras")
    except OSError as e:  # the checkpoint is saved: a resume with the same steps writes these again
        raise DcganError(f"cannot write the final artifacts of {run_dir}: {e.strerror or first_line(e)} "
                         f"(the last checkpoint is intact; `dcgan train --resume {run_dir}` writes them again)") from None
