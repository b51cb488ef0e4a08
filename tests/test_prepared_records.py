"""A prepared dataset whose manifest promises what its shards do not hold: one line, never a spin or a failed step."""

import json

import pytest

from helpers import TINY, cli_error, deadline, write_mnist
from dcgan.core.config import load_config
from dcgan.data import pipeline as data
from dcgan.data import prepared_format
from dcgan.data.datafiles import DataError
from dcgan.tools.prepare import prepare


def _prepared(tmp_path, n: int, channels: int = 1):
    """n images of 8x8 prepared from MNIST-style IDX files, in one shard."""
    out = tmp_path / "prepared"
    prepare(write_mnist(tmp_path / "mnist", n_train=n, n_test=0), out, 8, channels, quiet=True)
    return out


def _rewrite(out, **changes):
    path = out / prepared_format.MANIFEST
    manifest = json.loads(path.read_text())
    changes.get("shard", lambda s: None)(manifest["shards"][0])
    manifest.update({k: v for k, v in changes.items() if k != "shard"})
    path.write_text(json.dumps(manifest))


def _config(out, tmp_path, *sets):
    return load_config(None, [*TINY, "data.name=prepared", f"data.path={out}", "data.image_size=8", "data.channels=1",
                              f"run.dir={tmp_path / 'runs'}", *sets])


def test_shards_holding_fewer_records_than_listed_stop_the_stream_in_one_line(tmp_path, capsys):
    import tensorflow as tf

    out = _prepared(tmp_path, 10)
    shard_bytes = json.loads((out / prepared_format.MANIFEST).read_text())["shards"][0]["bytes"]
    claimed = shard_bytes // (8 * 8 + prepared_format.RECORD_FRAMING_BYTES)  # as many as the bytes could hold
    assert claimed > 10

    def count(shard):
        shard["count"] = claimed

    _rewrite(out, count=claimed, shard=count)
    # a batch the claimed count holds, the real records do not: every epoch would yield no batch
    cfg = _config(out, tmp_path, f"data.batch_size={claimed}")
    with deadline(60), pytest.raises(DataError, match=r"a shard holds fewer records than its manifest lists"):
        next(data.training_data(cfg.data).batches(tf.distribute.get_strategy(), claimed, seed=0))
    with deadline(120):
        line = cli_error(capsys, "train", "--set", "data.name=prepared", "--set", f"data.path={out}", "--set",
                         "data.image_size=8", *[a for s in TINY for a in ("--set", s)], "--set", f"data.batch_size={claimed}",
                         "--set", f"run.dir={tmp_path / 'runs'}", notes=True)  # notes: the training line before
    assert line.endswith(f"{out}: a shard holds fewer records than its manifest lists (10 of {claimed}); `dcgan prepare "
                         f"--verify {out}` names it; prepare the dataset again")


def test_a_manifest_whose_shape_is_not_its_records_is_one_line_before_training(tmp_path, capsys):
    out = _prepared(tmp_path, 20, channels=3)  # records of 8x8x3
    _rewrite(out, shape=[8, 8, 1])
    with pytest.raises(DataError, match=r"manifest.json: its shape 8x8x1 is 64 bytes an image, but its records hold 192"):
        data.load_images(_config(out, tmp_path).data, stream=True)
    line = cli_error(capsys, "train", "--set", "data.name=prepared", "--set", f"data.path={out}", "--set", "data.image_size=8",
                     *[a for s in TINY for a in ("--set", s)], "--set", f"run.dir={tmp_path / 'runs'}")
    assert f"{out / prepared_format.MANIFEST}: its shape 8x8x1" in line and not (tmp_path / "runs").exists()
