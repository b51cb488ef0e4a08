"""dcgan.studio.runs: the runs of a folder found from their files, their status, and what a request may read."""

import os
import shutil

import pytest

from dcgan.core.errors import DcganError
from dcgan.core.files import lock_run
from dcgan.studio.runs import CURVE_POINTS, NotFound, RunsFolder, curves, status


@pytest.fixture
def folder(tmp_path, tiny_run, tiny_conditional_run):
    root = tmp_path / "runs"
    (root / "group").mkdir(parents=True)
    shutil.copytree(tiny_run[0], root / "tiny", ignore=shutil.ignore_patterns(".lock"))
    shutil.copytree(tiny_conditional_run[0], root / "group" / "cond", ignore=shutil.ignore_patterns(".lock"))
    return root


def test_runs_are_found_below_the_folder_with_what_the_list_shows(folder):
    summary = RunsFolder(folder).summary()
    runs = {r["id"]: r for r in summary["runs"]}
    assert sorted(runs) == ["group/cond", "tiny"]
    tiny, cond = runs["tiny"], runs["group/cond"]
    assert (tiny["dataset"], tiny["mode"], tiny["steps"], tiny["step"]) == ("mnist", "subpixel,transpose", [3, 6], 6)
    assert tiny["status"] == "finished" and tiny["conditional"] is False and tiny["classes"] is None
    assert cond["conditional"] and cond["classes"][:2] == ["T-shirt/top", "Trouser"]
    assert summary["comparisons"] == []


def test_the_status_follows_the_lock_and_the_files(folder):
    root = RunsFolder(folder)
    run = root.run("tiny")
    assert status(run) == "finished"
    with lock_run(run.path, "dcgan train"):  # a real flock, as a training process holds it
        assert status(run) == "training"
    assert status(run) == "finished"
    os.utime(run.path / "generator.keras", (1, 1))  # older than its newest checkpoint: resumed, then killed
    assert status(run) == "interrupted"
    (run.path / "generator.keras").unlink()
    assert status(run) == "interrupted"


def test_a_run_with_a_broken_config_is_listed_as_broken_and_refused(folder):
    (folder / "tiny" / "config.yaml").write_text("model: [unclosed\n")
    runs = {r["id"]: r for r in RunsFolder(folder).summary()["runs"]}
    assert runs["tiny"]["status"] == "broken" and "config.yaml" in runs["tiny"]["problem"]
    with pytest.raises(DcganError, match="config.yaml"):
        RunsFolder(folder).run("tiny")


@pytest.mark.parametrize("rid", ["../runs/tiny", "/etc", str("tiny/.."), "tiny/checkpoints", "", "group"])
def test_a_run_is_only_one_that_was_found(folder, rid):
    with pytest.raises(NotFound, match="no run"):
        RunsFolder(folder).run(rid)


def test_a_link_does_not_lead_the_walk_out_of_the_folder(folder, tmp_path, tiny_run):
    outside = tmp_path / "outside"
    shutil.copytree(tiny_run[0], outside / "elsewhere", ignore=shutil.ignore_patterns(".lock"))
    (folder / "linked").symlink_to(outside / "elsewhere")
    (folder / "linked-group").symlink_to(outside)
    assert sorted(RunsFolder(folder).scan()[0]) == ["group/cond", "tiny"]


@pytest.mark.parametrize("name", ["../config.yaml", "config.yaml", "samples/../config.yaml", "step_1.png", "/etc/passwd"])
def test_only_a_runs_pictures_are_read_out(folder, name):
    with pytest.raises(NotFound, match="no picture"):
        RunsFolder(folder).picture("tiny", name)


def test_a_picture_that_is_a_link_is_refused(folder, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    (folder / "tiny" / "losses.png").unlink()
    (folder / "tiny" / "losses.png").symlink_to(secret)
    with pytest.raises(NotFound):
        RunsFolder(folder).picture("tiny", "losses")


def test_pictures_by_name_and_the_newest_grid(folder):
    root = RunsFolder(folder)
    grid, media = root.picture("tiny", "grid")
    assert media == "image/png" and grid == (folder / "tiny" / "samples" / "step_0000006.png").read_bytes()
    assert root.picture("tiny", "step_0000003.png")[0] == (folder / "tiny" / "samples" / "step_0000003.png").read_bytes()
    assert root.picture("tiny", "progress")[1] == "image/gif"


def test_curves_are_thinned_and_keep_the_last_step(folder):
    run = RunsFolder(folder).run("tiny")
    with open(run.path / "metrics.jsonl", "a") as f:
        for step in range(8, 8 + 3 * CURVE_POINTS):
            f.write(f'{{"step": {step}, "kind": "train", "d_loss": 1.0, "g_loss": 2.0}}\n')
        f.write('{"step": 99999, "kind": "eval", "eval": {"fid": 3.5}}\n')
    c = curves(run)
    assert CURVE_POINTS <= len(c["losses"]["d_loss"]) <= CURVE_POINTS + 2
    assert c["losses"]["g_loss"][-1] == [7 + 3 * CURVE_POINTS, 2.0]
    assert c["scores"]["fid"] == [[99999, 3.5]]


def test_a_missing_folder_is_one_line():
    with pytest.raises(DcganError, match="no such folder of runs"):
        RunsFolder("/nonexistent/runs")
