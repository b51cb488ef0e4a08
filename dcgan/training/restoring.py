"""A GAN's state in and out: the run's checkpoint manager, restoring a checkpoint strictly, the generator as .keras.

Written against the GAN's checkpointed objects (`gan.checkpoint`, `gan.checkpointed`), so it needs nothing of
dcgan.training.gan.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import atomic_path
from dcgan.training.checkpoints import CHECKPOINT_DIR, PREFIX, STATE_FILE

# checkpoint entries a run may lack when it was written before the feature existed or with it off: restored
# from what this GAN starts with (sample_from_ema: the EMA copy samples)
OPTIONAL_STATE = ("sample_from_ema", "augment_rng", "ada")


def checkpoint_manager(gan, run_dir: Path, directory: Path | None = None, max_to_keep: int | None = None,
                       ) -> tf.train.CheckpointManager:
    """The run's checkpoints (run_dir/checkpoints), or those in `directory` when given.

    A state file that cannot be parsed is refused: TensorFlow would raise a bare UnicodeDecodeError
    or ValueError, or (for text that parses to nothing) act as if there were no checkpoint at all
    and retrain from step 0 over the run's checkpoints and logs.
    """
    folder = Path(directory or run_dir / CHECKPOINT_DIR)
    try:
        manager = tf.train.CheckpointManager(
            gan.checkpoint, str(folder), max_to_keep=max_to_keep or gan.cfg.train.keep_checkpoints,
            step_counter=gan.step, checkpoint_name=PREFIX,
        )
    except (ValueError, tf.errors.OpError):  # UnicodeDecodeError is a ValueError
        manager = None
    if manager is None or ((folder / STATE_FILE).exists() and not manager.latest_checkpoint):
        raise DcganError(f"cannot resume {run_dir}: the checkpoint state file {folder / STATE_FILE} is unreadable; "
                         f"repair it or move {folder} away to start over")
    return manager


def restore(gan, path: str) -> None:
    """Restore a checkpoint, insisting that every variable of the run is in it.

    Exceptions (OPTIONAL_STATE): a checkpoint written before runs chose their sampler lacks the choice; it
    samples from the EMA copy. One written without augmentation (or ADA) lacks its RNG (or p): a run that turns
    it on at resume starts it as a new run would (p = 0). A checkpoint may hold more than the GAN (augmentation
    turned off at resume): the rest is ignored.
    """
    try:
        checkpoint = gan.checkpoint
        saved = {name.split("/", 1)[0] for name, _ in tf.train.list_variables(path)}
        missing = [k for k in OPTIONAL_STATE if k in gan.checkpointed and k not in saved]
        if missing:
            checkpoint = tf.train.Checkpoint(**{k: v for k, v in gan.checkpointed.items() if k not in missing})
            if "sample_from_ema" in missing:
                gan.sample_from_ema.assign(True)
        # expect_partial only silences TensorFlow's exit-time list of unrestored values (after our one error line,
        # or for state this GAN no longer has: augmentation turned off at resume); the assertion still checks
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:  # IndexError: a truncated data file
        raise DcganError(f"cannot restore checkpoint {path}: {first_line(e)}") from None


def save_generator(model, path: Path) -> Path:
    with atomic_path(path) as tmp:  # keras insists on the .keras suffix, which atomic_path keeps
        model.save(tmp)
    return path
