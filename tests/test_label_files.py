"""data.labels: classes from a dataset.json (StyleGAN2-ADA's) or a CSV, with every bad entry named."""

import json
import zipfile

import numpy as np
import pytest

from helpers import TINY, run_cli
from dcgan.core.config import load_config
from dcgan.data import pipeline as data
from dcgan.data import prepared_format
from dcgan.data.datafiles import DataError


def _pictures(root, names):
    from PIL import Image

    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 10), (20 * i, 0, 0)).save(root / name)
    return root


NAMES = ["a.png", "b.png", "sub/c.png", "sub/d.png"]


def _labelled(path, labels):
    cfg = load_config(None, ["data.name=folder", f"data.path={path}", "data.image_size=8", "data.channels=3",
                             f"data.labels={labels}"]).data
    return data.load_labelled_images(cfg)


def test_dataset_json_labels_by_class_number(tmp_path):
    root = _pictures(tmp_path / "pics", NAMES)
    (root / "dataset.json").write_text(json.dumps({"labels": [["sub/d.png", 2], ["a.png", 0], ["b.png", 10],
                                                              ["sub/c.png", 2]]}))
    got = _labelled(root, "dataset.json")
    assert got.classes == ["0", "2", "10"] and got.labels.tolist() == [0, 2, 1, 1]  # numbers sorted as numbers
    assert got.images.shape == (4, 8, 8, 3)


def test_csv_labels_by_class_name_and_an_absolute_file(tmp_path):
    root = _pictures(tmp_path / "pics", NAMES)
    csv = tmp_path / "labels.csv"
    csv.write_text("file,species\na.png,owl\nb.png,cat\n./sub/c.png,owl\nsub\\d.png, cat \n")
    got = _labelled(root, csv)
    assert got.classes == ["cat", "owl"] and got.labels.tolist() == [1, 0, 1, 0]


def test_a_label_file_inside_an_archive(tmp_path):
    root = _pictures(tmp_path / "pics", NAMES)
    archive = tmp_path / "pics.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in NAMES:
            z.write(root / name, name)
        z.writestr("dataset.json", json.dumps({"labels": [[n, i % 2] for i, n in enumerate(NAMES)]}))
    got = _labelled(archive, "dataset.json")
    assert got.classes == ["0", "1"] and got.labels.tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(got.images, _labelled(root, _csv(tmp_path, [(n, str(i % 2)) for i, n in
                                                                               enumerate(NAMES)])).images)


def _csv(tmp_path, rows, name="l.csv"):
    path = tmp_path / name
    path.write_text("path,class\n" + "".join(f"{p},{c}\n" for p, c in rows))
    return path


@pytest.mark.parametrize("rows, message", [
    ([("a.png", "x"), ("b.png", "x"), ("sub/c.png", "y")], "has no label for 'sub/d.png'"),
    ([(n, "x") for n in NAMES] + [("e.png", "x")], "'e.png' names no picture"),
    ([("../a.png", "x")], "'../a.png' leaves the folder"),
    ([("/etc/passwd", "x")], "'/etc/passwd' leaves the folder"),
    ([("a.png", "x"), ("./a.png", "y")], "'./a.png' is listed twice"),
])
def test_every_bad_csv_entry_is_named(tmp_path, rows, message):
    root = _pictures(tmp_path / "pics", NAMES)
    with pytest.raises(DataError, match="data.labels: ") as e:
        _labelled(root, _csv(tmp_path, rows))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("doc, message", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"label": []}), 'has no "labels" list'),
    (json.dumps({"labels": [["a.png"]]}), "entry 0 (['a.png']) is not a [path, class] pair"),
    (json.dumps({"labels": [["a.png", -1]]}), "the class must be a whole number"),
    (json.dumps({"labels": [["a.png", 1.5]]}), "the class must be a whole number"),
    (json.dumps({"labels": [["a.png", 1], ["b.png", "cat"], ["sub/c.png", 1], ["sub/d.png", 1]]}), "mixes class numbers"),
])
def test_every_bad_json_entry_is_named(tmp_path, doc, message):
    root = _pictures(tmp_path / "pics", NAMES)
    (root / "dataset.json").write_text(doc)
    with pytest.raises(DataError, match="data.labels: ") as e:
        _labelled(root, "dataset.json")
    assert message in str(e.value)


def test_a_missing_label_file_and_a_bad_header_are_one_line(tmp_path):
    root = _pictures(tmp_path / "pics", NAMES)
    with pytest.raises(DataError, match="does not exist"):
        _labelled(root, "nope.csv")
    (tmp_path / "one.csv").write_text("path\na.png\n")
    with pytest.raises(DataError, match="header of two columns"):
        _labelled(root, tmp_path / "one.csv")


def test_prepare_and_a_conditional_run_take_the_label_file(tmp_path, capsys):
    root = _pictures(tmp_path / "pics", NAMES)
    csv = _csv(tmp_path, [("a.png", "owl"), ("b.png", "cat"), ("sub/c.png", "owl"), ("sub/d.png", "cat")])
    status, _, err = run_cli(capsys, "prepare", root, tmp_path / "out", "--size", 8, "--channels", 3, "--labels", csv,
                             "--quiet")
    assert status == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["classes"] == ["cat", "owl"] and manifest["source"]["labels_file"] == str(csv)
    assert prepared_format.read_all(tmp_path / "out")[1].tolist() == [1, 0, 1, 0]
    sets = [*TINY, "data.name=folder", f"data.path={root}", "data.image_size=8", "data.channels=3",
            "data.batch_size=2", f"data.labels={csv}", "model.generator.condition=concat",
            "model.discriminator.condition=projection", "train.steps=2", "train.log_every=1", "train.sample_every=2",
            "train.checkpoint_every=2", "train.select_sampler=false", f"run.dir={tmp_path / 'runs'}", "run.name=c"]
    status, out, err = run_cli(capsys, "train", "--quiet", *[f"--set={s}" for s in sets])
    assert status == 0, err
    assert json.loads((tmp_path / "runs" / "c" / "classes.json").read_text()) == {"classes": ["cat", "owl"]}
