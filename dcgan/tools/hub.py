"""`dcgan export --format hub --out DIR`: a self-contained model folder in the layout the Hugging Face Hub expects.

DIR holds the generator as `generator.keras`, the run's `config.yaml`, `classes.json`, a sample grid, the project's
own Keras layers as `dcgan_layers.py` (the file dcgan.models.layers is, so plain Keras can load a generator with
sub-pixel or blur blocks without dcgan installed), the provenance, and a `README.md` model card: front matter with
the library name, tags, the dataset and the measured scores with the feature network that measured them (the run's
eval.json, if `dcgan evaluate` wrote one), and a loading snippet that runs as written in a fresh Python inside DIR.
Uploading (`huggingface-cli upload`) needs a network and is the user's step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dcgan.core.errors import DcganError
from dcgan.core.files import atomic_write, remove_path
from dcgan.core.viz import save_png, upscale

HUB_FILES = ("generator.keras", "config.yaml", "classes.json", "samples.png", "dcgan_layers.py", "dcgan_export.json",
             "README.md")
GRID_SEEDS = 64


def check_hub_out(path: Path, force: bool) -> None:
    """DIR may be new, empty, or (with --force) an earlier hub export holding nothing but its own files."""
    if path.exists() and not path.is_dir():
        raise DcganError(f"--out {path}: is a file; a hub export is a folder")
    if path.is_symlink():
        raise DcganError(f"--out {path}: is a symbolic link; name the folder itself")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise DcganError(f"{path} already exists; pass --force to replace it")
        names = {p.name for p in path.iterdir()} - ({PYCACHE} if _only_our_bytecode(path / PYCACHE) else set())
        if not (path / "dcgan_export.json").is_file() or not names <= set(HUB_FILES) or any(
                (path / n).is_symlink() or not (path / n).is_file() for n in names):
            raise DcganError(f"--force replaces only an earlier export; {path} is not a hub folder this command wrote "
                             "(with dcgan_export.json and nothing else), so it is left alone")


PYCACHE = "__pycache__"


def _only_our_bytecode(folder: Path) -> bool:
    """Python's cache of dcgan_layers.py, written when the card's snippet ran in the folder: derived from our file."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    return all(p.is_file() and not p.is_symlink() and p.name.startswith("dcgan_layers.") and p.suffix == ".pyc"
               for p in folder.iterdir())


def write_hub(gen, path: Path, provenance: dict, write_keras) -> Path:
    """Write every file into a temporary sibling folder, then move it in place (a failure leaves the old one)."""
    import dcgan.models.layers as layers_module
    from dcgan.core.config import dump_config

    run_dir = gen.checkpoint.run_dir
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    remove_path(tmp)
    tmp.mkdir(parents=True)
    try:
        write_keras(gen.model, tmp / "generator.keras", provenance)
        atomic_write(tmp / "config.yaml", dump_config(gen.config))
        atomic_write(tmp / "classes.json", json.dumps({"classes": gen.classes}, indent=2) + "\n")
        atomic_write(tmp / "dcgan_layers.py", Path(layers_module.__file__).read_text())
        atomic_write(tmp / "dcgan_export.json", json.dumps(provenance) + "\n")
        images = gen.sample(n=GRID_SEEDS) if not gen.classes else gen.sample(seeds=range(8))
        size = images.shape[1]
        from dcgan.tools.sample import fill_grid, grid_layout

        save_png(tmp / "samples.png", upscale(fill_grid(images, *grid_layout(len(images))), max(1, 256 // size // 2)))
        atomic_write(tmp / "README.md", model_card(gen, run_dir, provenance))
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    finally:
        if old.exists() and not path.exists():
            old.rename(path)
        remove_path(tmp)
        remove_path(old)
    return path


def _scores(run_dir: Path) -> list[dict]:
    """The run's eval.json records of its newest scored checkpoint (empty when it was never evaluated)."""
    try:
        records = json.loads((run_dir / "eval.json").read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(records, list) or not records:
        return []
    newest = max(r.get("checkpoint_step", -1) for r in records if isinstance(r, dict))
    return [r for r in records if isinstance(r, dict) and r.get("checkpoint_step") == newest]


def model_card(gen, run_dir: Path, provenance: dict) -> str:
    cfg = gen.config
    g = cfg.model.generator
    conditional = bool(gen.classes)
    scores = _scores(run_dir)
    dataset = cfg.data.name if cfg.data.name not in ("folder", "prepared") else None
    front = ["---", "library_name: keras", "tags:", "- dcgan", "- gan", "- image-generation",
             f"- {'class-conditional' if conditional else 'unconditional'}-image-generation", f"- upsampling-{_modes(g)}",
             f"pipeline_tag: {'unconditional-image-generation' if not conditional else 'image-generation'}"]
    if dataset:
        front += ["datasets:", f"- {dataset}"]
    if scores:
        front += ["model-index:", f"- name: dcgan-{run_dir.name}", "  results:", "  - task:",
                  "      type: image-generation", "    dataset:", f"      name: {scores[0]['dataset_split']}",
                  f"      type: {dataset or cfg.data.name}", "    metrics:"]
        for r in scores:
            front += [f"    - type: {r['metric']}", f"      value: {float(r['value']):.4g}",
                      f"      name: {r['metric']} ({r.get('feature_network') or 'pixels'} features, n={r.get('n')})"]
    front.append("---")
    h, w, c = gen.model.outputs[0].shape[1:]
    score_lines = ([f"| {r['metric']} | {float(r['value']):.4g} | {r.get('feature_network') or 'pixels'} | {r.get('n')} | "
                    f"{r['dataset_split']} | {r['checkpoint_step']} |" for r in scores])
    score_text = ("| metric | value | feature network | samples | against | step |\n|---|---|---|---|---|---|\n"
                  + "\n".join(score_lines)) if scores else \
        f"Not evaluated: `dcgan evaluate {run_dir}` writes the scores, and a new export carries them."
    labels = ", label" if conditional else ""
    feed = "[z, label]" if conditional else "z"
    snippet = "\n".join([
        "import json",
        "import keras",
        "import numpy as np",
        "",
        "import dcgan_layers  # noqa: F401  (registers the project's layers: sub-pixel and blur blocks)",
        "",
        'generator = keras.saving.load_model("generator.keras", safe_mode=True)',
        f"z = np.random.default_rng(0).standard_normal((16, {g.latent_dim})).astype(np.float32)",
        *(['classes = json.load(open("classes.json"))["classes"]',
           "label = np.arange(16, dtype=np.int32) % len(classes)"] if conditional else []),
        f"images = generator({feed}, training=False)  # float32 (16, {h}, {w}, {c}) in [-1, 1]",
        "pixels = np.clip(np.round((np.asarray(images) + 1) * 127.5), 0, 255).astype(np.uint8)  # uint8 NHWC",
    ])
    body = f"""
# dcgan-{run_dir.name}

A DCGAN generator trained with dcgan (a Keras DCGAN training application) on **{cfg.data.name}**
({h}x{w}, {c} channel{'s' if c > 1 else ''}{f', {len(gen.classes)} classes' if conditional else ''}): the
{'EMA copy' if provenance['ema'] else 'raw generator'} at step {provenance['step']}. Upsampling: {_modes(g)}
(`model.generator.upsampling`), latent size {g.latent_dim}{', conditioned by ' + g.condition if conditional else ''}.

![samples](samples.png)

## Scores

{score_text}

## Use it with plain Keras

Inputs: `z`, float32 (batch, {g.latent_dim}), standard normal{labels and '; `label`, int32 (batch,), an index into `classes.json`'}.
Output: float32 images (batch, {h}, {w}, {c}) in [-1, 1], NHWC. Run inside this folder (TensorFlow and Keras 3 only):

```python
{snippet}
```

With dcgan installed, `dcgan sample`, `dcgan evaluate` and the Python API (`dcgan.load`) read the run this came from;
`config.yaml` is its configuration, `dcgan_export.json` says which run, step and copy.
"""
    return "\n".join(front) + "\n" + body


def _modes(g) -> str:
    modes = g.upsampling if isinstance(g.upsampling, list) else [g.upsampling]
    return "-".join(dict.fromkeys(m.split(":")[0] for m in map(str, modes)))


def card_snippet(card: str) -> str:
    """The python block of a model card (tests run it as written)."""
    return card.split("```python\n", 1)[1].split("```", 1)[0]

