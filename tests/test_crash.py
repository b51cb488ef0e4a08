"""The kill test's fast variant (scripts/crash_test.py), and resuming a run killed before its first checkpoint."""

import importlib.util
from pathlib import Path

import numpy as np

from dcgan.training.rundir import read_metrics, resume_config, write_config
from dcgan.training.checkpoints import CHECKPOINT_DIR
from dcgan.training.gan import GAN
from dcgan.training.restoring import restore
from dcgan.training.loop import train

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "crash_test.py"


def load_script():
    spec = importlib.util.spec_from_file_location("crash_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fast_kill_test_resumes_to_the_uninterrupted_weights(tmp_path, capsys):
    crash = load_script()
    # seed 0: a kill inside the save of ckpt-10, then one 7 steps after the resume; the timeout bounds a hang
    code = crash.main(["--kills", "2", "--steps", "30", "--kinds", "checkpoint,training", "--seed", "0",
                       "--workdir", str(tmp_path), "--timeout", "240"])
    out = capsys.readouterr()
    figures = dict(kv.split("=", 1) for kv in out.out.strip().splitlines()[-1].split())
    assert code == 0, out.err[-3000:]
    assert figures["kills"] == "2" and figures["resumes"] == "2"
    for key in ("failed_resumes", "backward", "invalid_metrics", "metric_mismatches", "mismatches"):
        assert figures[key] == "0", key
    assert crash._children and all(p.poll() is not None for p in crash._children)  # nothing left running
    steps = [r["step"] for r in read_metrics(tmp_path / "runs" / "crashed" / "metrics.jsonl", "all")]
    assert steps == list(range(1, 31))  # every step logged exactly once despite the kills


def test_run_killed_before_its_first_checkpoint_resumes_from_step_0(tiny_config):
    cfg = tiny_config("run.name=early", "train.steps=3")
    run = Path(cfg.run.dir) / "early"
    # what kills before and during the first save leave: the config, logged steps (the last one
    # torn), a half-merged checkpoint, a shard folder with a half-written shard, temporaries of
    # atomic writes, but no checkpoint state file
    write_config(run, cfg)
    (run / "metrics.jsonl").write_text('{"step": 2, "d_loss": 1.0}\n{"step": 3, "d_lo')
    ckpt = run / CHECKPOINT_DIR
    (ckpt / "ckpt-3_temp").mkdir(parents=True)
    (ckpt / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate123").write_bytes(b"\0" * 10)
    (ckpt / "ckpt-3.index").write_bytes(b"half an index")
    (ckpt / "checkpoint.tmp0123abcd").write_text("model_checkpoint_path")
    (run / "samples").mkdir()
    leftovers = [run / ".metrics.jsonl.x1y2.tmp", run / ".generator.tmp.keras", run / "samples" / ".step_0000003.png.z3.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    train(resume_config(run), resume_dir=run, quiet=True)

    records = read_metrics(run / "metrics.jsonl", "all")
    assert [r["step"] for r in records] == [2, 3] and records[0]["d_loss"] != 1.0  # step 2 trained again
    assert (run / "metrics.jsonl").read_text().endswith("}\n")
    # a later save never removes a shard folder holding a stale file: resuming does
    assert not (ckpt / "ckpt-3_temp").exists() and not list(ckpt.glob("checkpoint.tmp*"))
    assert not any(p.exists() for p in leftovers)
    gan = GAN(cfg)
    restore(gan, str(ckpt / "ckpt-3"))  # the half-written checkpoint was replaced by a whole one
    assert int(gan.step.numpy()) == 3
    assert all(np.isfinite(w).all() for w in gan.generator.get_weights())
