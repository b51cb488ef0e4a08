"""data.fit, data.resize and data.pad: how a decoded picture of any shape becomes size x size."""

import numpy as np
import pytest

from helpers import one_line_config_error
from dcgan.core.config import load_config
from dcgan.data.fit import FITS, RANDOM_ZOOM, RESIZE_FILTERS, Fit, fit_image, pad_colour


def _old_resize_crop(img, size):
    """How every folder was decoded before data.fit existed (dcgan 1ae2564's image_folder._resize_crop)."""
    import tensorflow as tf

    h, w = tf.shape(img)[0], tf.shape(img)[1]
    scale = size / tf.cast(tf.minimum(h, w), tf.float32)
    new_hw = tf.cast(tf.math.ceil(tf.cast(tf.stack([h, w]), tf.float32) * scale), tf.int32)
    img = tf.image.resize(img, new_hw, method="area", antialias=True)
    img = tf.image.resize_with_crop_or_pad(img, size, size)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def _fit(img: np.ndarray, size: int, **kw) -> np.ndarray:
    import tensorflow as tf

    return fit_image(tf.constant(img), size, Fit(**kw)).numpy()


@pytest.mark.parametrize("hw", [(37, 61), (61, 37), (32, 32), (9, 200), (100, 100)])
def test_the_default_is_the_old_decoding_bit_for_bit(hw):
    import tensorflow as tf

    img = np.random.default_rng(sum(hw)).integers(0, 256, (*hw, 3), dtype=np.uint8)
    for size in (8, 16, 64):
        np.testing.assert_array_equal(_fit(img, size), _old_resize_crop(tf.constant(img), size).numpy())


def _landscape(h=20, w=40):
    """Left half red, right half blue: where each fit puts the picture is visible in its pixels."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2 :] = (0, 0, 255)
    return img


def test_each_fit_places_a_landscape_where_it_says():
    img = _landscape()
    center = _fit(img, 16)  # the centre square: half red, half blue across the middle
    assert center.shape == (16, 16, 3) and center[8, 2].tolist() == [255, 0, 0] and center[8, 13].tolist() == [0, 0, 255]
    pad = _fit(img, 16, fit="pad")  # the whole 2:1 picture, 16 x 8, on white above and below
    assert pad[0].tolist() == [[255, 255, 255]] * 16 and pad[-1].tolist() == [[255, 255, 255]] * 16
    assert pad[8, 0].tolist() == [255, 0, 0] and pad[8, 15].tolist() == [0, 0, 255] and (pad[4:12] != 255).any(-1).all()
    black = _fit(img, 16, fit="pad", pad="#102030")
    assert black[0, 0].tolist() == [16, 32, 48] and black[8, 0].tolist() == [255, 0, 0]
    edge = _fit(img, 16, fit="pad", pad="edge")  # the border rows repeated outwards
    assert edge[0, 0].tolist() == [255, 0, 0] and edge[0, 15].tolist() == [0, 0, 255]
    stretch = _fit(img, 16, fit="stretch")  # squeezed: still half red, half blue, top to bottom
    assert stretch[0, 0].tolist() == [255, 0, 0] and stretch[15, 15].tolist() == [0, 0, 255]
    wide = _fit(_landscape(20, 80), 16, fit="center-wide")  # a 4:1 picture: its centre 2:1 band, 16 x 8, on white
    assert wide[0].tolist() == [[255, 255, 255]] * 16 and wide[8, 0].tolist() == [255, 0, 0]
    assert wide[8, 15].tolist() == [0, 0, 255] and (wide[4:12] != 255).any(-1).all()


def test_pad_of_a_grayscale_picture_is_the_colours_luma_and_a_portrait_is_padded_sideways():
    img = np.full((40, 20, 1), 0, np.uint8)
    out = _fit(img, 16, fit="pad", pad="#ff0000")
    assert out.shape == (16, 16, 1) and out[8, 0, 0] == round(255 * 0.299) and out[8, 8, 0] == 0
    assert (out[:, 4:12] == 0).all()


def test_random_keeps_a_larger_centre_square():
    img = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = _fit(img, 16, fit="random")
    assert out.shape == (int(np.ceil(16 * RANDOM_ZOOM)),) * 2 + (3,) == (18, 18, 3)


@pytest.mark.parametrize("filter", RESIZE_FILTERS)
def test_every_filter_is_anti_aliased_when_it_shrinks(filter):
    # a one-pixel checkerboard shrunk 8x: an aliasing resize keeps samples of it (0 or 255), a low-pass one grey
    board = ((np.indices((128, 128)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    out = _fit(board, 16, resize=filter).astype(float)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 3, (filter, out.mean(), out.std())


def test_the_filters_differ_and_box_is_area_at_whole_factors():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = {f: _fit(img, 16, resize=f) for f in RESIZE_FILTERS}
    np.testing.assert_allclose(out["box"], out["area"], atol=1)
    assert len({o.tobytes() for o in out.values()}) == len(RESIZE_FILTERS) - 1  # box = area here; the rest differ
    assert all(o.shape == (16, 16, 3) for o in out.values())


def test_the_cache_key_part_is_empty_for_the_default_only():
    assert Fit().key() == {} and Fit().is_default
    assert Fit("pad").key() == {"fit": "pad", "resize": "area", "pad": "white"}
    assert Fit(resize="lanczos3").key()["resize"] == "lanczos3"
    assert len({str(Fit(f).key()) for f in FITS}) == len(FITS)


def test_the_memory_bound_before_decoding_follows_the_fit():
    assert Fit().resized_pixels(10, 1000, 32) == 3200 * 32  # the shorter side to 32: the longer to 3,200
    assert Fit("pad").resized_pixels(10, 1000, 32) == 32 * 32
    assert Fit("center-wide").resized_pixels(10, 1000, 32) == 32 * 32  # its 2:1 band, cut before the resize


def test_pad_colours():
    assert pad_colour("white") == (255, 255, 255) and pad_colour("black") == (0, 0, 0) and pad_colour("edge") is None
    assert pad_colour("#0a0B0c") == (10, 11, 12)
    with pytest.raises(ValueError, match="data.pad"):
        pad_colour("red")


def test_config_checks_the_fit_keys(tmp_path):
    folder = ["data.name=folder", f"data.path={tmp_path}", "data.channels=3"]
    cfg = load_config(None, [*folder, "data.fit=pad", "data.resize=lanczos3", "data.pad=#00ff00"])
    assert (cfg.data.fit, cfg.data.resize, cfg.data.pad) == ("pad", "lanczos3", "#00ff00")
    assert "data.fit" in one_line_config_error(load_config, None, [*folder, "data.fit=crop"])
    assert "data.pad: 'green'" in one_line_config_error(load_config, None, [*folder, "data.pad=green"])
    line = one_line_config_error(load_config, None, ["data.fit=pad"])  # fashion_mnist: square arrays
    assert line.startswith("data.fit: applies to image folders")
    assert "data.labels" in one_line_config_error(load_config, None, ["data.labels=x.csv"])


def test_a_picture_too_wide_to_centre_crop_can_be_padded(monkeypatch):
    from dcgan.data import datafiles, image_folder

    monkeypatch.setattr(datafiles, "MAX_IMAGE_PIXELS", 2000)
    assert "once resized to 32" in image_folder._oversize_reason(10, 50, 32)  # 32 x 160 before the centre cut
    assert image_folder._oversize_reason(10, 50, 32, Fit("pad")) is None  # 32 x 7 on the canvas
    assert "aspect ratio" in image_folder._oversize_reason(4, 100, 32, Fit("pad"))  # the input limit still holds
