"""The command line: fast help without TensorFlow, one-line errors, exit codes."""

import subprocess
import sys

from helpers import cli_error, run_cli

COMMANDS = ("train", "sample", "export", "evaluate", "features", "benchmark", "compare")


def test_help_and_import_do_not_load_tensorflow():
    code = "import sys, dcgan.cli; dcgan.cli.build_parser().format_help(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    help_text = subprocess.run([sys.executable, "-m", "dcgan", "--help"], capture_output=True, text=True, check=True).stdout
    for command in COMMANDS:
        assert command in help_text


def test_user_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    assert "unknown config key 'train.stepz'; did you mean 'train.steps'?" in cli_error(capsys, "train", "--set", "train.stepz=1")
    assert "config file not found" in cli_error(capsys, "train", "--config", tmp_path / "none.yaml")
    assert "run directory not found" in cli_error(capsys, "train", "--resume", tmp_path / "none")
    missing = tmp_path / "nothing-here"
    err = cli_error(capsys, "train", "--set", "data.name=mnist", "--set", f"data.path={missing}", "--set", f"run.dir={tmp_path / 'runs'}")
    assert "does not exist" in err
    assert not (tmp_path / "runs").exists()  # nothing written for a failed start


def test_no_command_prints_help_and_fails(capsys):
    status, out, _ = run_cli(capsys)
    assert status == 2 and "usage: dcgan" in out


def test_an_empty_resume_is_an_error_not_a_new_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a new default run would be written to ./runs
    for empty in ("", "  "):
        assert "--resume: empty run directory name" in cli_error(capsys, "train", "--resume", empty)
    assert not (tmp_path / "runs").exists()


def test_os_and_memory_errors_end_in_one_line(monkeypatch, capsys):
    import dcgan.cli as cli

    def disk_full(args):
        raise OSError(28, "No space left on device", "/runs/x/samples/step_0000500.png")

    def too_big(args):
        raise MemoryError()

    for fails, expected in ((disk_full, "/runs/x/samples/step_0000500.png: No space left on device"), (too_big, "out of memory")):
        monkeypatch.setattr(cli, "cmd_sample", fails)
        assert expected in cli_error(capsys, "sample", "run")


def test_tensorflow_start_up_noise_is_silenced_and_the_error_is_the_last_line(tiny_run, tmp_path):
    """Without TF_CPP_MIN_LOG_LEVEL set, as a user runs it: a failed restore prints one line and nothing after it."""
    import os
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("base_channels: 4", "base_channels: 6", 1))  # no longer the checkpoint's shape
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DCGAN_TF_LOGS")}
    proc = subprocess.run([sys.executable, "-m", "dcgan", "sample", str(run), "--out", str(tmp_path / "g.png")],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("dcgan sample: error: cannot restore checkpoint")
    loud = subprocess.run([sys.executable, "-m", "dcgan", "sample", str(run), "--out", str(tmp_path / "g.png")],
                          capture_output=True, text=True, env={**env, "DCGAN_TF_LOGS": "1"}, timeout=120)
    assert loud.returncode == 2 and len(loud.stderr.strip().splitlines()) > 1  # asked for: TensorFlow speaks
