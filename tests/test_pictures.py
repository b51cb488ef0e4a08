"""A folder's pictures from a directory or from an archive of it: the same pixels, labels, cache and prepare."""

import json
import tarfile
import zipfile

import numpy as np
import pytest

from helpers import cli_error, run_cli
from dcgan.core.config import load_config
from dcgan.data import folder_cache, image_folder, prepared_format
from dcgan.data import pipeline as data
from dcgan.data.datafiles import DataError
from dcgan.data.fit import Fit


def _folder(root, n=4, classes=("cat", "dog"), size=(24, 16)):
    """n pictures per class subfolder, each a different colour and a non-square size, plus a text file."""
    from PIL import Image

    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", size, (40 * i, 100 * c, 255 - 30 * i)).save(root / name / f"{i}.png")
    (root / "README.txt").write_text("about these pictures")
    return root


def _zip(folder, out):
    with zipfile.ZipFile(out, "w") as z:
        for p in sorted(folder.rglob("*"), reverse=True):  # stored out of order: the listing sorts them
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return out


def _tar(folder, out, mode="w:gz"):
    with tarfile.open(out, mode) as t:
        for p in sorted(folder.rglob("*"), reverse=True):
            if p.is_file():
                t.add(p, p.relative_to(folder).as_posix())
    return out


def _cfg(path, *sets):
    return load_config(None, ["data.name=folder", f"data.path={path}", "data.image_size=16", "data.channels=3", *sets]).data


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_an_archive_loads_the_pixels_and_classes_of_its_folder(tmp_path, kind):
    folder = _folder(tmp_path / "pics")
    archive = tmp_path / f"pics.{kind}"
    _zip(folder, archive) if kind == "zip" else _tar(folder, archive, "w" if kind == "tar" else "w:gz")
    for sets in ([], ["data.fit=pad", "data.resize=bicubic"]):
        np.testing.assert_array_equal(data.load_images(_cfg(archive, *sets)), data.load_images(_cfg(folder, *sets)))
    want, got = data.load_labelled_images(_cfg(folder)), data.load_labelled_images(_cfg(archive))
    np.testing.assert_array_equal(got.images, want.images)
    assert got.labels.tolist() == want.labels.tolist() == [0] * 4 + [1] * 4 and got.classes == ["cat", "dog"]
    assert len(data.load_images(_cfg(archive, "data.limit=3"))) == 3


def test_the_cache_follows_the_archive_and_the_fit(tmp_path, monkeypatch):
    archive = _zip(_folder(tmp_path / "pics"), tmp_path / "pics.zip")
    keys = {folder_cache.folder_key(archive, 16, 3, None, fit=Fit(f)) for f in ("center", "pad", "stretch")}
    assert len(keys) == 3
    first = data.load_images(_cfg(archive))
    monkeypatch.setattr(image_folder, "decode_bytes", lambda *a: pytest.fail("decoded although cached"))
    np.testing.assert_array_equal(data.load_images(_cfg(archive)), first)
    monkeypatch.undo()
    _zip(_folder(tmp_path / "other", n=2, classes=("x",)), archive)  # rewritten: decoded again
    assert len(data.load_images(_cfg(archive))) == 2


def test_the_default_cache_key_is_the_one_written_before_the_fit_settings(tmp_path):
    import hashlib
    import os

    folder = _folder(tmp_path / "pics")
    settings = {"format": folder_cache.CACHE_FORMAT, "size": 16, "channels": 3, "limit": None, "labelled": False}
    h = hashlib.sha256(json.dumps(settings).encode())
    for p in sorted(folder.rglob("*")):  # the old key: every entry's name, size, mtime and mode
        st = p.stat()
        h.update(os.fsencode(p.relative_to(folder)) + b"\0")
        h.update(f"{st.st_size}:{st.st_mtime_ns}:{st.st_mode}\n".encode())
    assert folder_cache.folder_key(folder, 16, 3, None) == h.hexdigest()[:32]


def test_a_path_that_is_neither_folder_nor_archive_is_one_line(tmp_path, capsys):
    (tmp_path / "pics.txt").write_text("no")
    with pytest.raises(DataError, match="is not a directory or a .zip"):
        data.load_images(_cfg(tmp_path / "pics.txt"))
    with pytest.raises(DataError, match="does not exist"):
        data.load_images(_cfg(tmp_path / "nothing.zip"))


def test_a_hostile_archive_is_refused_before_training(tmp_path, capsys):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../outside.png", b"\x89PNG")
    line = cli_error(capsys, "train", "--set=data.name=folder", f"--set=data.path={archive}", "--set=data.channels=3",
                     "--set=data.image_size=16", f"--set=run.dir={tmp_path / 'runs'}")
    assert "'../outside.png' lies outside the archive" in line and not (tmp_path / "runs").exists()


def test_prepare_from_an_archive_equals_prepare_from_its_folder_and_records_the_fit(tmp_path, capsys):
    folder = _folder(tmp_path / "pics")
    archive = _tar(folder, tmp_path / "pics.tar.gz")
    for source, out in ((folder, tmp_path / "a"), (archive, tmp_path / "b")):
        status, _, err = run_cli(capsys, "prepare", source, out, "--size", 16, "--channels", 3, "--labels",
                                 "--fit", "pad", "--pad", "#000000", "--quiet")
        assert status == 0, err
    (a, la, na), (b, lb, nb) = prepared_format.read_all(tmp_path / "a"), prepared_format.read_all(tmp_path / "b")
    order = np.argsort(nb)  # a compressed tar is written in its own order (read front to back), a folder sorted
    assert list(na) == sorted(na) and list(nb) != sorted(nb)
    np.testing.assert_array_equal(a, b[order])
    assert la.tolist() == lb[order].tolist() and list(na) == [nb[i] for i in order]
    np.testing.assert_array_equal(a, data.load_images(_cfg(folder, "data.fit=pad", "data.pad=#000000")))
    source = json.loads((tmp_path / "b" / "manifest.json").read_text())["source"]
    assert (source["fit"], source["resize"], source["pad"], source["duplicates"]) == ("pad", "area", "#000000", 0)
    line = cli_error(capsys, "prepare", archive, tmp_path / "c", "--size", 16, "--channels", 3, "--shuffle", 1)
    assert "--shuffle" in line and "front to back" in line
    line = cli_error(capsys, "prepare", folder, tmp_path / "c", "--size", 16, "--channels", 3, "--fit", "random")
    assert "--fit: random" in line and not (tmp_path / "c").exists()


def test_prepare_reports_exact_duplicates_and_dedupe_drops_them(tmp_path, capsys):
    folder = _folder(tmp_path / "pics", classes=("all",))
    (folder / "all" / "copy-of-1.png").write_bytes((folder / "all" / "1.png").read_bytes())
    (folder / "all" / "copy2-of-1.png").write_bytes((folder / "all" / "1.png").read_bytes())
    status, _, err = run_cli(capsys, "prepare", folder, tmp_path / "kept", "--size", 16, "--channels", 3, "--quiet")
    assert status == 0 and "2 exact duplicate(s)" in err and "--dedupe drops them" in err
    status, _, err = run_cli(capsys, "prepare", folder, tmp_path / "deduped", "--size", 16, "--channels", 3,
                             "--dedupe", "--quiet")
    assert status == 0 and "dropped (--dedupe)" in err
    kept, deduped = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("kept", "deduped"))
    assert kept["count"] == 6 and deduped["count"] == 4 and deduped["source"]["duplicates"] == 2
    names = prepared_format.read_all(tmp_path / "deduped")[2]
    assert "all/1.png" in names and not any("copy" in n for n in names)  # the first in sorted order stays


def test_each_decoding_of_a_folder_keeps_its_own_cache_entry(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "pics")
    center, pad = data.load_images(_cfg(folder)), data.load_images(_cfg(folder, "data.fit=pad"))
    assert not np.array_equal(center, pad)
    monkeypatch.setattr(image_folder, "decode_bytes", lambda *a: pytest.fail("decoded although cached"))
    np.testing.assert_array_equal(data.load_images(_cfg(folder)), center)  # the pad entry did not replace it
    np.testing.assert_array_equal(data.load_images(_cfg(folder, "data.fit=pad")), pad)
