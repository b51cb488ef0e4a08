"""What the tool prints besides its own lines: TensorFlow's start-up logging and tf.data's warnings."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from helpers import run_cli, write_idx


@pytest.mark.parametrize("level", [None, "3", "0"])
def test_tensorflow_start_up_lines_are_silenced_whatever_tf_cpp_min_log_level_says(tiny_run, tmp_path, level):
    """TF_CPP_MIN_LOG_LEVEL=3, set to quiet TensorFlow, cannot quiet what it logs before absl starts (cudart_stub)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DCGAN_TF_LOGS")}
    env.update({} if level is None else {"TF_CPP_MIN_LOG_LEVEL": level})
    out = tmp_path / "g.png"
    proc = subprocess.run([sys.executable, "-m", "dcgan", "sample", str(tiny_run[0]), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-3000:]
    assert proc.stderr == ""


def test_a_one_shard_prepared_stream_is_built_without_tf_data_warnings(tmp_path, capsys):
    """tf.data warns at every trace when `deterministic` is given without parallel calls (about 1,000 in the suite)."""
    from dcgan.data import prepared

    source = tmp_path / "idx"
    source.mkdir()
    write_idx(source / "train-images-idx3-ubyte", np.zeros((20, 8, 8), np.uint8))
    write_idx(source / "train-labels-idx1-ubyte", np.zeros(20, np.uint8))
    status, _, err = run_cli(capsys, "prepare", source, tmp_path / "out", "--size", 8, "--channels", 1, "--quiet")
    assert status == 0, err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = next(iter(prepared.make_stream(tmp_path / "out", 4, seed=0)))
    assert batch.shape == (4, 1, 8, 8, 1)
    assert [str(w.message) for w in caught if "deterministic" in str(w.message)] == []
