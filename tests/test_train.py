import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dcgan.training.checkpoints import CHECKPOINT_DIR
from dcgan.core.errors import DcganError
from dcgan.training.gan import GAN, run_gan
from dcgan.training.restoring import checkpoint_manager, restore
from dcgan.training.rundir import read_metrics, resume_config
from dcgan.training.loop import train
from helpers import TINY, cli_error, event_steps


def test_end_to_end_run_writes_every_artifact(tiny_run):
    run, cfg = tiny_run  # train(cfg) of a tiny config with an EMA copy, trained once for the session
    for name in ("config.yaml", "metrics.jsonl", "losses.png", "progress.gif", "generator.keras"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert {p.name for p in (run / CHECKPOINT_DIR).glob("*.index")} == {"ckpt-3.index", "ckpt-6.index"}
    records = read_metrics(run / "metrics.jsonl", "all")
    assert [r["step"] for r in records] == [2, 4, 6]
    for key in ("epoch", "d_loss", "g_loss", "d_real", "d_fake", "d_real_sign", "images_per_s", "wall_s"):
        assert np.isfinite(records[-1][key]), key
    assert -1 <= records[-1]["d_real_sign"] <= 1 and "ada_p" not in records[-1]  # r_t always; p only with ADA
    assert "d_real_sign" in {tag for tag, _ in event_steps(run / "tb", tags=True)}
    assert resume_config(run) == cfg  # the resolved config round-trips through config.yaml


# augmentation, ADA (p moving fast, adjusted every 2 steps: the resume at step 3 is mid-interval) and lazy R1
AUGMENTED = ("train.augment=translation,cutout,color", "train.ada_target=0.6", "train.ada_interval=2",
             "train.ada_speed=200", "train.r1_gamma=1", "train.r1_every=2")


@pytest.mark.parametrize("extra", [(), AUGMENTED, (*AUGMENTED, "train.spectral_weight=1")],
                         ids=["plain", "augmented", "augmented-spectral"])
def test_step_is_traced_once(tiny_config, monkeypatch, extra):
    import dcgan.training.loop as trainlib

    cfg = tiny_config("train.d_steps=2", "train.ema_decay=0.5", *extra)
    gan_holder = {}

    class Keep(GAN):  # the real GAN, remembered so that its tf.function can say how often it traced
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            gan_holder["gan"] = self

    monkeypatch.setattr(trainlib, "GAN", Keep)
    run = train(cfg, quiet=True)
    assert gan_holder["gan"].train_step.experimental_get_tracing_count() == 1
    spectral = [r.get("spectral") for r in read_metrics(run / "metrics.jsonl", "train")]
    assert all(np.isfinite(v) and v > 0 for v in spectral) if cfg.train.spectral_weight else spectral == [None] * len(spectral)
    assert ("spectral" in {tag for tag, _ in event_steps(run / "tb", tags=True)}) == bool(cfg.train.spectral_weight)


CONDITIONAL = ("model.generator.condition=cbn", "model.discriminator.condition=projection")


@pytest.mark.parametrize("extra", [(), AUGMENTED, CONDITIONAL], ids=["plain", "augmented", "conditional"])
def test_resume_matches_uninterrupted_run(tiny_config, extra):
    common = ("model.discriminator.dropout=0.3", "train.ema_decay=0.8", *extra)
    full = train(tiny_config(*common, "run.name=full"), quiet=True)
    part_cfg = tiny_config(*common, "run.name=part", "train.steps=3")
    part = train(part_cfg, quiet=True)
    resumed_cfg = resume_config(part, overrides=["train.steps=6"])
    train(resumed_cfg, resume_dir=part, quiet=True)
    a, b = run_gan(full), run_gan(part)
    restore(a, str(full / CHECKPOINT_DIR / "ckpt-6"))
    restore(b, str(part / CHECKPOINT_DIR / "ckpt-6"))
    for x, y in zip(a.state_arrays(), b.state_arrays()):
        np.testing.assert_array_equal(x, y)
    # the log holds each step once, in order (the interrupted run also logged its last step, 3)
    steps = [r["step"] for r in read_metrics(part / "metrics.jsonl", "all")]
    assert steps == [2, 3, 4, 6]
    if extra == AUGMENTED:  # p moved, and each record says where it was
        records = read_metrics(full / "metrics.jsonl", "train")
        assert float(a.ada.p.numpy()) == records[-1]["ada_p"] and any(r["ada_p"] > 0 for r in records)
        assert [r["ada_p"] for r in read_metrics(part / "metrics.jsonl", "train")][-1] == records[-1]["ada_p"]
        assert sorted(step for tag, step in event_steps(full / "tb", tags=True) if tag == "ada_p") == [2, 4, 6]


def test_resume_after_a_kill_logs_each_step_once(tiny_config):
    cfg = tiny_config("train.steps=4", "train.checkpoint_every=3")
    run = train(cfg, quiet=True)
    # as if killed after logging step 4 but before its checkpoint landed
    for path in (run / CHECKPOINT_DIR).glob("ckpt-4.*"):
        path.unlink()
    state = run / CHECKPOINT_DIR / "checkpoint"
    state.write_text(state.read_text().replace("ckpt-4", "ckpt-3"))
    train(resume_config(run, overrides=["train.steps=6"]), resume_dir=run, quiet=True)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl", "train") if "d_loss" in r] == [2, 4, 6]
    tagged = event_steps(run / "tb", tags=True)
    assert sorted(step for tag, step in tagged if tag == "d_loss") == [2, 4, 6]
    assert sorted(step for tag, step in tagged if tag == "samples") == [3, 6]
    assert len(set(tagged)) == len(tagged)  # TensorBoard draws no step twice


def test_same_seed_same_weights_other_seed_differs(tiny_config):
    runs = [train(tiny_config(f"run.name=r{i}", f"train.seed={s}", "train.steps=2"), quiet=True) for i, s in enumerate((1, 1, 2))]
    ws = []
    for run, s in zip(runs, (1, 1, 2)):
        g = GAN(tiny_config(f"train.seed={s}"))
        restore(g, str(run / CHECKPOINT_DIR / "ckpt-2"))
        ws.append(g.state_arrays())
    assert all(np.array_equal(x, y) for x, y in zip(ws[0], ws[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(ws[0], ws[2]) if x.shape == y.shape)


def test_resume_refuses_changed_model(tiny_run):
    with pytest.raises(DcganError, match="model.generator.upsampling"):
        resume_config(tiny_run[0], overrides=["model.generator.upsampling=transpose"])


@pytest.mark.parametrize("loss", ["bce", "hinge", "lsgan"])
def test_losses_train_finite(tiny_config, loss):
    run = train(tiny_config(f"train.loss={loss}", "train.steps=2", "train.label_smoothing=0.1"), quiet=True)
    assert all(np.isfinite(r["g_loss"]) for r in read_metrics(run / "metrics.jsonl", "train"))


def test_anti_aliased_blocks_pooled_d_and_minibatch_std_train_and_their_generator_loads_safely(tiny_config):
    import keras

    run = train(tiny_config("train.steps=2", "model.generator.upsampling=transpose", "model.generator.antialias=true,false",
                            "model.discriminator.downsampling=blurpool", "model.discriminator.minibatch_std=true"), quiet=True)
    assert all(np.isfinite(r["d_loss"]) for r in read_metrics(run / "metrics.jsonl", "train"))
    model = keras.saving.load_model(run / "generator.keras", safe_mode=True)
    assert [layer.name for layer in model.layers if layer.name.endswith("_blur")] == ["block0_blur"]


def _poison_latest_checkpoint(run, cfg):
    """Overwrite the run's latest checkpoint with one whose discriminator has a NaN weight."""
    gan = GAN(cfg)
    manager = checkpoint_manager(gan, run)
    restore(gan, manager.latest_checkpoint)
    kernel = gan.discriminator.get_layer("logit").kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    manager.save(checkpoint_number=int(gan.step.numpy()))
    return manager.latest_checkpoint


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_run, tmp_path):
    run, cfg = shutil.copytree(tiny_run[0], tmp_path / "run"), tiny_run[1]  # at step 6
    poisoned = _poison_latest_checkpoint(run, cfg)
    with pytest.raises(DcganError, match=r"non-finite loss at step 7; training stopped \(the last good checkpoint ckpt-6"):
        train(resume_config(run, overrides=["train.steps=9"]), resume_dir=run, quiet=True)
    assert tf.train.latest_checkpoint(str(run / CHECKPOINT_DIR)) == poisoned  # nothing newer was saved


def test_skip_step_discards_non_finite_updates(tiny_run, tmp_path):
    # the step itself (weights kept, the count, the first bad step) is tested in test_gan.py; here the loop goes on and logs it
    run, cfg = shutil.copytree(tiny_run[0], tmp_path / "run"), tiny_run[1]  # at step 6
    _poison_latest_checkpoint(run, cfg)
    train(resume_config(run, overrides=["train.steps=9", "train.on_nan=skip_step"]), resume_dir=run, quiet=True)
    gan = GAN(cfg)
    restore(gan, str(run / CHECKPOINT_DIR / "ckpt-9"))
    assert int(gan.skipped_steps.numpy()) == 3
    assert all(np.isfinite(w).all() for w in gan.generator.get_weights())
    assert read_metrics(run / "metrics.jsonl", "train")[-1]["skipped_steps"] == 3


@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
def test_mixed_precision_trains_finite_and_restores_policy(tiny_config, policy):
    import keras

    before = keras.mixed_precision.dtype_policy().name
    cfg = tiny_config(f"train.mixed_precision={policy}", "train.steps=2", "train.ema_decay=0.5")
    gan = GAN(cfg)
    assert keras.mixed_precision.dtype_policy().name == before
    assert gan.generator.get_layer("block0_conv").compute_dtype == policy
    assert gan.generator.output.dtype == "float32" and gan.discriminator.output.dtype == "float32"
    assert all(v.dtype == "float32" for v in gan.generator.trainable_variables)
    if policy == "float16":
        assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    run = train(cfg, quiet=True)
    records = read_metrics(run / "metrics.jsonl", "all")
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records)
    assert keras.mixed_precision.dtype_policy().name == before


def test_xla_step_matches_shapes_and_is_finite(tiny_config):
    run = train(tiny_config("train.jit_compile=true", "train.steps=2"), quiet=True)
    assert all(np.isfinite(r["g_loss"]) for r in read_metrics(run / "metrics.jsonl", "train"))


def test_time_budget_stops_cleanly_with_final_artifacts_and_the_bar_counts_the_budget(tiny_config, capsys):
    run = train(tiny_config("train.steps=100000", "train.time_budget_s=1", "train.checkpoint_every=100000",
                            "train.sample_every=100000", "train.log_every=100000"))
    last = read_metrics(run / "metrics.jsonl", "all")[-1]["step"]
    assert 1 <= last < 100000
    bar = capsys.readouterr().err.split("\r")[-1]  # the bar's last state
    assert "1/1 s [" in bar and f"step={last}/100000" in bar and "100000 [" not in bar
    assert tf.train.latest_checkpoint(str(run / CHECKPOINT_DIR)).endswith(f"ckpt-{last}")
    assert (run / "samples" / f"step_{last:07d}.png").is_file() and (run / "generator.keras").is_file()


# ---------------------------------------------------------------- who may write a run, and when a resume is refused

HOLD_LOCK = """
import sys, time
from dcgan.core.files import lock_run
lock = lock_run(sys.argv[1], "dcgan train")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_while_the_first_runs_and_a_killed_one_leaves_no_lock(tiny_run, tmp_path, capsys):
    import subprocess
    import sys

    from dcgan.core.files import lock_run

    run = shutil.copytree(tiny_run[0], tmp_path / "run")  # at step 6
    before = (run / "config.yaml").read_text(), (run / "metrics.jsonl").read_text()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for steps in (9, 2):  # more steps, and a late resume with nothing to do: neither may touch the run
            err = cli_error(capsys, "train", "--resume", run, "--quiet", "--set", f"train.steps={steps}")
            assert f"is in use by process {holder.pid} (dcgan train" in err
        assert ((run / "config.yaml").read_text(), (run / "metrics.jsonl").read_text()) == before
    finally:
        holder.kill()
        holder.wait()
    with lock_run(run, "dcgan train"):  # the kernel dropped the dead holder's lock
        pass


def test_resume_without_checkpoints_is_refused_when_the_run_has_history(tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run[0], tmp_path / "run")
    metrics, events = (run / "metrics.jsonl").read_bytes(), sorted((run / "tb").iterdir())
    shutil.rmtree(run / CHECKPOINT_DIR)
    err = cli_error(capsys, "train", "--resume", run, "--quiet")
    assert "logged steps up to 6 but" in err and "holds no checkpoint" in err
    (run / CHECKPOINT_DIR).write_text("a file where the folder was")
    assert "checkpoints is not a directory" in cli_error(capsys, "train", "--resume", run, "--quiet")
    assert (run / "metrics.jsonl").read_bytes() == metrics and sorted((run / "tb").iterdir()) == events


def test_resume_of_a_run_that_never_got_past_step_0_starts_it(tiny_config):
    from dcgan.training.rundir import write_config

    cfg = tiny_config("train.steps=2", "run.name=fresh")
    run = Path(cfg.run.dir) / "fresh"
    write_config(run, cfg)  # killed before its first checkpoint, having logged nothing
    assert train(resume_config(run), resume_dir=run, quiet=True) == run
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl", "all")] == [2]


def test_run_dir_or_name_that_is_a_file_is_one_line(tiny_config, tmp_path, capsys):
    cfg = tiny_config()
    sets = [f"--set={s}" for s in (f"data.path={cfg.data.path}", "data.name=mnist", *TINY)]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert "is a file, not a directory" in cli_error(capsys, "train", *sets, f"--set=run.dir={blocker}")
    assert "is an existing file" in cli_error(capsys, "train", *sets, f"--set=run.dir={tmp_path}", "--set=run.name=a-file")
    assert blocker.read_text() == "x"


def test_a_disk_that_refuses_a_checkpoint_stops_in_one_line(tiny_config, monkeypatch):
    import dcgan.training.loop as trainlib

    def full(manager, step, strategy):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device\nmore TensorFlow detail")

    monkeypatch.setattr(trainlib, "save_checkpoint", full)
    with pytest.raises(DcganError, match=r"^cannot write the checkpoint of step 3 in .*: No space left on device$"):
        train(tiny_config("train.steps=3"), quiet=True)


def test_a_conditional_run_saves_its_classes_and_draws_one_grid_row_per_class(tiny_config):
    from dcgan.core import viz
    from dcgan.data.mnist import CLASS_NAMES
    from dcgan.training.rundir import read_classes

    cfg = tiny_config(*CONDITIONAL, "train.sample_grid=3", "train.steps=3")
    run = train(cfg, quiet=True)
    assert run.name == "mnist-upsample-conditional"  # beside, not numbered after, an unconditional run of the data
    assert read_classes(run, cfg) == CLASS_NAMES["mnist"]
    grid = viz.read_png(run / "samples" / "step_0000003.png")
    gan = run_gan(run)
    restore(gan, str(run / CHECKPOINT_DIR / "ckpt-3"))
    from dcgan.models.sampling import generate_images

    images = generate_images(gan.sampling_generator(), gan.fixed_noise.numpy(), gan.fixed_labels)
    assert len(images) == 30  # 10 classes x 3 latents
    np.testing.assert_array_equal(grid, viz.upscale(viz.image_grid(images, 10, 3), 2))
    rows = images.reshape(10, 3, *images.shape[1:])
    assert all(not np.array_equal(rows[0], row) for row in rows[1:])  # the same latents, another class


def test_resume_with_other_classes_is_refused_in_one_line(tiny_config, capsys):
    cfg = tiny_config(*CONDITIONAL, "train.steps=3")
    run = train(cfg, quiet=True)
    (run / "classes.json").write_text('{"classes": ["a", "b"]}')
    with pytest.raises(DcganError, match=r"its classes differ from the data's \(class 0 is .a. in the run and .0. in the data\)"):
        train(resume_config(run, overrides=["train.steps=6"]), resume_dir=run, quiet=True)
