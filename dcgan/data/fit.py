"""How a decoded picture of any shape becomes size x size: the crop or fit (data.fit), the resize filter (data.resize)
and the letterbox colour (data.pad). What image folders, archives and `dcgan prepare` decode through.

`center` with `area` is how every folder was read before these settings existed, to the bit. The others follow
StyleGAN2-ADA's dataset_tool (`center-crop-wide`: a 2:1 band on a square canvas), letterboxing (`pad`: the whole
picture) and `stretch`. `random` is for training only: each picture is kept as a slightly larger centre square
(RANDOM_ZOOM) and the training stream cuts a fresh random size x size window from it every epoch
(dcgan.data.crops); evaluation sees the centre window, so real and generated images are compared at one scale.
Every filter is anti-aliased when it shrinks (clean-fid's point: FID moves with the filter, not only the model).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from dcgan.core.schema import FITS, RESIZE_FILTERS  # noqa: F401  (importers)
from dcgan.data.conform import LUMA  # a grayscale picture's pad is the colour's luma, as conform converts RGB

RANDOM_ZOOM = 1.125  # `random`: the kept square is this much larger than size, so a crop can move by 1/9 of it
WIDE_RATIO = 2  # `center-wide`: the band's width over its height
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Fit:
    """data.fit, data.resize and data.pad together: everything that decides a decoded picture's pixels."""

    fit: str = "center"
    resize: str = "area"
    pad: str = "white"

    @classmethod
    def of(cls, data_cfg) -> Fit:
        return cls(data_cfg.fit, data_cfg.resize, data_cfg.pad)

    @property
    def is_default(self) -> bool:
        """Today's decoding (center, area): caches and manifests written before these settings stay valid."""
        return (self.fit, self.resize) == ("center", "area")

    def key(self) -> dict:
        """The settings a cache key covers: none for the default, so its entries keep their old keys."""
        return {} if self.is_default else {"fit": self.fit, "resize": self.resize, "pad": self.pad}

    def stored_size(self, size: int) -> int:
        """The side of what is decoded and kept: size, or the larger square `random` crops from."""
        return math.ceil(size * RANDOM_ZOOM) if self.fit == "random" else size

    def resized_pixels(self, height: int, width: int, size: int) -> int:
        """Pixels of the intermediate resize (before the crop), to bound memory before decoding."""
        short, long = min(height, width), max(height, width)
        side = self.stored_size(size)
        if self.fit in ("center", "random"):
            return math.ceil(long * side / short) * side
        return side * side  # center-wide, pad, stretch: the picture is cropped first or shrunk into the canvas


def pad_colour(pad: str) -> tuple[int, int, int] | None:
    """(r, g, b) of data.pad, or None for `edge` (the border pixels replicated)."""
    if pad == "edge":
        return None
    if pad in ("white", "black"):
        return (255, 255, 255) if pad == "white" else (0, 0, 0)
    if _HEX.match(pad):
        return tuple(int(pad[i : i + 2], 16) for i in (1, 3, 5))
    raise ValueError(f"data.pad: {pad!r} is not white, black, edge or a #rrggbb colour")


def fit_image(img, size: int, fit: Fit):
    """A decoded uint8 (H, W, C) tensor as uint8 (side, side, C), side = fit.stored_size(size)."""
    import tensorflow as tf

    side = fit.stored_size(size)
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    if fit.fit in ("center", "random"):
        return _to_uint8(tf.image.resize_with_crop_or_pad(_cover(img, h, w, side, fit.resize), side, side))
    if fit.fit == "stretch":
        return _to_uint8(resize(img, (side, side), fit.resize))
    if fit.fit == "center-wide":
        band = side // WIDE_RATIO
        # the widest 2:1 band around the centre, at side x band: a portrait keeps its middle, a landscape its width
        crop_w = tf.minimum(w, WIDE_RATIO * h)
        crop_h = tf.maximum(1, crop_w // WIDE_RATIO)
        img = tf.image.crop_to_bounding_box(img, (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w)
        return _letterbox(resize(img, (band, side), fit.resize), side, fit.pad)
    # pad: the longer side to `side`, the whole picture kept
    scale = side / tf.cast(tf.maximum(h, w), tf.float32)
    new_hw = tf.maximum(1, tf.cast(tf.round(tf.cast(tf.stack([h, w]), tf.float32) * scale), tf.int32))
    return _letterbox(resize(img, new_hw, fit.resize), side, fit.pad)


def _cover(img, h, w, side: int, filter: str):
    """Resized so the shorter side is `side` (the longer one rounded up): the crop then cuts the centre."""
    import tensorflow as tf

    scale = side / tf.cast(tf.minimum(h, w), tf.float32)
    new_hw = tf.cast(tf.math.ceil(tf.cast(tf.stack([h, w]), tf.float32) * scale), tf.int32)
    return resize(img, new_hw, filter)


def resize(img, hw, filter: str):
    """float32 (H, W, C) at hw by the named filter, anti-aliased when shrinking."""
    import tensorflow as tf

    if filter != "box":
        return tf.image.resize(img, hw, method=filter, antialias=True)
    # tf.image.resize has no box filter; its anti-aliased resizes are ScaleAndTranslate with another kernel
    x = tf.cast(img, tf.float32)[None]
    in_hw = tf.cast(tf.shape(x)[1:3], tf.float32)
    out_hw = tf.cast(hw, tf.int32)
    scale = tf.cast(out_hw, tf.float32) / in_hw
    return tf.raw_ops.ScaleAndTranslate(images=x, size=out_hw, scale=scale, translation=tf.zeros(2), kernel_type="box",
                                        antialias=True)[0]


def _letterbox(img, side: int, pad: str):
    """img (at most side x side) centred on a side x side canvas of the pad colour, or with its edges replicated."""
    import tensorflow as tf

    img = tf.clip_by_value(tf.round(img), 0, 255)
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    top, left = (side - h) // 2, (side - w) // 2
    paddings = [[top, side - h - top], [left, side - w - left], [0, 0]]
    colour = pad_colour(pad)
    if colour is None:
        return tf.cast(_edge_pad(img, paddings), tf.uint8)
    channels = img.shape[-1]
    fill = tf.constant(colour if channels == 3 else [round(float(np.dot(colour, LUMA)))], tf.float32)
    canvas = tf.pad(img - fill, paddings) + fill  # zero padding around (img - fill): the fill colour around img
    return tf.cast(canvas, tf.uint8)


def _edge_pad(img, paddings):
    """Each border row and column repeated outwards (tf.pad's SYMMETRIC mirrors; this holds the last pixel)."""
    import tensorflow as tf

    h, w = tf.shape(img)[0], tf.shape(img)[1]
    rows = tf.clip_by_value(tf.range(-paddings[0][0], h + paddings[0][1]), 0, h - 1)
    cols = tf.clip_by_value(tf.range(-paddings[1][0], w + paddings[1][1]), 0, w - 1)
    return tf.gather(tf.gather(img, rows, axis=0), cols, axis=1)


def _to_uint8(img):
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)
