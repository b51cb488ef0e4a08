import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from dcgan.core.errors import DcganError
from dcgan.training.checkpoints import BEST_DIR, BEST_FILE, CHECKPOINT_DIR, STATE_FILE, latest_step
from dcgan.training.rundir import (CLASSES_FILE, CLASSES_LIMIT, CONFIG_FILE, METRICS_FILE, MetricsLog, check_resumable,
                                   check_resumed_classes, read_classes, read_metrics, trim_event_files, write_classes)
from dcgan.core.files import atomic_write, read_bytes
from helpers import cli_error, deadline, event_steps, fifo


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


# ---------------------------------------------------------------- run files read back: regular, bounded, one line


def test_read_bytes_reads_a_regular_file_or_a_link_to_one_within_its_limit(tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(b"12345")
    (tmp_path / "link").symlink_to(path)
    assert read_bytes(path, 5, "a test file") == read_bytes(tmp_path / "link", 5, "a test file") == b"12345"
    with pytest.raises(DcganError, match=r"f.json: 5 bytes, over the 4-byte limit for a test file"):
        read_bytes(path, 4, "a test file")
    with pytest.raises(FileNotFoundError):  # the caller knows what a missing file means
        read_bytes(tmp_path / "missing", 5, "a test file")


@pytest.mark.parametrize("kind", ["a FIFO", "a character device", "a directory"])
def test_read_bytes_refuses_at_once_what_would_hang_or_never_end(tmp_path, kind):
    path = tmp_path / "f\nx"  # the name is shown on one line too
    {"a FIFO": fifo, "a character device": lambda p: p.symlink_to("/dev/zero"), "a directory": os.mkdir}[kind](path)
    with deadline(5), pytest.raises(DcganError) as e:
        read_bytes(path, 1 << 20, "a test file")
    assert str(e.value) == f"{tmp_path}/f\\nx: a test file must be a regular file, not {kind}"


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    return shutil.copytree(tiny_run[0], tmp_path / "run")


@pytest.fixture
def conditional_copy(tiny_conditional_run, tmp_path):
    return shutil.copytree(tiny_conditional_run[0], tmp_path / "run"), tiny_conditional_run[1]


def _replace(path: Path, special: str) -> None:
    path.unlink()
    fifo(path) if special == "fifo" else path.symlink_to(special)


@pytest.mark.parametrize("name", [CLASSES_FILE, CONFIG_FILE])
@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_sample_refuses_a_run_file_that_is_a_device_or_a_fifo_in_one_line(conditional_copy, tmp_path, capsys, name, special):
    run, _ = conditional_copy
    _replace(run / name, special)
    with deadline(60):
        line = cli_error(capsys, "sample", run, "--out", tmp_path / "g.png")
    assert f"{run / name}: " in line and "must be a regular file" in line, line


def test_a_huge_classes_file_is_refused_before_it_is_read(conditional_copy):
    run, cfg = conditional_copy
    with open(run / CLASSES_FILE, "r+b") as f:
        f.truncate(CLASSES_LIMIT + 1)  # sparse: no disk used
    with deadline(5), pytest.raises(DcganError, match=rf"classes.json: {CLASSES_LIMIT + 1} bytes, over the"):
        read_classes(run, cfg)


def test_metrics_linked_to_dev_zero_is_one_line_for_readers_and_for_a_resume(run_copy, capsys):
    _replace(run_copy / METRICS_FILE, "/dev/zero")
    with deadline(5), pytest.raises(DcganError, match="metrics.jsonl: a run's metrics log must be a regular file"):
        read_metrics(run_copy / METRICS_FILE, "all")
    with deadline(60):
        line = cli_error(capsys, "train", "--resume", run_copy, "--quiet", "--set", "train.steps=7")
    assert "metrics.jsonl: a run's metrics log must be a regular file, not a character device" in line


def test_a_fifo_state_file_or_event_file_stops_a_resume_before_tensorflow_reads_it(run_copy):
    state = run_copy / CHECKPOINT_DIR / STATE_FILE
    _replace(state, "fifo")
    with deadline(5), pytest.raises(DcganError, match="checkpoints/checkpoint: a checkpoint state file must be a regular"):
        check_resumable(run_copy)
    events = fifo(run_copy / "tb" / "events.out.tfevents.0.fifo")
    with deadline(5), pytest.raises(DcganError, match=f"{events}: a TensorBoard event file must be a regular file"):
        trim_event_files(run_copy / "tb", 3)


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"fid": "low", "step": 3}'])
def test_a_damaged_best_json_stops_a_resume_in_one_line_naming_it(run_copy, capsys, damage):
    best = run_copy / CHECKPOINT_DIR / BEST_DIR / BEST_FILE
    best.parent.mkdir(exist_ok=True)
    best.write_text(damage)
    line = cli_error(capsys, "train", "--resume", run_copy, "--quiet", "--set", "train.steps=7")
    assert f"{best}: damaged" in line, line
    assert latest_step(run_copy) == 6  # nothing trained


def test_metrics_are_never_appended_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / METRICS_FILE).symlink_to(victim)
    with pytest.raises(DcganError, match="cannot write .*metrics.jsonl"):
        MetricsLog(tmp_path / METRICS_FILE).write("train", {"step": 1})
    assert victim.read_text() == "keep"


# ---------------------------------------------------------------- a resumed conditional run keeps its classes


def test_a_conditional_run_without_classes_json_is_not_resumed(conditional_copy, capsys):
    """Its labels could mean other classes now (the data's classes renamed or reordered): nothing could tell."""
    run, _ = conditional_copy
    (run / CLASSES_FILE).unlink()
    line = cli_error(capsys, "train", "--resume", run, "--quiet", "--set", "train.steps=7")
    assert f"cannot resume {run}: it is a conditional run without classes.json" in line
    assert latest_step(run) == 6 and not (run / CLASSES_FILE).exists()


def test_a_conditional_run_with_no_checkpoint_yet_gets_its_classes_written(tmp_path, tiny_conditional_run):
    cfg = tiny_conditional_run[1]
    assert check_resumed_classes(tmp_path, cfg, ["a", "b"]) is False
    write_classes(tmp_path, ["a", "b"])
    assert check_resumed_classes(tmp_path, cfg, ["a", "b"]) is True


def test_differing_classes_are_named_on_one_bounded_line(tmp_path, tiny_conditional_run):
    """Class names are folder names: a newline, a carriage return or an escape sequence must not reach the terminal."""
    from dcgan.training.gan import GAN
    from dcgan.training.loop import check_classes

    cfg = tiny_conditional_run[1]
    write_classes(tmp_path, ["cat", "dog\n\rdcgan train: done\x1b[2K"])
    for data, difference in ((["cat", "x" * 1000], "class 1 is 'dog\\n\\rdcgan train: done\\x1b[2K' in the run and 'xxx"),
                             (["cat"], "the run has 2 classes and the data 1")):
        with pytest.raises(DcganError) as e:
            check_classes(GAN(cfg, classes=data), tmp_path, resuming=True)
        message = str(e.value)
        assert difference in message and message.isprintable() and len(message) < 300, message
