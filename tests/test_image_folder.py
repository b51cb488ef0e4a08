"""Image folders: PNG/JPEG files resized and cropped, each header checked before the file is read."""

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import cli_error, deadline, fifo
from dcgan.data import pipeline as data
from dcgan.data import datafiles
from dcgan.data import folder_cache, folder_source, image_folder, prepared_format
from dcgan.tools import prepare
from dcgan.core.config import load_config
from dcgan.data.datafiles import DataError


def test_image_folder_resizes_crops_and_skips_junk(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "a.png")
    Image.new("RGB", (30, 60), (0, 255, 0)).save(root / "sub" / "b.jpg")
    (root / "broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("hello")
    cfg = load_config(None, ["data.name=folder", f"data.path={root}", "data.image_size=16", "data.channels=3"]).data
    images = data.load_images(cfg)
    assert images.shape == (2, 16, 16, 3)
    assert images[0, 8, 8].tolist() == [255, 0, 0]
    assert abs(int(images[1, 8, 8, 1]) - 255) <= 2 and images[1, 8, 8, 0] <= 2  # JPEG rounding
    gray = data.load_images(load_config(None, ["data.name=folder", f"data.path={root}", "data.image_size=8", "data.channels=1"]).data)
    assert gray.shape == (2, 8, 8, 1)


def test_transparency_is_composited_over_white(tmp_path):
    from PIL import Image

    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # transparent pixels storing black, as icon files do
    rgba.paste((200, 0, 0, 255), (0, 0, 4, 8))  # left half opaque red
    rgba.paste((0, 0, 200, 128), (4, 0, 8, 4))  # top right quarter: half-transparent blue
    rgba.save(tmp_path / "icon.png")
    Image.new("LA", (8, 8), (0, 0)).save(tmp_path / "grey_alpha.png")
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "opaque.png")
    for channels in (3, 1):
        for name in ("icon.png", "grey_alpha.png", "opaque.png"):
            assert image_folder.decode_image(tmp_path / name, 8, channels).shape == (8, 8, channels), (name, channels)
    icon = image_folder.decode_image(tmp_path / "icon.png", 8, 3)
    assert icon[0, 0].tolist() == [200, 0, 0]
    assert icon[6, 6].tolist() == [255, 255, 255]  # transparent: white, not the black it stores
    assert icon[1, 6].tolist() == [127, 127, 227]  # 50% blue over white
    assert image_folder.decode_image(tmp_path / "grey_alpha.png", 8, 1).min() == 255
    assert image_folder.decode_image(tmp_path / "opaque.png", 8, 3)[0, 0].tolist() == [10, 20, 30]
    assert image_folder.decode_image(tmp_path / "icon.png", 8, 1)[6, 6, 0] == 255


def test_a_linked_image_counts_once_and_a_broken_link_is_named(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "imgs"
    (root / "animals").mkdir(parents=True)
    (root / "food").mkdir()
    Image.new("L", (8, 8), 10).save(root / "animals" / "frog.png")
    Image.new("L", (8, 8), 20).save(root / "food" / "pie.png")
    (root / "food" / "frog.png").symlink_to("../animals/frog.png")  # the same picture in a second category
    (root / "food" / "wine.png").symlink_to("../drinks/wine.png")  # its target is not in the folder
    files, _ = image_folder.list_images(root)
    assert [f.relative_to(root).as_posix() for f in files] == ["animals/frog.png", "food/pie.png", "food/wine.png"]
    images = image_folder.load_folder(root, 8, 1)
    assert sorted(images[:, 0, 0, 0].tolist()) == [10, 20]
    assert "1 image(s) that are broken links" in capsys.readouterr().err


def test_image_size_is_read_from_the_header(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (37, 21), (1, 2, 3))
    for name, options in {"a.png": {}, "b.jpg": {}, "c.jpg": {"progressive": True}}.items():
        image.save(tmp_path / name, **options)
        assert image_folder.image_size_of((tmp_path / name).read_bytes()) == (21, 37), name
    with pytest.raises(ValueError, match="not a PNG or JPEG"):
        image_folder.image_size_of(b"GIF89a" + bytes(20))


def test_image_bomb_is_skipped_without_decoding(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    Image.new("L", (16, 16), 200).save(root / "ok.png")
    bomb = bytearray((root / "ok.png").read_bytes())
    bomb[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR now claims 60000 x 60000 (3.6 gigapixels)
    (root / "bomb.png").write_bytes(bytes(bomb))
    images = image_folder.load_folder(root, 16, 1)
    assert images.shape == (1, 16, 16, 1) and int(images[0, 8, 8, 0]) == 200
    assert f"1 image(s) over {datafiles.MAX_IMAGE_PIXELS} pixels" in capsys.readouterr().err  # a warning: stderr


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "x.txt").write_text("no images")
    with pytest.raises(DataError, match="no readable PNG/JPEG images"):
        image_folder.load_folder(tmp_path, 16, 3)


def _png(path, size=(16, 16), value=200, mode="L"):
    from PIL import Image

    Image.new(mode, size, value).save(path)


def _noisy_png(path, side=64):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def test_image_folder_skips_fifos_devices_and_elongated_images_naming_each_reason(tmp_path, capsys):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "ok.png")
    _png(root / "strip.png", size=(2000, 1))  # scaled to 16 high, it would be 32,000 wide
    fifo(root / "pipe.png")
    (root / "zero.jpg").symlink_to("/dev/zero")
    with deadline():
        images = image_folder.load_folder(root, 16, 1)
    assert images.shape == (1, 16, 16, 1)
    captured = capsys.readouterr()
    assert captured.out == ""  # warnings go to stderr
    assert (f"data: {root}: skipped 0 unreadable image(s), 2 image(s) that are not regular files (FIFOs, devices, ...), "
            f"1 image(s) with an aspect ratio over 20:1 and 0 non-image file(s)") in captured.err


def test_image_too_big_once_resized_or_for_memory_is_skipped(tmp_path, capsys, monkeypatch):
    import tensorflow as tf

    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "a_ok.png")
    _png(root / "b_wide.png", size=(50, 10))  # 500 pixels; resized to 32 high it is 32 x 160 = 5120
    _png(root / "c_oom.png")
    monkeypatch.setattr(datafiles, "MAX_IMAGE_PIXELS", 2000)
    fit_image, calls = image_folder.fit_image, []

    def oom_on_c(img, size, fit):
        calls.append(size)
        if len(calls) == 2:  # the second image decoded: c_oom.png
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return fit_image(img, size, fit)

    monkeypatch.setattr(image_folder, "fit_image", oom_on_c)
    images = image_folder.load_folder(root, 32, 1)
    assert images.shape == (1, 32, 32, 1)
    err = capsys.readouterr().err
    assert "1 image(s) over 2000 pixels once resized to 32" in err and "1 image(s) too big for memory" in err


def test_image_file_over_the_size_limit_is_skipped_unread(tmp_path, capsys, monkeypatch):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "small.png")
    _noisy_png(root / "big.png")  # about 12 KB
    monkeypatch.setattr(image_folder, "MAX_IMAGE_FILE_BYTES", 10_000)
    assert image_folder.load_folder(root, 16, 1).shape == (1, 16, 16, 1)
    assert "1 image(s) over 10000 bytes" in capsys.readouterr().err


def _bytes_read() -> int:
    return int(re.search(r"rchar: (\d+)", Path("/proc/self/io").read_text()).group(1))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_image_header_is_checked_before_the_rest_of_the_file_is_read(tmp_path, capsys):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "ok.png")
    bomb = bytearray((root / "ok.png").read_bytes())
    bomb[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR claims 3.6 gigapixels
    (root / "bomb.png").write_bytes(bytes(bomb) + bytes(8 << 20))
    before = _bytes_read()
    image_folder.load_folder(root, 16, 1)
    assert _bytes_read() - before < 1 << 20
    assert "1 image(s) over" in capsys.readouterr().err


def test_jpeg_whose_frame_header_follows_large_metadata_is_read(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 12), (0, 0, 255)).save(buf, format="JPEG")
    comment = b"\xff\xfe" + (65535).to_bytes(2, "big") + bytes(65533)  # a COM segment of the largest size
    jpeg = buf.getvalue()[:2] + comment * 3 + buf.getvalue()[2:]  # the frame header now starts past 192 KB
    (tmp_path / "a.jpg").write_bytes(jpeg)
    images = image_folder.load_folder(tmp_path, 8, 3)
    assert images.shape == (1, 8, 8, 3) and images[0, 4, 4, 2] > 200


# ---------------------------------------------------------------- labelled by subfolder (conditional runs)

CLASS_VALUES = {"b_dog": 200, "a_cat": 100}  # each class's gray level: a decoded pixel says which folder it came from


def _class_folder(root: Path) -> Path:
    """Two class subfolders (one image nested deeper), a loose image in the root, a broken image and junk."""
    for name, value in CLASS_VALUES.items():
        (root / name / "deep").mkdir(parents=True)
        for i in range(3):
            _png(root / name / f"{i}.png", size=(8, 8), value=value)
    _png(root / "a_cat" / "deep" / "3.png", size=(8, 8), value=100)
    _png(root / "loose.png", size=(8, 8), value=0)
    (root / "b_dog" / "broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("hello")
    return root


def _folder_config(root, *sets):
    return load_config(None, ["data.name=folder", f"data.path={root}", "data.image_size=8", "data.channels=1", *sets]).data


def test_folder_is_labelled_by_its_sorted_subfolders_and_cached_with_its_labels(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    root = _class_folder(tmp_path / "imgs")
    labelled = data.load_labelled_images(_folder_config(root))
    assert labelled.classes == ["a_cat", "b_dog"] and labelled.labels.dtype == np.int64
    assert labelled.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]  # the nested image belongs to its top-level folder
    assert [CLASS_VALUES[labelled.classes[c]] for c in labelled.labels] == labelled.images[:, 4, 4, 0].tolist()
    note = (f"data: {root}: skipped 1 unreadable image(s), 1 image(s) {image_folder.NOT_IN_A_CLASS} "
            "and 1 non-image file(s)")
    assert note in capsys.readouterr().err  # the loose image is skipped and counted

    decode = image_folder.decode_image
    monkeypatch.setattr(image_folder, "decode_image", lambda *a: pytest.fail("decoded although cached"))
    again = data.load_labelled_images(_folder_config(root))
    assert again.classes == labelled.classes and again.labels.tolist() == labelled.labels.tolist()
    np.testing.assert_array_equal(again.images, labelled.images)
    assert note in capsys.readouterr().err

    monkeypatch.setattr(image_folder, "decode_image", decode)
    assert data.load_images(_folder_config(root)).shape == (8, 8, 8, 1)  # unlabelled: the loose image too
    monkeypatch.setattr(image_folder, "decode_image", lambda *a: pytest.fail("decoded although cached"))
    assert data.load_images(_folder_config(root)).shape == (8, 8, 8, 1)
    assert data.load_labelled_images(_folder_config(root)).labels.tolist() == labelled.labels.tolist()  # both entries kept


def test_prepare_labels_a_folder_as_a_conditional_run_does(tmp_path):
    root = _class_folder(tmp_path / "imgs")
    files, _ = image_folder.list_images(root)
    found = image_folder.label_by_subfolder(root, files)
    source = folder_source.FolderReader(root, 8, 1, labels=True, shuffle=None, threads=1)
    assert source.classes == found.classes and [source.label_of[f] for f in source.files] == found.labels
    assert found.loose == 1 and source.skipped[folder_source.NOT_IN_A_CLASS] == 1


def test_conditional_folder_without_subfolders_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "flat"
    root.mkdir()
    _png(root / "a.png", size=(8, 8))
    with pytest.raises(DataError, match=rf"data.path: {re.escape(str(root))} has no class subfolders; a conditional run "
                                        "labels images by their immediate subfolders"):
        data.load_labelled_images(_folder_config(root))
    sets = [f"--set={s}" for s in ["data.name=folder", f"data.path={root}", "data.image_size=8", "data.channels=1",
                                   "model.generator.condition=concat", "model.discriminator.condition=projection",
                                   f"run.dir={tmp_path / 'runs'}"]]
    assert "has no class subfolders" in cli_error(capsys, "train", *sets)
    assert not (tmp_path / "runs").exists()


def test_class_without_a_readable_image_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    root = _class_folder(tmp_path / "imgs")
    (root / "c_bird").mkdir()
    (root / "c_bird" / "torn.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DataError, match=r"class subfolder\(s\) 'c_bird' of .* hold no readable image"):
        data.load_labelled_images(_folder_config(root))
    # data.limit keeps the first images in sorted order: a limit that cuts off whole classes is refused, naming them
    with pytest.raises(DataError, match=r"data.limit: the first 4 images .* hold no image of class\(es\) 'b_dog', 'c_bird'"):
        data.load_labelled_images(_folder_config(root, "data.limit=4"))


# ---------------------------------------------------------------- class folders that are links


def _linked_class_folder(tmp_path) -> Path:
    """Three class folders of which two are links to folders elsewhere, and a link back up to the root (a loop)."""
    root, elsewhere = tmp_path / "imgs", tmp_path / "elsewhere"
    for name, value, where in (("a", 50, root), ("b", 120, elsewhere), ("c", 220, elsewhere)):
        (where / name).mkdir(parents=True)
        for i in range(2):
            _png(where / name / f"{i}.png", size=(8, 8), value=value)
    for name in ("b", "c"):
        (root / name).symlink_to(elsewhere / name, target_is_directory=True)
    (root / "a" / "up").symlink_to(root, target_is_directory=True)  # a loop: walked once
    return root


def test_class_folders_that_are_links_are_followed_once_for_training_and_prepare(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    root = _linked_class_folder(tmp_path)
    with deadline(60):
        files, _ = image_folder.list_images(root)
        labelled = data.load_labelled_images(_folder_config(root))
    assert [f.relative_to(root).as_posix() for f in files] == ["a/0.png", "a/1.png", "b/0.png", "b/1.png", "c/0.png", "c/1.png"]
    assert labelled.classes == ["a", "b", "c"] and labelled.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert labelled.images[:, 4, 4, 0].tolist() == [50, 50, 120, 120, 220, 220]
    assert data.load_images(_folder_config(root)).shape == (6, 8, 8, 1)

    out = tmp_path / "prepared"
    manifest = prepare.prepare(root, out, 8, 1, labels=True, quiet=True)
    assert manifest["classes"] == ["a", "b", "c"] and manifest["count"] == 6 and not manifest["source"]["skipped"]
    assert prepared_format.read_all(out)[1].tolist() == [0, 0, 1, 1, 2, 2]


# ---------------------------------------------------------------- EXIF orientation


def _oriented_jpeg(path, orientation: int) -> np.ndarray:
    """A 16x16 JPEG of four flat quadrants (every turn and flip of it differs) tagged with an EXIF Orientation;
    returns what a viewer shows: PIL's exif_transpose of it."""
    from PIL import Image, ImageOps

    pixels = np.zeros((16, 16), np.uint8)
    pixels[:8, :8], pixels[:8, 8:], pixels[8:, :8], pixels[8:, 8:] = 20, 90, 160, 230
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    with Image.open(path) as stored:
        return np.asarray(ImageOps.exif_transpose(stored).convert("L"))


def _quadrants(image: np.ndarray) -> list[int]:
    return [round(float(image[y : y + 8, x : x + 8].mean())) for y in (0, 8) for x in (0, 8)]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_comes_out_upright_as_its_exif_orientation_says(tmp_path, orientation):
    shown = _oriented_jpeg(tmp_path / "photo.jpg", orientation)
    decoded = image_folder.decode_image(tmp_path / "photo.jpg", 16, 1)[..., 0]
    assert np.abs(np.array(_quadrants(decoded)) - _quadrants(shown)).max() <= 4, (_quadrants(decoded), _quadrants(shown))


def test_a_folder_decoded_before_exif_orientation_is_decoded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "photos"
    root.mkdir()
    shown = _oriented_jpeg(root / "photo.jpg", 6)
    cfg = _folder_config(root, "data.image_size=16")
    monkeypatch.setattr(folder_cache, "CACHE_FORMAT", 3)  # what the cache was before orientation was applied
    monkeypatch.setattr(image_folder, "exif_orientation", lambda encoded: 1)
    stale = data.load_images(cfg)
    monkeypatch.undo()
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    upright = data.load_images(cfg)[0, ..., 0]
    assert np.abs(np.array(_quadrants(upright)) - _quadrants(shown)).max() <= 4
    assert _quadrants(stale[0, ..., 0]) != _quadrants(upright)
