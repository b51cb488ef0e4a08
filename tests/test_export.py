import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np

from dcgan.cli import main
from dcgan.data.mnist import CLASS_NAMES
from dcgan.tools.sample import latents
from helpers import cli_error

# Loads the SavedModel with TensorFlow alone and converts to uint8 the way dcgan.data.pipeline.to_uint8 does.
SERVE = """
import sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
z = np.load(sys.argv[2])["z"]
floats = model.signatures["serving_default"](z=tf.constant(z))["output_0"].numpy()
images = np.clip(np.round((floats + 1.0) * 127.5), 0, 255).astype(np.uint8)
assert not any(name == "dcgan" or name.startswith("dcgan.") for name in sys.modules), "dcgan was imported"
np.savez(sys.argv[3], floats=floats, images=images)
"""

# A conditional export, both formats, with TensorFlow and Keras alone: z and label in, uint8 as dcgan.data.pipeline.to_uint8.
SERVE_CONDITIONAL = """
import sys
import keras
import numpy as np
import tensorflow as tf
inputs = np.load(sys.argv[3])
z, label = inputs["z"], inputs["label"]
saved = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](z=tf.constant(z), label=tf.constant(label))
model = keras.saving.load_model(sys.argv[2], safe_mode=True)
from_keras = model([z, label], training=False)
to_uint8 = lambda x: np.clip(np.round((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)
assert not any(name == "dcgan" or name.startswith("dcgan.") for name in sys.modules), "dcgan was imported"
np.savez(sys.argv[4], savedmodel=to_uint8(saved["output_0"]), keras=to_uint8(from_keras),
         inputs=np.array([t.name for t in model.inputs]))
"""


def export(*args) -> int:
    return main(["export", *map(str, args)])


def test_keras_file_loads_in_safe_mode_and_matches_the_ema_generator(tiny_run, tiny_gan, tmp_path):
    import keras

    import dcgan.models.networks  # noqa: F401  registers DepthToSpace and ICNR for the loader

    run_dir = shutil.copytree(tiny_run[0], tmp_path / "run")  # the default export goes into the run: a copy of it
    cfg = tiny_run[1]
    assert export(run_dir) == 0
    path = run_dir / "export" / "generator.keras"
    model = keras.saving.load_model(path, safe_mode=True)
    z = latents(range(6), cfg.model.generator.latent_dim)
    np.testing.assert_array_equal(model(z, training=False).numpy(), tiny_gan.ema_generator(z, training=False).numpy())
    assert export(run_dir, "--no-ema", "--out", tmp_path / "raw.keras") == 0
    raw = keras.saving.load_model(tmp_path / "raw.keras", safe_mode=True)
    np.testing.assert_array_equal(raw(z, training=False).numpy(), tiny_gan.generator(z, training=False).numpy())
    assert not np.array_equal(raw(z, training=False).numpy(), model(z, training=False).numpy())


def test_savedmodel_reproduces_dcgan_sample_without_dcgan(tiny_run, tiny_gan, tmp_path):
    run_dir, cfg = tiny_run
    saved = tmp_path / "gen"
    assert export(run_dir, "--format", "savedmodel", "--out", saved) == 0
    assert (saved / "saved_model.pb").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    assert main(["sample", str(run_dir), "--seeds", "0-9,77", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        sampled = f["images"]
    z = latents([*range(10), 77], cfg.model.generator.latent_dim)
    np.savez(tmp_path / "z.npz", z=z)
    with without_dcgan(tmp_path, SERVE, saved, tmp_path / "z.npz") as f:
        floats, images = f["floats"], f["images"]
    np.testing.assert_array_equal(images, sampled)
    np.testing.assert_allclose(floats, tiny_gan.ema_generator(z, training=False).numpy(), atol=1e-5)
    assert floats.min() >= -1.0 and floats.max() <= 1.0
    assert json.loads((saved / "dcgan_export.json").read_text())["classes"] is None  # unconditional


def without_dcgan(tmp_path, code: str, *args):
    """Run code in a fresh Python that cannot import dcgan (no PYTHONPATH, cwd elsewhere); open the npz it writes last."""
    out = tmp_path / "out.npz"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args), str(out)], cwd=tmp_path,
                          env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(out)


def test_conditional_exports_take_z_and_label_and_reproduce_dcgan_sample_without_dcgan(tiny_conditional_run, tmp_path):
    run_dir, cfg = tiny_conditional_run
    saved, keras_file = tmp_path / "gen", tmp_path / "gen.keras"
    assert export(run_dir, "--format", "savedmodel", "--out", saved) == 0
    assert export(run_dir, "--out", keras_file) == 0
    assert main(["sample", str(run_dir), "--class", "sneaker,0", "--seeds", "0-2,9", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        sampled, labels, seeds = f["images"], f["labels"], f["seeds"]
    np.testing.assert_array_equal(labels, [7] * 4 + [0] * 4)
    z = latents(seeds, cfg.model.generator.latent_dim)
    np.savez(tmp_path / "inputs.npz", z=z, label=labels.astype(np.int32))
    with without_dcgan(tmp_path, SERVE_CONDITIONAL, saved, keras_file, tmp_path / "inputs.npz") as f:
        np.testing.assert_array_equal(f["savedmodel"], sampled)
        np.testing.assert_array_equal(f["keras"], sampled)
        assert list(f["inputs"]) == ["z", "label"]
    assert not np.array_equal(sampled[0], sampled[4])  # seed 0 as a sneaker and as a T-shirt
    for marker in (json.loads((saved / "dcgan_export.json").read_text()),
                   json.loads(zipfile.ZipFile(keras_file).read("dcgan_export.json"))):
        assert marker["classes"] == CLASS_NAMES["fashion_mnist"] and marker["step"] == 6


def test_force_replaces_only_an_earlier_export(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "mine.txt").write_text("earlier work")
    assert "already exists; pass --force" in cli_error(capsys, "export", run_dir, "--format", "savedmodel", "--out", saved)
    # --force never deletes a folder it did not write: once it removed whatever --out named
    assert "replaces only an earlier export" in cli_error(capsys, "export", run_dir, "--format", "savedmodel", "--out", saved,
                                                          "--force")
    assert sorted(p.name for p in saved.iterdir()) == ["mine.txt"]
    fresh = tmp_path / "fresh"
    assert export(run_dir, "--format", "savedmodel", "--out", fresh) == 0
    assert export(run_dir, "--format", "savedmodel", "--out", fresh, "--force", "--no-ema") == 0
    assert (fresh / "saved_model.pb").is_file() and (fresh / "dcgan_export.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "sm"]  # no temporaries left behind


def plant(folder, case: str):
    """Make an earlier SavedModel export no longer only an export (or its marker no longer ours); returns what was planted."""
    marker = folder / "dcgan_export.json"
    if case in ("empty marker", "garbage marker", "marker with another key"):
        text = {"empty marker": "{}", "garbage marker": "not json {",
                "marker with another key": json.dumps({**json.loads(marker.read_text()), "mine": 1})}[case]
        marker.write_text(text)
        return marker
    planted = {"a file in variables": folder / "variables" / "notes.txt", "a file in assets": folder / "assets" / "data.csv",
               "a folder in variables": folder / "variables" / "sub" / "x.txt", "a link as the marker": marker}[case]
    if case == "a link as the marker":
        real = folder.parent / f"{folder.name}-marker.json"
        real.write_text(marker.read_text())
        marker.unlink()
        marker.symlink_to(real)
        return real
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text("the user's")
    return planted


SAVEDMODEL_CASES = ["empty marker", "garbage marker", "marker with another key", "a file in variables", "a file in assets",
                    "a folder in variables", "a link as the marker"]


def test_force_savedmodel_checks_the_marker_and_every_file_under_the_folder(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    earlier = tmp_path / "earlier"
    assert export(run_dir, "--format", "savedmodel", "--out", earlier) == 0
    for i, case in enumerate(SAVEDMODEL_CASES):
        folder = shutil.copytree(earlier, tmp_path / f"case{i}")
        planted = plant(folder, case)
        before = sorted(str(p.relative_to(tmp_path)) for p in folder.rglob("*"))
        error = cli_error(capsys, "export", run_dir, "--format", "savedmodel", "--out", folder, "--force")
        assert "replaces only an earlier export" in error, case
        assert planted.exists() and sorted(str(p.relative_to(tmp_path)) for p in folder.rglob("*")) == before, case
    assert export(run_dir, "--format", "savedmodel", "--out", earlier, "--force") == 0  # an untouched export: replaced


def test_force_never_replaces_the_run_or_a_folder_above_it(tiny_run, tmp_path, capsys, monkeypatch):
    run_dir, _ = tiny_run
    before = sorted(p.name for p in run_dir.iterdir())
    for out in (run_dir, run_dir.parent, run_dir / ".."):
        assert "cannot write an export over the run directory" in cli_error(
            capsys, "export", run_dir, "--format", "savedmodel", "--out", out, "--force")
    monkeypatch.chdir(tmp_path)
    assert "over the current directory" in cli_error(capsys, "export", run_dir, "--format", "savedmodel", "--out", ".",
                                                     "--force")
    assert sorted(p.name for p in run_dir.iterdir()) == before
    (tmp_path / "notes.keras").write_text("not a keras file")
    assert "replaces only an earlier export" in cli_error(capsys, "export", run_dir, "--out", tmp_path / "notes.keras",
                                                          "--force")
    assert (tmp_path / "notes.keras").read_text() == "not a keras file"
    (tmp_path / "dir.keras").mkdir()
    assert "is a directory" in cli_error(capsys, "export", run_dir, "--out", tmp_path / "dir.keras")


def test_export_into_a_run_another_process_writes_is_refused(tiny_run, tmp_path, capsys):
    from dcgan.core.files import lock_run

    run_dir, _ = tiny_run
    with lock_run(run_dir, "dcgan train"):
        err = cli_error(capsys, "export", run_dir, "--out", run_dir / "export" / "locked.keras")
        assert f"process {os.getpid()} (dcgan train" in err
    assert export(run_dir, "--out", tmp_path / "elsewhere.keras") == 0  # outside the run: no lock needed
    with lock_run(run_dir, "dcgan train"):
        assert export(run_dir, "--out", tmp_path / "again.keras") == 0


def test_errors_are_one_line_and_exit_2(tiny_run, tmp_path, capsys):
    # a missing run, step or checkpoint: test_checkpoints.py, for every command that reads a run
    run_dir, _ = tiny_run
    assert "--format 'tflite'" in cli_error(capsys, "export", run_dir, "--format", "tflite")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    assert "cannot write" in cli_error(capsys, "export", run_dir, "--out", blocker / "gen.keras")
    (tmp_path / "taken.keras").write_text("earlier work")
    assert "already exists" in cli_error(capsys, "export", run_dir, "--out", tmp_path / "taken.keras")
