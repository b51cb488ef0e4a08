import json
import os
import stat

import pytest

from dcgan.core.errors import DcganError
from dcgan.training.rundir import MetricsLog, read_metrics, trim_event_files
from dcgan.core.files import atomic_write
from helpers import event_steps


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    path = atomic_write(tmp_path / "a" / "x.txt", "one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["x.txt"]


def test_trim_event_files_drops_later_steps_and_a_torn_record(tmp_path):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(1, 6):
            tf.summary.scalar("loss", 1.0 / step, step=step)
    writer.close()
    assert event_steps(tmp_path) == [1, 2, 3, 4, 5]
    assert trim_event_files(tmp_path, 3) == 2
    assert event_steps(tmp_path) == [1, 2, 3]
    assert trim_event_files(tmp_path, 3) == 0  # nothing more to drop: the file is left alone
    (path,) = tmp_path.glob("events.out.tfevents.*")
    path.write_bytes(path.read_bytes()[:-5])  # a kill in the middle of the last record
    trim_event_files(tmp_path, 10)
    assert event_steps(tmp_path) == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_read_metrics_keeps_only_records_it_can_place(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": 1, "g_loss": 1.0}, {"step": "2"}, {"step": None}, {"step": 3.0}, {"step": True}, {"g_loss": 2.0},
               [4], {"step": 4, "note": "a\u2028b"}]
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + ["[" * 100_000, '{"step": ' + "9" * 5000 + "}"]
    path.write_text("\n".join(lines) + '\n{"step": 5, "g_lo')  # ends in a torn line
    assert [r["step"] for r in read_metrics(path, "all")] == [1, 4]
    MetricsLog(path, resume_step=3)  # a resume compares every step with its own
    assert read_metrics(path, "train") == [{"step": 1, "g_loss": 1.0}]


def test_unreadable_metrics_files_are_one_line_naming_them(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "x": "\xff"}\n')
    with pytest.raises(DcganError, match=r"metrics.jsonl: line 2 is not UTF-8 text"):
        read_metrics(path, "all")
    path.unlink()
    path.mkdir()
    with pytest.raises(DcganError, match="metrics.jsonl: is a directory, not a metrics file"):
        read_metrics(path, "all")
    assert read_metrics(tmp_path / "missing.jsonl", "all") == []


def test_every_record_has_a_kind_and_readers_ask_for_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.write("train", {"step": 2, "d_loss": 1.0})
    log.write("eval", {"step": 2, "eval": {"fid": 9.0}})
    log.write("sampler", {"step": 2, "sampler": {"choice": "ema"}})
    with open(path, "a") as f:  # a file written before records carried a kind
        f.write(json.dumps({"step": 4, "d_loss": 0.5}) + "\n" + json.dumps({"step": 4, "eval": {"fid": 8.0}}) + "\n")
    assert json.loads(path.read_text().splitlines()[0]) == {"step": 2, "kind": "train", "d_loss": 1.0}
    assert [(r["step"], "d_loss" in r) for r in read_metrics(path, "train")] == [(2, True), (4, True)]
    assert [r["eval"]["fid"] for r in read_metrics(path, "eval")] == [9.0, 8.0]
    assert [r["sampler"]["choice"] for r in read_metrics(path, "sampler")] == ["ema"]
    assert len(read_metrics(path, "all")) == 5
    with pytest.raises(ValueError, match="unknown metrics record kind"):
        log.write("loss", {"step": 6})
