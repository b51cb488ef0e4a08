"""Walks as video: uint8 frames to an H.264 .mp4 through imageio-ffmpeg, which brings its own ffmpeg binary
(an optional extra: `pip install 'dcgan[video]'`). GIFs stay in dcgan.core.viz and need nothing more."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dcgan.core.errors import DcganError
from dcgan.core.files import atomic_path

MIN_SIDE = 256  # small images are enlarged (nearest) to at least this, so a 28x28 walk is watchable
INSTALL = "pip install 'dcgan[video]' (imageio-ffmpeg, which brings ffmpeg)"


def _imageio_ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DcganError(f"an .mp4 needs imageio-ffmpeg, which is not installed: {INSTALL}") from None
    return imageio_ffmpeg


def video_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) uint8 -> (T, H', W', 3): RGB, enlarged by a whole factor to MIN_SIDE, even sides (yuv420p)."""
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    factor = max(1, math.ceil(MIN_SIDE / min(frames.shape[1:3])))
    frames = frames.repeat(factor, axis=1).repeat(factor, axis=2)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0))) if pad_h or pad_w else frames


def save_mp4(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write the frames as H.264 (quality 8 of 10), atomically: a failed encode leaves no half file."""
    ffmpeg = _imageio_ffmpeg()
    frames = video_frames(np.asarray(frames, np.uint8))
    h, w = frames.shape[1:3]
    with atomic_path(path) as tmp:
        writer = ffmpeg.write_frames(str(tmp), (w, h), fps=fps, quality=8, macro_block_size=2, ffmpeg_log_level="error")
        writer.send(None)
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
    return Path(path)


def count_frames(path: str | Path) -> int:
    """Frames of a video, decoded (what the tests check a written file by)."""
    reader = _imageio_ffmpeg().read_frames(str(path))
    next(reader)  # the metadata
    return sum(1 for _ in reader)
