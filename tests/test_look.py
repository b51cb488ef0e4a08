"""`dcgan data PATH`: counts, sizes, aspect ratios, channel modes, classes, skips, duplicates and a contact sheet."""

import json
import zipfile

import numpy as np

from helpers import cli_error, run_cli
from dcgan.core.viz import read_png
from dcgan.data import image_folder
from dcgan.data.fit import Fit
from dcgan.tools.look import look


def _collection(root):
    """Two classes of pictures of several shapes and modes, a duplicate, a broken file and a text file."""
    from PIL import Image

    (root / "wide").mkdir(parents=True)
    (root / "tall").mkdir()
    Image.new("RGB", (64, 32), (255, 0, 0)).save(root / "wide" / "a.png")
    Image.new("RGBA", (90, 30), (0, 255, 0, 128)).save(root / "wide" / "b.png")
    Image.new("L", (30, 60), 90).save(root / "tall" / "c.jpg")
    Image.new("RGB", (40, 40), (0, 0, 255)).save(root / "tall" / "d.jpg")
    (root / "tall" / "d-copy.jpg").write_bytes((root / "tall" / "d.jpg").read_bytes())
    (root / "tall" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "notes.txt").write_text("x")
    return root


def test_the_look_counts_what_training_would_see(tmp_path):
    root = _collection(tmp_path / "pics")
    result = look(root, size=16, channels=3, fit=Fit("pad"), labels=True, n=3, seed=1)
    r = result.report
    assert (r["pictures"], r["readable"], r["other_files"]) == (6, 5, 1)
    assert r["skipped"] == {"unreadable": 1}
    assert r["channel_modes"] == {"RGB": 3, "RGBA": 1, "gray": 1}
    assert r["shorter_side"]["min"] == 30 and r["shorter_side"]["max"] == 40
    assert r["aspect_ratio"]["0.5-0.75"] == 1 and r["aspect_ratio"]["0.95-1.05"] == 2
    assert r["aspect_ratio"]["1.6-2.1"] == 1 and r["aspect_ratio"]["over 2.1"] == 1
    assert r["duplicates"] == {"count": 1, "examples": [["tall/d-copy.jpg", "tall/d.jpg"]]}
    assert r["classes"]["counts"] == {"tall": 4, "wide": 2}
    # the contact sheet holds the sample exactly as a `data.fit: pad` run decodes it
    names = r["contact"]["names"]
    assert len(names) == 3 and r["contact"]["n"] == 3
    expected = [image_folder.decode_image(root / name, 16, 3, Fit("pad")) for name in names]
    assert result.contact.shape == (2 * 18 + 2, 2 * 18 + 2, 3)
    np.testing.assert_array_equal(result.contact[2:18, 2:18], expected[0])
    np.testing.assert_array_equal(result.contact[2:18, 20:36], expected[1])
    assert "exact duplicates: 1" in str(result) and "5 readable" in str(result)


def test_an_archive_looks_like_its_folder(tmp_path):
    root = _collection(tmp_path / "pics")
    archive = tmp_path / "pics.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(root).as_posix())
    a, b = look(root, 16, n=4).report, look(archive, 16, n=4).report
    assert b["kind"] == "archive" and a["kind"] == "folder"
    for key in ("pictures", "readable", "skipped", "channel_modes", "aspect_ratio", "duplicates", "contact"):
        assert a[key] == b[key], key


def test_the_command_writes_its_files_and_refuses_to_overwrite(tmp_path, capsys):
    root = _collection(tmp_path / "pics")
    out = tmp_path / "look"
    status, said, err = run_cli(capsys, "data", root, "--size", 16, "--fit", "center-wide", "--labels", "--out", out)
    assert status == 0, err
    assert "6 picture(s), 5 readable" in said and "classes (subfolders): 2" in said
    report = json.loads((out / "data.json").read_text())
    assert report["contact"]["fit"] == "center-wide" and report["readable"] == 5
    sheet = read_png(out / "contact.png")
    assert sheet.shape == ((2 * 18 + 2) * 8, (3 * 18 + 2) * 8, 3)  # 5 pictures: 2 rows of 3, enlarged 8x
    assert read_png(out / "histograms.png").shape[0] > 100
    line = cli_error(capsys, "data", root, "--out", out)
    assert "--out" in line and "data.json exists" in line and "--force" in line
    assert run_cli(capsys, "data", root, "--out", out, "--force", "--n", 2).status == 0
    assert json.loads((out / "data.json").read_text())["contact"]["n"] == 2


def test_bad_input_is_one_line(tmp_path, capsys):
    root = _collection(tmp_path / "pics")
    assert "does not exist" in cli_error(capsys, "data", tmp_path / "nothing", "--out", tmp_path / "o")
    assert "--n: 0" in cli_error(capsys, "data", root, "--n", 0, "--out", tmp_path / "o")
    assert "--pad: 'blue'" in cli_error(capsys, "data", root, "--pad", "blue", "--out", tmp_path / "o")
    assert "has no class subfolders" in cli_error(capsys, "data", root / "tall", "--labels", "--out", tmp_path / "o")
    assert not (tmp_path / "o" / "data.json").exists()
