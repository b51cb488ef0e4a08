"""core.files: the folder lock never writes through a link, into a FIFO or a device, or over another file's data."""

import os
import shutil

import pytest

from dcgan.core.errors import DcganError
from dcgan.core.files import LOCK_FILE, lock_run
from helpers import cli_error


def _victim(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("years of work")
    return victim


def _lock_error(folder) -> str:
    with pytest.raises(DcganError) as e:
        lock_run(folder, "dcgan test")
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("make", ["link", "hard link"])
def test_a_lock_that_names_another_file_is_refused_and_that_file_is_untouched(tmp_path, make):
    victim, run = _victim(tmp_path), tmp_path / "run"
    run.mkdir()
    (os.symlink if make == "link" else os.link)(victim, run / LOCK_FILE)
    line = _lock_error(run)
    assert f"{run / LOCK_FILE} " in line and ("symbolic link" if make == "link" else "2 hard links") in line
    assert victim.read_text() == "years of work"


def test_a_dangling_link_as_the_lock_does_not_create_its_target(tmp_path):
    run, target = tmp_path / "run", tmp_path / "elsewhere" / "created"
    (tmp_path / "elsewhere").mkdir()
    run.mkdir()
    os.symlink(target, run / LOCK_FILE)
    assert "is a symbolic link" in _lock_error(run)
    assert not os.path.lexists(target)


def test_a_fifo_or_a_device_as_the_lock_is_one_line_naming_it_and_never_blocks(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / LOCK_FILE)  # without O_NONBLOCK, opening it would wait for a reader forever
    assert _lock_error(run) == f"cannot lock {run}: {run / LOCK_FILE} is not a regular file (a FIFO); remove it"
    (run / LOCK_FILE).unlink()
    os.symlink("/dev/null", run / LOCK_FILE)
    assert f"{run / LOCK_FILE} is a symbolic link" in _lock_error(run)  # was "Invalid argument", no path
    (run / LOCK_FILE).unlink()
    with lock_run(run, "dcgan test"):  # a plain file, then, as before
        assert "dcgan test" in (run / LOCK_FILE).read_text()


def test_sample_into_a_run_whose_lock_links_elsewhere_exits_2_and_leaves_the_target(tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run[0], tmp_path / "run")
    victim = _victim(tmp_path)
    for name in (LOCK_FILE, "sample_grid.png"):
        (run / name).unlink(missing_ok=True)
    os.symlink(victim, run / LOCK_FILE)
    line = cli_error(capsys, "sample", run, "--n", 4)  # the default output is RUN/sample_grid.png: a write into the run
    assert f"{run / LOCK_FILE} is a symbolic link" in line
    assert victim.read_text() == "years of work" and not (run / "sample_grid.png").exists()
