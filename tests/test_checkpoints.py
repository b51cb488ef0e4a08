"""dcgan/training/checkpoints.py: which checkpoints a run holds, and which one a command means.

The checkpoints here are real TensorFlow checkpoints, written by a tf.train.CheckpointManager
the way a run writes them (ckpt-<step>.index and .data-*), each holding its own step as a value,
so a test can restore the path it is given and see which checkpoint that is.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from dcgan.training.checkpoints import (BEST_DIR, BEST_FILE, CHECKPOINT_DIR, Checkpoint, checkpoint_steps, find_checkpoint,
                                        latest_step, read_best, run_checkpoint, run_steps)
from dcgan.core.errors import DcganError
from dcgan.training.rundir import write_config
from helpers import cli_error, deadline, fifo


def error(fn, *args) -> str:
    """The message of the DcganError fn(*args) raises."""
    with pytest.raises(DcganError) as e:
        fn(*args)
    return str(e.value)


def save_checkpoints(folder: Path, steps, incomplete=()) -> Path:
    """Real checkpoints at `steps` in folder; those in `incomplete` lose their .index, as a kill during the save leaves them."""
    value = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=value), str(folder), max_to_keep=None, checkpoint_name="ckpt")
    for step in (*steps, *incomplete):
        value.assign(float(step))
        manager.save(checkpoint_number=step)
    for step in incomplete:
        (folder / f"ckpt-{step}.index").unlink()
    return folder


def saved_step(path: str) -> int:
    """The step a checkpoint prefix holds, read back by restoring it."""
    value = tf.Variable(-1.0)
    tf.train.Checkpoint(value=value).restore(path).assert_existing_objects_matched()
    return int(value.numpy())


@pytest.fixture
def run(tmp_path) -> Path:
    """A run directory's checkpoints: complete at steps 2, 8 and 10, a torn one at 12, the best (by FID) at 8."""
    run = tmp_path / "run"
    folder = save_checkpoints(run / CHECKPOINT_DIR, [2, 8, 10], incomplete=[12])
    save_checkpoints(folder / BEST_DIR, [8])
    return run


# ---------------------------------------------------------------- the steps a folder holds


def test_checkpoint_steps_are_the_complete_checkpoints_oldest_first(run):
    folder = run / CHECKPOINT_DIR
    assert (folder / "ckpt-12.data-00000-of-00001").is_file() and not (folder / "ckpt-12.index").exists()
    (folder / "ckpt-5_temp").mkdir()  # a save's shard folder, a temporary and names that are no checkpoint
    (folder / "ckpt-7.index.tmp").write_bytes(b"")
    (folder / "ckpt-x.index").write_bytes(b"")
    (folder / "other-3.index").write_bytes(b"")
    assert checkpoint_steps(folder) == [2, 8, 10]  # by number: 10 is newer than 8
    assert run_steps(run) == [2, 8, 10]
    assert checkpoint_steps(folder / BEST_DIR) == [8]
    assert checkpoint_steps(run / "missing") == []
    (run / "a-file").write_text("not a folder")
    assert checkpoint_steps(run / "a-file") == []


def test_latest_step_is_the_newest_complete_checkpoint_or_0(run, tmp_path):
    assert latest_step(run) == 10
    assert latest_step(tmp_path / "no-run") == 0
    torn = tmp_path / "torn"
    save_checkpoints(torn / CHECKPOINT_DIR, [], incomplete=[3])  # killed during its first save
    assert latest_step(torn) == 0


# ---------------------------------------------------------------- a run's checkpoint


def test_run_checkpoint_is_the_latest_the_step_asked_for_or_the_best(run):
    folder = run / CHECKPOINT_DIR
    latest = run_checkpoint(run)
    assert latest == Checkpoint(run, str(folder / "ckpt-10"), 10) and saved_step(latest.path) == 10
    assert run_checkpoint(str(run)) == latest  # a str names the run as well as a Path
    assert run_checkpoint(run, 2) == Checkpoint(run, str(folder / "ckpt-2"), 2) and saved_step(run_checkpoint(run, 2).path) == 2
    best = run_checkpoint(run, "best")
    assert best == Checkpoint(run, str(folder / BEST_DIR / "ckpt-8"), 8) and saved_step(best.path) == 8


def test_run_checkpoint_errors_name_the_folder_and_what_there_is(run, tmp_path):
    folder = run / CHECKPOINT_DIR
    assert error(run_checkpoint, run, 5) == f"--step 5: no checkpoint ckpt-5 in {folder}; available steps: 2, 8, 10"
    assert error(run_checkpoint, run, 12) == f"--step 12: no checkpoint ckpt-12 in {folder}; available steps: 2, 8, 10"  # torn
    empty = tmp_path / "empty"
    empty.mkdir()
    assert error(run_checkpoint, empty) == f"no checkpoint in {empty / CHECKPOINT_DIR}; train the run first (dcgan train) or check the path"
    no_best = f"{empty}: no best checkpoint in {empty / CHECKPOINT_DIR / BEST_DIR} (train with train.eval_every set)"
    assert error(run_checkpoint, empty, "best") == no_best
    save_checkpoints(empty / CHECKPOINT_DIR / BEST_DIR, [], incomplete=[4])
    assert error(run_checkpoint, empty, "best") == no_best


# ---------------------------------------------------------------- what a command names


def test_find_checkpoint_takes_a_run_directory_or_a_checkpoint_path(run):
    folder = run / CHECKPOINT_DIR
    assert find_checkpoint(run) == run_checkpoint(run)
    assert find_checkpoint(run, 8) == run_checkpoint(run, 8)
    for name in ("ckpt-8", "ckpt-8.index", "ckpt-8.data-00000-of-00001"):  # the prefix or either of its files
        found = find_checkpoint(folder / name)
        assert found == Checkpoint(run, str(folder / "ckpt-8"), 8), name
        assert saved_step(found.path) == 8
    assert find_checkpoint(str(folder / "ckpt-2")) == Checkpoint(run, str(folder / "ckpt-2"), 2)


def test_find_checkpoint_refuses_what_names_no_checkpoint(run, tmp_path):
    folder = run / CHECKPOINT_DIR
    assert error(find_checkpoint, folder / "ckpt-8", 2) == (
        f"--step picks a checkpoint of a run directory; {folder / 'ckpt-8'} already names one")
    assert error(find_checkpoint, run, 3).endswith("available steps: 2, 8, 10")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for target in (tmp_path / "nowhere", folder / "ckpt-3", folder / "ckpt-12", folder / "ckpt-12.data-00000-of-00001",
                   folder / "checkpoint", tmp_path / "notes.txt"):
        assert error(find_checkpoint, target) == f"run directory or checkpoint not found: {target}"


def test_an_explicit_best_checkpoint_belongs_to_its_run(run):
    best = run / CHECKPOINT_DIR / BEST_DIR / "ckpt-8"
    assert find_checkpoint(best) == Checkpoint(run, str(best), 8)


def test_import_does_not_load_tensorflow():
    code = "import sys, dcgan.training.checkpoints; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- through the commands that read a run

MISSING_RUN = {"sample": "run directory or checkpoint not found", "export": "run directory or checkpoint not found",
               "evaluate": "run directory not found"}


@pytest.mark.parametrize("command", list(MISSING_RUN))
def test_commands_that_read_a_run_say_what_is_missing_in_one_line(command, tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    run_dir, cfg = tiny_run
    assert f"{MISSING_RUN[command]}: {tmp_path / 'nope'}" in cli_error(capsys, command, tmp_path / "nope")
    err = cli_error(capsys, command, run_dir, "--step", 5)
    assert f"--step 5: no checkpoint ckpt-5 in {run_dir / CHECKPOINT_DIR}; available steps: 3, 6" in err
    empty = tmp_path / "empty"
    write_config(empty, cfg)
    assert f"no checkpoint in {empty / CHECKPOINT_DIR}; train the run first" in cli_error(capsys, command, empty)
    if command == "evaluate":  # the one command that takes --step best
        assert f"no best checkpoint in {run_dir / CHECKPOINT_DIR / BEST_DIR}" in cli_error(capsys, command, run_dir, "--step", "best")


# ---------------------------------------------------------------- files TensorFlow or a resume reads back


@pytest.mark.parametrize("name", ["ckpt-10.index", "ckpt-10.data-00000-of-00001"])
def test_a_checkpoint_file_that_is_a_fifo_is_refused_before_tensorflow_blocks_on_it(run, name):
    path = run / CHECKPOINT_DIR / name
    path.unlink()
    fifo(path)
    with deadline(5):
        assert f"{path}: a checkpoint file must be a regular file, not a FIFO" in error(find_checkpoint, run)
    assert saved_step(find_checkpoint(run, 8).path) == 8  # the others are still there


def test_best_json_is_read_back_checked(tmp_path):
    assert read_best(tmp_path) is None  # no evaluation yet
    (tmp_path / BEST_FILE).write_text('{"step": 8, "fid": 12.5, "checkpoint": "ckpt-8"}')
    assert read_best(tmp_path) == {"step": 8, "fid": 12.5, "checkpoint": "ckpt-8"}
    for damaged in ('{"step": 8, "fid', "[8]", '{"step": "8", "fid": 1.0}', '{"step": 8}', "[" * 60_000):
        (tmp_path / BEST_FILE).write_text(damaged)
        assert error(read_best, tmp_path).startswith(f"{tmp_path / BEST_FILE}: damaged (")
    (tmp_path / BEST_FILE).unlink()
    (tmp_path / BEST_FILE).symlink_to("/dev/zero")
    with deadline(5):
        assert "best.json: a best-checkpoint record must be a regular file" in error(read_best, tmp_path)
