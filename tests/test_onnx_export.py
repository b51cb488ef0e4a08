"""`dcgan export --format onnx`: onnxruntime, in a process that never imports dcgan or TensorFlow, draws the pixels
`dcgan sample` draws for the same latents (and labels)."""

import json

import numpy as np

from dcgan.cli import main
from dcgan.tools.sample import latents
from helpers import cli_error
from test_export import without_dcgan

# onnxruntime and numpy alone: the export's inputs by name, its pixels as dcgan.data.pipeline.to_uint8 makes them
RUN_ONNX = """
import json, sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feeds = dict(np.load(sys.argv[2]))
floats = session.run(["images"], {i.name: feeds[i.name] for i in session.get_inputs()})[0]
images = np.clip(np.round((floats + 1.0) * 127.5), 0, 255).astype(np.uint8)
meta = session.get_modelmeta().custom_metadata_map
for banned in ("dcgan", "tensorflow", "keras"):
    assert not any(n == banned or n.startswith(banned + ".") for n in sys.modules), banned + " was imported"
np.savez(sys.argv[3], images=images, floats=floats, inputs=np.array([i.name for i in session.get_inputs()]),
         shapes=np.array([str(i.shape) for i in session.get_inputs()]), meta=np.array(json.dumps(meta)))
"""


def _sampled(run_dir, tmp_path, *args):
    assert main(["sample", str(run_dir), *args, "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        return {k: f[k] for k in f.files}


def test_onnx_reproduces_dcgan_sample_without_dcgan(tiny_run, tmp_path):
    run_dir, cfg = tiny_run  # sub-pixel and transposed blocks, an EMA copy
    out = tmp_path / "g.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    sampled = _sampled(run_dir, tmp_path, "--seeds", "0-9,77")
    np.savez(tmp_path / "feeds.npz", z=latents([*range(10), 77], cfg.model.generator.latent_dim))
    with without_dcgan(tmp_path, RUN_ONNX, out, tmp_path / "feeds.npz") as f:
        assert np.abs(f["images"].astype(int) - sampled["images"]).max() <= 1  # within 1/255
        assert list(f["inputs"]) == ["z"] and f["shapes"][0] == f"['batch', {cfg.model.generator.latent_dim}]"
        meta = json.loads(str(f["meta"]))
    provenance = json.loads(meta["dcgan_export"])
    assert provenance["step"] == 6 and provenance["ema"] is True and json.loads(meta["classes"]) is None
    assert json.loads(meta["inputs"]) == {"z": [None, cfg.model.generator.latent_dim]} and "127.5" in meta["usage"]


def test_conditional_onnx_takes_z_and_label(tiny_conditional_run, tmp_path):
    run_dir, cfg = tiny_conditional_run
    out = tmp_path / "c.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    sampled = _sampled(run_dir, tmp_path, "--class", "sneaker,0", "--seeds", "0-2,9")
    np.savez(tmp_path / "feeds.npz", z=latents(sampled["seeds"], cfg.model.generator.latent_dim),
             label=sampled["labels"].astype(np.int32))
    with without_dcgan(tmp_path, RUN_ONNX, out, tmp_path / "feeds.npz") as f:
        assert np.abs(f["images"].astype(int) - sampled["images"]).max() <= 1
        assert list(f["inputs"]) == ["z", "label"]
        classes = json.loads(json.loads(str(f["meta"]))["classes"])
    assert classes[7] == "Sneaker" and len(classes) == 10


def test_onnx_force_replaces_only_an_earlier_onnx_export(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    out = tmp_path / "g.onnx"
    out.write_bytes(b"my own model")
    assert "already exists; pass --force" in cli_error(capsys, "export", run_dir, "--format", "onnx", "--out", out)
    assert "replaces only an earlier export" in cli_error(capsys, "export", run_dir, "--format", "onnx", "--out", out,
                                                          "--force")
    assert out.read_bytes() == b"my own model"
    out.unlink()
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path)]) == 0  # a folder: generator.onnx
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "generator.onnx").is_file()


def test_without_tf2onnx_the_error_says_how_to_install(tiny_run, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tf2onnx(name, *args, **kwargs):
        if name == "tf2onnx":
            raise ImportError("No module named 'tf2onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tf2onnx)
    line = cli_error(capsys, "export", tiny_run[0], "--format", "onnx", "--out", tmp_path / "g.onnx")
    assert "pip install 'dcgan[onnx]'" in line and not (tmp_path / "g.onnx").exists()
