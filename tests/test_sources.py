"""The dataset interface: the registry agrees with the config, and a dataset added in one module (this one) trains,
evaluates and is prepared without any other module knowing of it."""

import json

import numpy as np
import pytest

from helpers import TINY, blob_images
from dcgan.core.config import BUILTIN_DATASETS, DATASET_FACTS, load_config
from dcgan.core.errors import ConfigError
from dcgan.core.schema import DatasetFacts
from dcgan.data import pipeline as data
from dcgan.data import prepared_format
from dcgan.data.source import REGISTRY, Labelled, Source, register
from dcgan.data.sources import source_for


# ---------------------------------------------------------------- a new dataset: this class and one registration


class Dots(Source):
    """A '.dots' file says how many images each split has; the images are drawn from it (two classes: odd and even)."""

    name, facts = "dots", DatasetFacts(channels=1, test_split=True)

    def read(self, split, labelled):
        counts = json.loads(open(self.cfg.path).read())
        n = counts[split]
        images = blob_images(n, size=12, seed={"train": 1, "test": 2}[split])
        return self.limited(Labelled(images, np.arange(n) % 2 if labelled else None, ["even", "odd"] if labelled else None))

    @classmethod
    def claims(cls, path):
        return path.suffix == ".dots"


register(Dots)


@pytest.fixture
def dots_file(tmp_path):
    path = tmp_path / "set.dots"
    path.write_text(json.dumps({"train": 40, "test": 24}))
    return path


def dots_config(path, tmp_path, *overrides):
    return load_config(None, [*TINY, "data.name=dots", f"data.path={path}", "data.image_size=16", "data.batch_size=8",
                              f"run.dir={tmp_path / 'runs'}", "train.heldout_probe=8", *overrides])


# ---------------------------------------------------------------- the registry and the config


def test_the_registry_and_the_config_agree():
    assert tuple(REGISTRY)[: len(BUILTIN_DATASETS)] == BUILTIN_DATASETS == ("mnist", "fashion_mnist", "cifar10", "folder",
                                                                            "prepared")
    assert all(REGISTRY[name].facts == DATASET_FACTS[name] for name in REGISTRY)  # registered ones declared too


def test_an_unknown_dataset_is_one_line_naming_the_registered_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.name: 'imagenet' is not allowed; choose one of mnist \| .* \| dots"):
        load_config(None, ["data.name=imagenet"])
    with pytest.raises(ConfigError, match=r"^data.channels: dots is grayscale; set data.channels=1$"):
        load_config(None, ["data.name=dots", "data.channels=3"])
    with pytest.raises(ValueError, match="registered already"):
        register(type("Other", (Dots,), {}))


def test_a_source_gives_its_split_at_the_configured_size_and_its_other_split_as_held_out(dots_file, tmp_path):
    cfg = dots_config(dots_file, tmp_path, "data.limit=30").data
    train = data.load_labelled_images(cfg)
    assert train.images.shape == (30, 16, 16, 1) and train.labels.tolist() == [i % 2 for i in range(30)]
    assert train.classes == ["even", "odd"]
    np.testing.assert_array_equal(train.images, data.conform(blob_images(40, size=12, seed=1), 16, 1)[:30])
    held = data.load_heldout(cfg)
    assert len(held) == 24 and held.labels is None  # the whole test split, whatever data.limit cuts from train
    assert source_for(cfg).heldout(labelled=True).classes == ["even", "odd"]


# ---------------------------------------------------------------- train, evaluate, prepare


def test_a_new_source_trains_evaluates_and_is_prepared(dots_file, tmp_path, monkeypatch, capsys):
    from dcgan.evaluation import selfsup
    from dcgan.tools.evaluate import evaluate
    from dcgan.tools.prepare import prepare
    from dcgan.training.loop import train

    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(selfsup, "STEPS", 2)
    monkeypatch.delenv(selfsup.STEPS_ENV, raising=False)
    run = train(dots_config(dots_file, tmp_path, "run.name=dots"), quiet=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "d_loss" in r]
    assert [r["step"] for r in trained] == [2, 4, 6] and all("d_gap" in r for r in trained)  # the test split is held out

    scores = evaluate(run, n=16, metrics="fid,checkerboard", network="selfsup", quiet=True)
    assert {r["metric"] for r in scores} == {"fid", "checkerboard"} and all(np.isfinite(r["value"]) for r in scores)
    assert {r["dataset_split"] for r in scores} == {"dots:test"}
    assert any(r["feature_network"].startswith("selfsup-dots-") for r in scores)

    out = tmp_path / "prepared"
    manifest = prepare(dots_file, out, 16, 1, labels=True, quiet=True)
    assert manifest["source"]["kind"] == "dots" and manifest["classes"] == ["even", "odd"] and manifest["count"] == 40
    images, labels, _ = prepared_format.read_all(out)
    np.testing.assert_array_equal(images, data.load_images(dots_config(dots_file, tmp_path).data))
    assert labels.tolist() == [i % 2 for i in range(40)]
