"""Distribution: which devices and machines one training run spans.

`make_strategy` turns the `distribute` config section into a tf.distribute
strategy. The train loop is written once against the Strategy API (scope, run,
reduce), so the same code runs on one device, on the GPUs of one machine, on
several machines or on a TPU. The rest is the multi-worker bookkeeping of
TensorFlow's fault-tolerance guide: which worker is the chief (the only one
that writes samples, metrics and exports) and where each worker writes its
checkpoints (the chief into the run, the others into throwaway directories).

TensorFlow is imported inside the functions: importing dcgan.cli must stay light.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

from dcgan.core.errors import ConfigError, DcganError, first_line
from dcgan.training.rundir import new_run_dir

TF_CONFIG = "TF_CONFIG"


def make_strategy(dist_cfg):
    """The strategy for a `distribute` config section. multi_worker must be made before any other TF op runs."""
    import tensorflow as tf

    if dist_cfg.strategy == "default":
        return tf.distribute.get_strategy()
    if dist_cfg.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_local_devices(dist_cfg.devices))
    if dist_cfg.strategy == "multi_worker":
        return _multi_worker()
    return _tpu(dist_cfg.tpu)


def _local_devices(wanted: list[str] | None) -> list[str] | None:
    """Check each requested device exists here (TF would fail much later, on first use, and less clearly)."""
    if wanted is None:
        return None
    import tensorflow as tf

    have = {(d.device_type, tf.DeviceSpec.from_string(d.name).device_index) for d in tf.config.list_logical_devices()}
    for name in wanted:
        try:
            spec = tf.DeviceSpec.from_string(name)
        except ValueError:
            spec = None
        if spec is None or (spec.device_type or "").upper() not in ("CPU", "GPU") or spec.device_index is None:
            raise ConfigError(f"distribute.devices: {name!r} is not a device name like /gpu:0")
        if (spec.device_type.upper(), spec.device_index) not in have:
            listed = ", ".join(f"/{kind.lower()}:{index}" for kind, index in sorted(have))
            raise ConfigError(f"distribute.devices: {name} is not a device of this machine (it has {listed})")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"distribute.devices: {wanted} names a device twice")
    return list(wanted)


def _multi_worker():
    import tensorflow as tf

    read_tf_config()  # a clear error for a missing or malformed TF_CONFIG before TF reads it
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as e:
        raise DcganError(f"cannot start MultiWorkerMirroredStrategy: {first_line(e)}") from None


def read_tf_config() -> dict:
    """The cluster description every multi-worker process gets in $TF_CONFIG."""
    raw = os.environ.get(TF_CONFIG)
    if not raw:
        raise DcganError("distribute.strategy=multi_worker needs the TF_CONFIG environment variable "
                         "(or dcgan train --workers HOST:PORT,... --worker-index I)")
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DcganError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict) or not isinstance(spec.get("task"), dict):
        raise DcganError('TF_CONFIG must look like {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}')
    task = spec["task"]
    members = spec["cluster"].get(task.get("type"))
    if not isinstance(members, list) or not isinstance(task.get("index"), int) or not 0 <= task["index"] < len(members):
        raise DcganError(f"TF_CONFIG: task {task} is not one of the cluster's tasks")
    return spec


def tf_config_from_flags(workers: str, index: int) -> str:
    """TF_CONFIG for `--workers host:port,host:port --worker-index i` (worker 0 is the chief)."""
    hosts = [h.strip() for h in workers.split(",") if h.strip()]
    for host in hosts:
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise DcganError(f"--workers: {host!r} is not HOST:PORT")
    if len(set(hosts)) != len(hosts):
        raise DcganError(f"--workers: {workers!r} lists an address twice")
    if not 0 <= index < len(hosts):
        raise DcganError(f"--worker-index: {index} is not in 0..{len(hosts) - 1} (one index per --workers address)")
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})


def _tpu(name: str | None):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        where = f" at {name}" if name else " (set distribute.tpu, e.g. local on a TPU VM, or $TPU_NAME)"
        raise DcganError(f"distribute.strategy=tpu: no TPU found{where}: {first_line(e)}") from None
    return tf.distribute.TPUStrategy(resolver)


def check_strategy(cfg, strategy) -> None:
    """What a config needs from the strategy it trains under."""
    import tensorflow as tf

    n = strategy.num_replicas_in_sync
    # data.batch_size is the global batch: every replica must get an equal share of it
    if cfg.data.batch_size % n:
        raise ConfigError(f"data.batch_size: {cfg.data.batch_size} is not divisible by the {n} replicas of this strategy; "
                          f"use a multiple of {n}")
    micro = cfg.train.micro_batch
    if micro is not None and (cfg.data.batch_size // n) % micro:
        raise ConfigError(f"train.micro_batch: {micro} does not divide each of the {n} replicas' "
                          f"{cfg.data.batch_size // n} images into equal passes; use a divisor of {cfg.data.batch_size // n}")
    # XLA compiles the step for one device; a TPU compiles every step with XLA anyway
    if cfg.train.jit_compile and n > 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
        raise ConfigError(f"train.jit_compile: XLA compiles the whole step for one device, not {n} replicas; "
                          "set train.jit_compile=false")


def _task(strategy) -> tuple[str | None, int | None, dict]:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, None, {}
    return resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict()


def is_chief(strategy) -> bool:
    """The chief: an explicit 'chief' task, else worker 0; a single process is its own chief."""
    task_type, task_id, cluster = _task(strategy)
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and "chief" not in cluster)


def is_multi_worker(strategy) -> bool:
    _, _, cluster = _task(strategy)
    return sum(len(tasks) for kind, tasks in cluster.items() if kind in ("chief", "worker")) > 1


def new_shared_run_dir(cfg, strategy) -> Path:
    """A new run's directory. Workers can't agree on a generated name, so multi-worker runs need run.name."""
    if not is_multi_worker(strategy):
        return new_run_dir(cfg)
    if cfg.run.name is None:
        raise ConfigError("run.name: a multi-worker run needs an explicit run.name so that every worker uses the same run directory")
    return new_run_dir(cfg) if is_chief(strategy) else Path(cfg.run.dir) / cfg.run.name


def worker_checkpoint_dir(checkpoint_dir: Path, strategy) -> Path:
    """Where this worker writes checkpoints: the real directory for the chief, a per-worker one for the others.

    TensorFlow's fault-tolerance guide has every worker save (a save may need
    collectives, e.g. for sync-on-read variables) and keeps only the chief's files:
    two writers in one directory would clobber each other.
    """
    if is_chief(strategy):
        return checkpoint_dir
    task_type, task_id, _ = _task(strategy)
    return checkpoint_dir / f"{task_type}temp_{task_id}"


def save_checkpoint(manager, step: int, strategy) -> None:
    """Save on every worker; a non-chief deletes its copy right away (a restart resumes from the chief's)."""
    manager.save(checkpoint_number=step)
    if not is_chief(strategy):
        shutil.rmtree(manager.directory, ignore_errors=True)


def check_same_step(strategy, step: int) -> None:
    """After a restore every worker must hold the chief's state; a worker that found no checkpoint would drift silently."""
    if not is_multi_worker(strategy):
        return
    import tensorflow as tf

    steps = _collective(strategy, "gather")(tf.constant([step], tf.int64)).numpy()
    if steps.min() != steps.max():
        raise DcganError(f"the workers restored different steps ({steps.min()} to {steps.max()}): every worker must see "
                         "the chief's run directory (put run.dir on a shared filesystem)")


def distribute_dataset(strategy, dataset):
    """Split each global batch across the replicas (batch axis first): dcgan.data.batching.distribute_in_memory."""
    from dcgan.data.batching import distribute_in_memory

    return distribute_in_memory(strategy, dataset)


def any_worker(strategy, flag: bool) -> bool:
    """True when the flag is set on any worker: a decision to stop must be the same everywhere (collectives would hang)."""
    if not is_multi_worker(strategy):
        return flag
    import tensorflow as tf

    return float(_collective(strategy, "sum")(tf.constant(float(flag)))) > 0


@functools.cache
def _collective(strategy, kind: str):
    """A compiled all-workers sum or gather of one value (eager collectives are slow; traced once per strategy)."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def run(value):
        per_replica = strategy.run(tf.identity, args=(value,))
        if kind == "gather":
            return strategy.gather(per_replica, axis=0)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return run
