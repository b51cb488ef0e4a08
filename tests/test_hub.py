"""`dcgan export --format hub`: a model folder whose card's snippet loads and runs with plain Keras, without dcgan."""

import json
import shutil
import subprocess
import sys

import numpy as np
import yaml

from dcgan.api import load
from dcgan.cli import main
from dcgan.tools.hub import HUB_FILES, card_snippet
from helpers import cli_error


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _run_snippet(folder, tmp_path):
    """The card's python block, as written, in a fresh Python inside the folder that cannot import dcgan."""
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": str(tmp_path)}
    out = tmp_path / "pixels.npy"
    code = card_snippet((folder / "README.md").read_text()) + (
        "\nimport sys\nassert 'dcgan' not in sys.modules and not any(m.startswith('dcgan.') for m in sys.modules)\n"
        f"np.save({str(out)!r}, pixels)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(out)


def test_a_hub_folder_carries_the_scores_and_its_snippet_runs_without_dcgan(tiny_run, tmp_path):
    run_dir, cfg = tiny_run
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert main(["evaluate", str(run), "--metrics", "checkerboard", "--n", "64"]) == 0
    out = tmp_path / "hub"
    assert main(["export", str(run), "--format", "hub", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(HUB_FILES)
    card = (out / "README.md").read_text()
    front = _front_matter(card)
    assert front["library_name"] == "keras" and front["datasets"] == ["mnist"] and "dcgan" in front["tags"]
    metric = front["model-index"][0]["results"][0]["metrics"][0]
    scored = json.loads((run / "eval.json").read_text())[0]
    assert metric["type"] == "checkerboard" and metric["value"] == float(f"{scored['value']:.4g}")
    assert json.loads((out / "classes.json").read_text()) == {"classes": None}
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["generator"]["upsampling"] == ["subpixel", "transpose"]
    pixels = _run_snippet(out, tmp_path)  # sub-pixel blocks: the folder's dcgan_layers.py registers them
    z = np.random.default_rng(0).standard_normal((16, cfg.model.generator.latent_dim)).astype(np.float32)
    np.testing.assert_array_equal(pixels, load(run).generate(z))


def test_a_conditional_hub_folder_names_its_classes_and_force_replaces_only_its_own(tiny_conditional_run, tmp_path,
                                                                                    capsys):
    run_dir, cfg = tiny_conditional_run
    run = tmp_path / "run"  # a copy never evaluated (other tests may score the shared run)
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("eval.json"))
    run_dir, out = run, tmp_path / "hub"
    assert main(["export", str(run_dir), "--format", "hub", "--out", str(out)]) == 0
    classes = json.loads((out / "classes.json").read_text())["classes"]
    assert classes[7] == "Sneaker" and "Not evaluated" in (out / "README.md").read_text()
    pixels = _run_snippet(out, tmp_path)
    z = np.random.default_rng(0).standard_normal((16, cfg.model.generator.latent_dim)).astype(np.float32)
    np.testing.assert_array_equal(pixels, load(run_dir).generate(z, np.arange(16, dtype=np.int32) % 10))
    assert "already exists; pass --force" in cli_error(capsys, "export", run_dir, "--format", "hub", "--out", out)
    assert (out / "__pycache__").is_dir()  # Python's cache of dcgan_layers.py, from the snippet: --force may replace it
    assert main(["export", str(run_dir), "--format", "hub", "--out", str(out), "--force"]) == 0
    (out / "notes.txt").write_text("mine")
    line = cli_error(capsys, "export", run_dir, "--format", "hub", "--out", out, "--force")
    assert "is not a hub folder this command wrote" in line and (out / "notes.txt").read_text() == "mine"
