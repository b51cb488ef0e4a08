"""Helper for tests/test_distribute.py, run in its own process.

Two logical CPU devices can only be configured before TensorFlow initialises its
devices, which the test process has long done. For each case (config overrides
and the RUNS to compare) this trains the same tiny config under each of its strategies for a
few steps (the train loop's own step and distributed dataset) and prints every step's losses
as one JSON line. The cases share one process: TensorFlow starts once.

usage: python tests/mirrored_run.py STEPS '{"case": {"sets": ["KEY=VALUE", ...], "runs": ["default", ...]}, ...}'
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from dcgan.data import pipeline as datalib  # noqa: E402
from dcgan.core.config import load_config  # noqa: E402
from dcgan.core.errors import ConfigError  # noqa: E402
from dcgan.training.distribute import distribute_dataset, make_strategy  # noqa: E402
from dcgan.training.gan import GAN  # noqa: E402

MIRRORED = ["distribute.strategy=mirrored", "distribute.devices=[/cpu:0, /cpu:1]"]
RUNS = {
    "default": ["distribute.strategy=default"],
    "mirrored": MIRRORED,
    "per_replica_bn": [*MIRRORED, "distribute.sync_batchnorm=false"],
    "mirrored_micro": [*MIRRORED, "train.micro_batch=4"],
}


def losses(cfg, strategy, steps: int) -> list[dict]:
    gan = GAN(cfg, strategy)
    images = datalib.load_images(cfg.data)
    dataset = datalib.make_dataset(images, cfg.data.batch_size, cfg.train.seed, group=cfg.train.d_steps)
    batches = iter(distribute_dataset(strategy, dataset))
    return [{k: float(v) for k, v in gan.train_step(next(batches)).items()} for _ in range(steps)]


def main() -> None:
    steps, cases = int(sys.argv[1]), json.loads(sys.argv[2])
    out, strategies = {}, {}
    for case, spec in cases.items():
        overrides, out[case] = spec["sets"], {}
        for name in spec["runs"]:
            sets = RUNS[name]
            cfg = load_config(None, [*overrides, *sets])
            # one strategy object per kind: a second MirroredStrategy over the same devices starts its
            # collective keys where the first one did, and TensorFlow rejects the clash
            if cfg.distribute.strategy not in strategies:
                strategies[cfg.distribute.strategy] = make_strategy(cfg.distribute)
            strategy = strategies[cfg.distribute.strategy]
            out[case][name] = {"replicas": strategy.num_replicas_in_sync, "losses": losses(cfg, strategy, steps)}
        # configs that two replicas can't run: a global batch they can't share equally, a one-device XLA step
        for name, bad in (("odd_batch_error", ["data.batch_size=15"]), ("jit_error", ["train.jit_compile=true"]),
                          ("micro_error", ["data.batch_size=24", "train.micro_batch=8"])):
            try:
                GAN(load_config(None, [*overrides, *MIRRORED, *bad]), strategies["mirrored"])
            except ConfigError as e:
                out[case][name] = str(e)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
