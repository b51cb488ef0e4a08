"""Pictures made of pixels: image grids, PNG and GIF files. numpy and Pillow only (figures: dcgan.core.plots)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from dcgan.core.files import atomic_write


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (rows*(H+pad)+pad, cols*(W+pad)+pad, C) picture."""
    n, h, w, c = images.shape
    if n < rows * cols:
        raise ValueError(f"need {rows * cols} images for a {rows}x{cols} grid, got {n}")
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(rows * cols):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 28x28 pixels stay visible in a viewer."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    _pil(image).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | Path, image: np.ndarray) -> Path:
    return atomic_write(path, png_bytes(image))


def save_gif(path: str | Path, frames: list[np.ndarray], duration_ms: int = 200) -> Path:
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    buf = io.BytesIO()
    pics = [_pil(f) for f in frames]
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=duration_ms, loop=0)
    return atomic_write(path, buf.getvalue())


def read_png(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr
