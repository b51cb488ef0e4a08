import json
import math
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import TINY, cli_error, write_mnist
from dcgan.tools import compare
from dcgan.tools import modes
from dcgan.tools import report
from dcgan.training import loop as trainlib
from dcgan.training.artifacts import SampleGrid
from dcgan.cli import main
from dcgan.core.errors import DcganError
from dcgan.training.rundir import read_metrics
from dcgan.training.checkpoints import find_checkpoint
from dcgan.tools.handle import load_handle
from dcgan.models.sampling import generate_images
from dcgan.tools.sample import latents
from dcgan.core.viz import read_png

MODES = "transpose:k4,upsample:nearest"


class Killed(Exception):
    """Stands in for a kill: raised from inside the training loop."""


@pytest.fixture(autouse=True)
def cache(cache_dir, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(cache_dir))  # one cache: the tiny dataset's classifier is trained once
    return cache_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny MNIST IDX files with two labels (the feature classifier needs classes)."""
    return write_mnist(tmp_path_factory.mktemp("mnist"), two_classes=True)


def tiny_sets(root, data):
    return ["data.name=mnist", f"data.path={data}", f"run.dir={root}", *TINY, "train.eval_samples=16", "train.ema_decay=0.9"]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, cache_dir, data_dir):
    """Two modes, 4 steps each: killed during the second run's last step, then run again."""
    root = tmp_path_factory.mktemp("compare")
    p = modes.make_plan(None, MODES, budget="steps", steps=4, eval_every=2, overrides=tiny_sets(root, data_dir), eval_samples=32)
    first, second = (p.run_dir(m, 0) for m in p.modes)
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCGAN_CACHE", str(cache_dir))
        real_draw, real_train = SampleGrid.draw, trainlib.train

        def draw_then_kill(grid, step):
            if grid.run_dir == second and step == 4:  # after step 4 is logged, before its checkpoint
                raise Killed()
            return real_draw(grid, step)

        mp.setattr(SampleGrid, "draw", draw_then_kill)
        with pytest.raises(Killed):
            compare.compare(p, quiet=True)
        killed = SimpleNamespace(result=(second / compare.RESULT_FILE).exists(),
                                 steps=[r["step"] for r in read_metrics(second / "metrics.jsonl", "train") if "d_loss" in r])
        mp.setattr(SampleGrid, "draw", real_draw)
        before = {f: f.stat().st_mtime_ns for f in first.rglob("*") if f.is_file()}

        def recording_train(cfg, resume_dir=None, quiet=False, **kw):
            calls.append((cfg.run.name, resume_dir))
            return real_train(cfg, resume_dir=resume_dir, quiet=quiet, **kw)

        mp.setattr(trainlib, "train", recording_train)
        report_md = compare.compare(p, quiet=True)
    return SimpleNamespace(plan=p, report=report_md, first=first, second=second, before=before, calls=calls, killed=killed)


def table(markdown: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The Markdown table under a '## heading': (header cells, row cells)."""
    section = markdown.split(f"## {heading}\n", 1)[1]
    lines = [l for l in section.split("\n## ", 1)[0].splitlines() if l.startswith("|")]
    cells = [[c.strip() for c in l.strip("|").split("|")] for l in lines]
    return cells[0], cells[2:]


def test_report_has_every_column_filled(comparison):
    p, text = comparison.plan, comparison.report.read_text()
    assert comparison.report == p.directory / report.REPORT_MD
    assert "same number of training steps: 4 per run" in text
    assert f"os.cpu_count() = {os.cpu_count()}" in text
    assert f"`{p.command()}`" in text and "--budget steps --steps 4" in p.command()
    header, rows = table(text, "Per mode")
    assert header == ["mode"] + [h for _, h, _ in report.COLUMNS if h not in ("class accuracy ↑", "intra-FID ↓")]
    assert "class accuracy" not in text  # unconditional runs: no class metrics
    assert [r[0] for r in rows] == ["`transpose:k4`", "`upsample:nearest`"]
    run_header, per_run = table(text, "Per run")
    assert run_header == ["mode", "seed"] + header[1:] and len(per_run) == 2
    assert all(len(r) == len(header) for r in rows) and all(len(r) == len(run_header) for r in per_run)
    for row in rows + per_run:
        for c in row:
            assert c and "nan" not in c.lower() and "inf" not in c.lower()
    # the numbers behind the table
    saved = json.loads((p.directory / report.REPORT_JSON).read_text())
    assert saved["budget"] == {"kind": "steps", "amount": 4, "eval_every": 2.0}
    assert saved["machine"]["cpu_count"] == os.cpu_count()
    by_mode = {m["mode"]: m for m in saved["modes"]}
    t, u = by_mode["transpose:k4"]["runs"][0], by_mode["upsample:nearest"]["runs"][0]
    for r in (t, u):
        assert r["step"] == 4 and r["seed"] == 0 and r["eval_samples"] == 32
        assert [c["step"] for c in r["curve"]] == [2, 4]  # train.eval_every = 2
        assert all(math.isfinite(r[k]) for k, _, _ in report.columns([r]))
        assert "class_accuracy" not in r and "intra_fid" not in r
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and r["fid"] > 0 and r["checkerboard"] > 0
        assert r["images_per_s"] > 0 and r["wall_s"] > 0 and r["feature_network"].startswith("classifier-mnist-")
    # resize-convolution: a 3x3 kernel (fewer weights than 4x4) applied at the doubled resolution (more FLOPs)
    assert u["generator_gflops"] > t["generator_gflops"] and u["generator_params"] < t["generator_params"]
    assert by_mode["transpose:k4"]["summary"]["fid"] == {"mean": t["fid"], "std": None, "n": 1}


def test_figures_are_written(comparison):
    d = comparison.plan.directory
    for name in (report.SAMPLES_FIG, report.SPECTRA_FIG, report.FID_FIG):
        image = read_png(d / name)
        assert image.shape[0] > 100 and image.shape[1] > 200 and image.std() > 0
        assert f"]({name})" in comparison.report.read_text()
    samples = read_png(d / report.SAMPLES_FIG)
    assert samples.shape[1] > 1.8 * samples.shape[0]  # two square 8x8 panels side by side


def test_resume_skips_finished_runs_and_resumes_the_unfinished_one(comparison):
    c = comparison
    assert c.killed.result is False and c.killed.steps == [2, 4]  # step 4 was logged, its checkpoint never written
    # the finished run was neither trained nor evaluated again: no file of it changed
    assert c.calls == [(c.second.name, c.second)]
    assert {f: f.stat().st_mtime_ns for f in c.first.rglob("*") if f.is_file()} == c.before
    # the unfinished one went on from its step-3 checkpoint; the lost step's lines were dropped
    assert compare.read_sessions(c.second) == [0, 3]
    records = read_metrics(c.second / "metrics.jsonl", "all")
    assert [r["step"] for r in records if "d_loss" in r] == [2, 4]
    assert [r["step"] for r in records if "eval" in r] == [2, 4]
    assert json.loads((c.second / compare.RESULT_FILE).read_text())["step"] == 4
    # it is a normal run directory
    assert (c.second / "generator.keras").is_file() and (c.second / "config.yaml").is_file()


def test_the_same_latents_go_through_every_mode(comparison):
    runs = {m.label: comparison.plan.run_dir(m, 0) for m in comparison.plan.modes}
    z, panels = compare.sample_panels(runs, n=16)
    assert np.array_equal(z, latents(range(16), 8))
    for label, run in runs.items():
        assert np.array_equal(panels[label], generate_images(load_handle(find_checkpoint(run)).model, z))
    a, b = panels.values()
    assert a.shape == b.shape == (16, 28, 28, 1) and not np.array_equal(a, b)


def test_a_changed_setting_under_the_same_name_is_refused(comparison, data_dir):
    p = comparison.plan
    other = modes.make_plan(None, MODES, budget="steps", steps=4, eval_every=2, overrides=[*p.overrides, "train.lr_g=0.001"], eval_samples=32)
    with pytest.raises(DcganError, match=r"transpose-k4-seed0 was trained with other settings \(train.lr_g\)"):
        compare.compare(other, quiet=True)


def test_a_moved_comparison_keeps_its_finished_runs(comparison, tmp_path, monkeypatch):
    p = comparison.plan
    shutil.copytree(p.directory, tmp_path / p.directory.name)  # moved elsewhere, or merged from one folder per seed
    moved = modes.make_plan(None, MODES, budget="steps", steps=4, eval_every=2, eval_samples=32,
                            overrides=[*p.overrides, f"run.dir={tmp_path}"])
    monkeypatch.setattr(trainlib, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    report = compare.compare(moved, quiet=True)
    assert report == tmp_path / p.directory.name / "report.md" and "transpose:k4" in report.read_text()


@pytest.mark.parametrize("spec, message", [
    ("transpose:k4,upsampel", r"--modes 'upsampel': unknown upsampling 'upsampel'; use transpose, upsample, subpixel"),
    ("upsample:k4", r"--modes 'upsample:k4': :k4 sets the kernel of transpose blocks and this mode has none"),
    ("transpose:huge", r"--modes 'transpose:huge': unknown option 'huge'"),
    ("subpixel:bilinear", r"--modes 'subpixel:bilinear': :bilinear is the resize of upsample blocks"),
    ("transpose,,subpixel", r"--modes: empty mode"),
    ("subpixel,subpixel", r"--modes: 'subpixel' is given twice"),
    ("upsample,upsample:nearest", r"--modes: 'upsample:nearest' builds the same generator as 'upsample'"),
    ("transpose+transpose+upsample", r"--modes 'transpose\+transpose\+upsample': model.generator.upsampling: 3 modes given "
                                     r"but image_size 28 needs 2 x2 blocks"),
    ("transpose:k12", r"--modes 'transpose:k12': model.generator.transpose_kernel_size: 12 is above the maximum 9"),
    ("transpose:blur:blur", r"--modes 'transpose:blur:blur': blur is given twice"),
])
def test_a_bad_mode_spec_is_one_clear_error(spec, message):
    with pytest.raises(DcganError, match=message):
        modes.make_plan(None, spec, budget="steps", steps=10)


def test_mode_specs_become_generator_settings():
    p = modes.make_plan(None, "transpose:k5,upsample:bilinear,subpixel,transpose+upsample:k4,transpose:blur:k4",
                        budget="steps", steps=10, seeds="3,4", overrides=["model.generator.kernel_size=3"])
    gens = [p.run_config(m, 4).model.generator for m in p.modes]
    assert [(g.upsampling, g.transpose_kernel_size, g.interpolation, g.antialias) for g in gens] == [
        ("transpose", 5, "nearest", False), ("upsample", None, "bilinear", False), ("subpixel", None, "nearest", False),
        (["transpose", "upsample"], 4, "nearest", False), ("transpose", 4, "nearest", True)]
    assert p.modes[4].label == "transpose:k4:blur"
    cfg = p.run_config(p.modes[3], 4)
    assert cfg.train.seed == 4 and cfg.train.steps == 10 and cfg.train.eval_every == 2
    assert cfg.run.name == "transpose+upsample-k4-seed4" and cfg.run.dir.endswith("compare-fashion_mnist-10steps")
    s = modes.make_plan(None, "subpixel", budget="seconds", seconds=100, eval_every=30).run_config(modes.parse_mode("subpixel"), 0)
    assert s.train.steps == modes.STEP_CAP and s.train.eval_every is None
    assert modes.make_plan(None, "subpixel", budget="seconds", seconds=100, eval_every=30).targets() == [30, 60, 90, 100]


def test_budget_arguments_are_checked(capsys):
    for kwargs, message in [
        (dict(budget="seconds"), "--budget seconds: give --seconds S"),
        (dict(budget="steps", seconds=5.0), "--seconds applies to --budget seconds"),
        (dict(budget="seconds", seconds=10.0, steps=5), "--steps applies to --budget steps"),
        (dict(budget="steps", steps=10, eval_every=2.5), "--eval-every 2.5: with --budget steps it is a whole number"),
        (dict(budget="steps", steps=10, seeds="0,0"), "--seeds '0,0': a seed is repeated"),
        (dict(budget="steps", steps=10, name="a/b"), "--name: 'a/b' must be a plain directory name"),
        (dict(budget="steps", steps=10, eval_samples=3), "--eval-samples 3: must be at least 16"),
    ]:
        with pytest.raises(DcganError, match=message.replace("(", r"\(").replace("+", r"\+")):
            modes.make_plan(None, "subpixel", **kwargs)
    assert main(["compare", "--modes", "transpose:k4,upsample:cubic", "--steps", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dcgan compare: error: --modes 'upsample:cubic': unknown option 'cubic'") and "\n" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "0.5"])
@pytest.mark.parametrize("budget", [["--steps", "10"], ["--budget", "seconds", "--seconds", "10"]])
def test_eval_every_must_be_a_finite_number_of_at_least_one(value, budget, capsys):
    err = cli_error(capsys, "compare", "--modes", "subpixel", *budget, f"--eval-every={value}")  # = lets argparse take -inf
    assert f"--eval-every {float(value):g}: with --budget" in err and "at least 1" in err


def test_wall_time_adds_up_over_sessions():
    # session 1 logged steps 10..30 and was resumed from its step-20 checkpoint (step 30 lost, already dropped);
    # session 2 started at 20; session 3 at 40 was started by `dcgan train --resume`, unknown to the ledger
    records = [{"step": 10, "wall_s": 5.0}, {"step": 20, "wall_s": 9.0}, {"step": 20, "eval": {"fid": 1.0}},
               {"step": 30, "wall_s": 20.0}, {"step": 40, "wall_s": 24.0}, {"step": 50, "wall_s": 3.0}]
    assert compare.spent_seconds(records, [0, 20]) == pytest.approx(9.0 + 24.0 + 3.0)
    # without the ledger the second session would look like the first one's continuation
    assert compare.spent_seconds(records[:5], []) == pytest.approx(24.0)
    assert compare.spent_seconds(records[:5], [0, 20]) == pytest.approx(33.0)
    assert compare.spent_seconds([], [0]) == 0.0


def test_seed_summaries_show_mean_std_and_noise():
    runs = [{k: 1.0 for k, _, _ in report.COLUMNS} for _ in range(2)]
    runs[0]["fid"], runs[1]["fid"] = 10.0, 12.0
    s = report.summarize(runs)
    assert s["fid"] == {"mean": 11.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    assert report.cell(s["fid"], "g") == "11 ± 1.4" and report.cell(s["fid"], "f3") == "11.000 ± 1.414" and report.cell(s["step"], "int") == "1"
    worse = report.summarize([{**r, "fid": r["fid"] + 1.5} for r in runs])
    far = report.summarize([{**r, "fid": r["fid"] + 20} for r in runs])
    assert report.noise_verdicts({"a": s, "b": worse, "c": far}) == {
        "a": "best", "b": "+1.5 (within noise)", "c": "+20 (beyond noise)"}


def test_seconds_budget_through_the_cli(tmp_path, data_dir, capsys):
    sets = [f for s in tiny_sets(tmp_path / "runs", data_dir) + ["train.checkpoint_every=1000", "train.sample_every=1000",
                                                                  "train.log_every=5"] for f in ("--set", s)]
    assert main(["compare", "--modes", "subpixel", "--budget", "seconds", "--seconds", "4", "--eval-every", "2",
                 "--eval-samples", "32", "--quiet", *sets]) == 0
    report_md = tmp_path / "runs" / "compare-mnist-4s" / report.REPORT_MD
    assert capsys.readouterr().out.strip() == str(report_md)
    assert "same wall-clock training time on this machine: 4 s per run" in report_md.read_text()
    run = report_md.parent / "subpixel-seed0"
    result = json.loads((run / compare.RESULT_FILE).read_text())
    # timed segments up to 2 s and 4 s spent, each followed by an untimed evaluation of its last checkpoint.
    # A segment that overshoots the next target (the first step's graph trace takes seconds on a loaded
    # machine) covers it too; otherwise the next session resumes from the evaluated checkpoint.
    curve = result["curve"]
    assert compare.read_sessions(run) == [0] + [c["step"] for c in curve[:-1]]
    for target in (2.0, 4.0):
        assert any(c["spent_s"] >= target - compare.TIME_TOLERANCE_S for c in curve)
    assert all(a["spent_s"] < b["spent_s"] and a["step"] < b["step"] for a, b in zip(curve, curve[1:]))
    assert result["wall_s"] == curve[-1]["spent_s"] >= 4.0 - compare.TIME_TOLERANCE_S and result["step"] == curve[-1]["step"]
    records = read_metrics(run / "metrics.jsonl", "all")
    assert max(r["step"] for r in records) == result["step"] and len([r for r in records if "eval" in r]) == len(curve)


def test_a_conditional_comparison_reports_the_class_metrics(tmp_path, data_dir):
    root = tmp_path / "runs"
    p = modes.make_plan(None, "transpose:k4", budget="steps", steps=2, eval_every=2, eval_samples=40,
                        overrides=[*tiny_sets(root, data_dir), "model.generator.condition=cbn",
                                   "model.discriminator.condition=projection", "train.eval_samples=20"])
    text = compare.compare(p, quiet=True).read_text()
    header, rows = table(text, "Per mode")
    assert header[-4:] == ["class accuracy ↑", "intra-FID ↓", "D loss", "G loss"] and len(rows[0]) == len(header)
    assert "classifier assigns to the class asked for (the classifier's own accuracy on the real test images: " in text
    assert "class_accuracy, intra_fid logged in each run's metrics.jsonl" in text
    run = json.loads((p.directory / report.REPORT_JSON).read_text())["modes"][0]["runs"][0]
    assert 0 <= run["class_accuracy"] <= 1 and run["intra_fid"] > 0 and 0 <= run["classifier_test_accuracy"] <= 1
    # the periodic evaluations of training logged them too, by name
    evals = [r["eval"] for r in read_metrics(p.run_dir(p.modes[0], 0) / "metrics.jsonl", "eval")]
    assert evals and all({"class_accuracy", "intra_fid"} <= set(e) for e in evals)
    # the sample panel: one class per row, as the run's own grids
    z, panels = compare.sample_panels({"transpose:k4": p.run_dir(p.modes[0], 0)}, n=16)
    gen = load_handle(find_checkpoint(p.run_dir(p.modes[0], 0)))
    rows_of_classes = np.repeat([0, 1], 8)
    assert np.array_equal(panels["transpose:k4"], generate_images(gen.model, z, rows_of_classes))


# ---------------------------------------------------------------- the comparison's own files, read back


@pytest.mark.parametrize("damage", ["{garbage", '{"starts": 5}', '{"starts": [0, "10"]}', "[0, 10]", '{"other": []}'])
def test_a_damaged_session_record_is_one_line_naming_it(tmp_path, damage):
    (tmp_path / compare.SESSIONS_FILE).write_text(damage)
    with pytest.raises(DcganError) as e:
        compare.run_seconds(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / compare.SESSIONS_FILE}: damaged (")


def test_session_record_and_result_are_read_back_bounded_and_checked(tmp_path):
    assert compare.read_sessions(tmp_path) == [] and compare.read_result(tmp_path) is None  # not started, not finished
    (tmp_path / compare.SESSIONS_FILE).write_text('{"starts": [0, 20]}\n')
    assert compare.read_sessions(tmp_path) == [0, 20]
    (tmp_path / compare.RESULT_FILE).write_text('["not", "a", "result"]')
    with pytest.raises(DcganError, match="compare_result.json: damaged"):
        compare.read_result(tmp_path)
    (tmp_path / compare.RESULT_FILE).unlink()
    (tmp_path / compare.RESULT_FILE).symlink_to("/dev/zero")
    with pytest.raises(DcganError, match="compare_result.json: a comparison's run result must be a regular file"):
        compare.read_result(tmp_path)


def test_too_many_eval_samples_are_refused_before_any_training(tmp_path, capsys):
    from dcgan.evaluation.evaluator import MAX_SAMPLES

    with pytest.raises(DcganError, match=rf"--eval-samples {MAX_SAMPLES + 1}: too many; at most {MAX_SAMPLES}"):
        modes.make_plan(None, "subpixel", budget="steps", steps=10, eval_samples=MAX_SAMPLES + 1)
    line = cli_error(capsys, "compare", "--modes", "subpixel", "--steps", "10", "--eval-samples", "100000000",
                     "--set", f"run.dir={tmp_path / 'runs'}")
    assert "--eval-samples 100000000: too many" in line
    assert not (tmp_path / "runs").exists()
