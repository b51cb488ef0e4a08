import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dcgan.core.config import ConfigError, load_config
from dcgan.training.distribute import check_strategy, is_chief, make_strategy, read_tf_config, tf_config_from_flags
from dcgan.core.errors import DcganError
from dcgan.training.rundir import read_metrics
from dcgan.training.checkpoints import CHECKPOINT_DIR
from dcgan.training.gan import GAN
from dcgan.training.restoring import restore
from dcgan.training.loop import train
from helpers import TINY, cli_error, write_mnist

HERE = Path(__file__).parent
METRICS = ("d_loss", "g_loss", "d_real", "d_fake")
# a high learning rate moves the tiny models fast, so a wrong split of data, noise or statistics shows in the losses
FAST = ("train.lr_d=0.005", "train.lr_g=0.005", "train.ema_decay=0.5", "train.log_every=1")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# augmentation with ADA (p moved every step, by up to 0.5) and lazy R1; R1 wants a D without batch norm
AUGMENTED = ("model.discriminator.norm=none", "train.augment=translation,cutout,color", "train.ada_target=0.3",
             "train.ada_interval=1", "train.ada_speed=32", "train.r1_gamma=1", "train.r1_every=2")


# micro-batches of 4 on each of 2 replicas (2 passes each); without BatchNorm they add up to the one-pass step
MICRO = ("model.generator.norm=none", "model.discriminator.norm=none")
CASES = {"plain": ("model.discriminator.norm=batch",), "augmented": AUGMENTED, "micro": MICRO}
RUNS = {"plain": ("default", "mirrored", "per_replica_bn"), "augmented": ("default", "mirrored"),
        "micro": ("default", "mirrored_micro")}


@pytest.fixture(scope="module")
def mirrored_runs(tmp_path_factory):
    """Every case trained under each strategy, in one process of its own: logical devices must be configured
    before TensorFlow initialises, long done here."""
    mnist = write_mnist(tmp_path_factory.mktemp("mirrored") / "mnist")
    # per-replica BatchNorm only where D has BatchNorm (the augmented D has none)
    cases = {case: {"sets": ["data.name=mnist", f"data.path={mnist}", *TINY, *FAST, *extra],
                    "runs": list(RUNS[case])}
             for case, extra in CASES.items()}
    proc = subprocess.run([sys.executable, str(HERE / "mirrored_run.py"), "3", json.dumps(cases)],
                          capture_output=True, text=True, timeout=300, env=_env())
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("case", list(CASES))
def test_mirrored_over_two_devices_matches_one_device(mirrored_runs, case):
    out, extra, runs = mirrored_runs[case], CASES[case], RUNS[case]
    assert [out[k]["replicas"] for k in runs] == [1, 2, 2][: len(runs)]

    metrics = (*METRICS, "d_real_sign", *(("ada_p",) if extra == AUGMENTED else ()))

    def losses(name):
        return np.array([[step[m] for m in metrics] for step in out[name]["losses"]])

    # same global batch, same seed: the same numbers up to summation order
    np.testing.assert_allclose(losses(runs[1]), losses("default"), rtol=0, atol=1e-4)
    # per-replica BatchNorm normalises each half batch by its own statistics: a different model
    if case == "plain":
        assert np.abs(losses("per_replica_bn") - losses("default")).max() > 1e-3
    elif case == "augmented":  # p moved, so gated augmentation was part of what matched
        assert len({step["ada_p"] for step in out["default"]["losses"]}) > 1
    assert "data.batch_size: 15 is not divisible by the 2 replicas" in out["odd_batch_error"]
    assert "train.jit_compile: XLA compiles the whole step for one device, not 2 replicas" in out["jit_error"]
    assert "train.micro_batch: 8 does not divide each of the 2 replicas' 12 images" in out["micro_error"]


def test_multi_worker_resumes_from_the_chiefs_checkpoints(tiny_config):
    """One process trains steps 1-2; two workers (a restart on another replica count) resume and train 3-4."""
    common = (*FAST, "train.sample_every=2", "train.checkpoint_every=1", "train.keep_checkpoints=5")
    run = train(tiny_config(*common, "run.name=mw", "train.steps=2"), quiet=True)
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    procs = []
    try:
        for index in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dcgan", "train", "-q", "--resume", str(run), "--set", "train.steps=4",
                 "--set", "train.time_budget_s=3600", "--workers", workers, "--worker-index", str(index)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()))
        outputs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
        assert stdout.strip().splitlines()[-1] == str(run)  # both workers trained the same run

    ckpt = run / CHECKPOINT_DIR
    assert sorted(p.name for p in ckpt.iterdir() if p.suffix == ".index") == [f"ckpt-{i}.index" for i in (1, 2, 3, 4)]
    assert not [p for p in ckpt.iterdir() if p.is_dir()]  # worker 1's throwaway checkpoints are gone
    # only the chief logged: each step once, one event file per training process that was a chief
    records = read_metrics(run / "metrics.jsonl", "all")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2
    assert (run / "samples" / "step_0000004.png").is_file() and (run / "generator.keras").is_file()

    # two workers compute what one process computes
    ref = train(tiny_config(*common, "run.name=ref", "train.steps=4"), quiet=True)
    ref_records = read_metrics(ref / "metrics.jsonl", "all")
    np.testing.assert_allclose([[r[m] for m in METRICS] for r in records], [[r[m] for m in METRICS] for r in ref_records],
                               rtol=0, atol=1e-4)
    # and the chief's checkpoint restores in one process
    a, b = GAN(tiny_config(*common)), GAN(tiny_config(*common))
    restore(a, str(ckpt / "ckpt-4"))
    restore(b, str(ref / CHECKPOINT_DIR / "ckpt-4"))
    assert int(a.step.numpy()) == 4
    for x, y in zip(a.generator.get_weights(), b.generator.get_weights()):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-4)


def test_default_strategy_is_its_own_chief(tiny_config):
    strategy = make_strategy(tiny_config().distribute)
    assert strategy is tf.distribute.get_strategy()
    assert is_chief(strategy) and strategy.num_replicas_in_sync == 1
    check_strategy(tiny_config("data.batch_size=15", "train.jit_compile=true"), strategy)  # one replica takes anything


def test_devices_must_exist_and_be_a_list(tiny_config):
    with pytest.raises(ConfigError, match=r"distribute.devices: /gpu:7 is not a device of this machine \(it has /cpu:0"):
        make_strategy(tiny_config("distribute.strategy=mirrored", "distribute.devices=[/gpu:7]").distribute)
    with pytest.raises(ConfigError, match="distribute.devices: 'cpu zero' is not a device name"):
        make_strategy(tiny_config("distribute.strategy=mirrored", "distribute.devices=[cpu zero]").distribute)
    with pytest.raises(ConfigError, match="distribute.devices: expected a list, got 3"):
        load_config(None, ["distribute.strategy=mirrored", "distribute.devices=3"])
    with pytest.raises(ConfigError, match="distribute.devices: only distribute.strategy=mirrored takes a device list"):
        load_config(None, ["distribute.devices=[/gpu:0]"])
    cfg = load_config(None, ["distribute.strategy=mirrored", "distribute.devices=/gpu:0,/gpu:1"])
    assert cfg.distribute.devices == ["/gpu:0", "/gpu:1"]


def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tiny_config):
    cfg = tiny_config("distribute.strategy=multi_worker")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DcganError, match="needs the TF_CONFIG environment variable"):
        make_strategy(cfg.distribute)
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(DcganError, match="TF_CONFIG is not valid JSON"):
        make_strategy(cfg.distribute)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}))
    with pytest.raises(DcganError, match="is not one of the cluster's tasks"):
        make_strategy(cfg.distribute)


def test_worker_flags_build_tf_config(monkeypatch):
    spec = json.loads(tf_config_from_flags("10.0.0.1:2222, 10.0.0.2:2222", 1))
    assert spec == {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(spec))
    assert read_tf_config() == spec
    with pytest.raises(DcganError, match="--worker-index: 2 is not in 0..1"):
        tf_config_from_flags("a:1,b:2", 2)
    with pytest.raises(DcganError, match="--workers: 'hostonly' is not HOST:PORT"):
        tf_config_from_flags("hostonly", 0)


def test_cli_rejects_half_given_worker_flags(capsys):
    assert cli_error(capsys, "train", "--workers", "127.0.0.1:1,127.0.0.1:2") == (
        "dcgan train: error: --workers and --worker-index go together")
    err = cli_error(capsys, "train", "--workers", "127.0.0.1:1", "--worker-index", "0", "--set", "distribute.strategy=mirrored")
    assert "--workers needs distribute.strategy=multi_worker, not mirrored" in err


def test_tpu_without_a_tpu_is_a_clear_error(monkeypatch, tiny_config):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(DcganError, match="distribute.strategy=tpu: no TPU found"):
        make_strategy(tiny_config("distribute.strategy=tpu").distribute)
