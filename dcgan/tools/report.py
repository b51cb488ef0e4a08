"""The comparison's report: per-mode and per-run tables, machine, figures -> report.md and report.json.

It reads the results the runner (dcgan.tools.compare) collected and never trains or loads
a model: the sample panels come in ready-made, so a report can be written again from
the results alone.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import numpy as np

from dcgan.core import plots
from dcgan.core.config import to_dict
from dcgan.tools.modes import Plan
from dcgan.core.files import atomic_write

REPORT_MD, REPORT_JSON = "report.md", "report.json"
SAMPLES_FIG, SPECTRA_FIG, FID_FIG = "samples.png", "spectra.png", "fid.png"
EVAL_SEED = 0  # latents of every final evaluation, the same for every run
GRID_ROWS = GRID_COLS = 8  # the sample panels: the same latents through every mode
LOSS_TAIL = 5  # final losses: mean of the last logged values (one batch each is noisy)


COLUMNS = (  # key, header, format
    ("generator_params", "G params", "int"),
    ("generator_gflops", "G GFLOPs/image", "g"),
    ("images_per_s", "train images/s", "f1"),
    ("wall_s", "wall s", "f1"),
    ("step", "steps", "int"),
    ("fid", "FID ↓", "g"),
    ("kid", "KID ↓", "g"),
    ("precision", "precision ↑", "f3"),
    ("recall", "recall ↑", "f3"),
    ("checkerboard", "checkerboard (1 = real)", "f3"),
    ("class_accuracy", "class accuracy ↑", "f3"),  # conditional runs only: a column shows when every run has it
    ("intra_fid", "intra-FID ↓", "g"),
    ("d_loss", "D loss", "f3"),
    ("g_loss", "G loss", "f3"),
)


def fmt(value: float, kind: str) -> str:
    if kind == "int":
        return f"{int(round(value)):,}"
    if kind == "g":
        return f"{value:.4g}"
    return f"{value:.{kind[1:]}f}"


def columns(results: list[dict]) -> tuple:
    """The COLUMNS every result has: the class metrics appear when the runs are conditional."""
    return tuple(c for c in COLUMNS if all(c[0] in r for r in results))


def summarize(results: list[dict]) -> dict:
    """Per column: mean, std over seeds (sample std; null with one seed) and n."""
    out = {}
    for key, _, _ in columns(results):
        values = [float(r[key]) for r in results]
        out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                    "n": len(values)}
    return out


def cell(stat: dict, kind: str) -> str:
    if stat["std"] is None or stat["std"] == 0:
        return fmt(stat["mean"], kind)
    spread = f"{stat['std']:.2g}" if kind in ("int", "g") else fmt(stat["std"], kind)  # two digits of a spread suffice
    return f"{fmt(stat['mean'], kind)} ± {spread}"


def noise_verdicts(summaries: dict[str, dict]) -> dict[str, str]:
    """FID of each mode against the best mean: a difference under 2 standard errors is within noise."""
    best = min(summaries, key=lambda m: summaries[m]["fid"]["mean"])
    b = summaries[best]["fid"]
    out = {}
    for mode, s in summaries.items():
        f = s["fid"]
        if mode == best:
            out[mode] = "best"
            continue
        se = math.sqrt(f["std"] ** 2 / f["n"] + b["std"] ** 2 / b["n"])
        diff = f["mean"] - b["mean"]
        out[mode] = f"+{diff:.3g} ({'within noise' if diff <= 2 * se else 'beyond noise'})"
    return out


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def scored_copies(results: list[dict]) -> str:
    """Which copy of G the runs were scored on: each run samples from the one it chose."""
    n_ema = sum(bool(r["ema"]) for r in results)
    if n_ema in (0, len(results)):
        return f"{'EMA' if n_ema else 'raw'} generator"
    return f"sampling generator, the copy each run chose (EMA in {n_ema} runs, raw in {len(results) - n_ema})"


def write_report(p: Plan, results: list[dict], panels: dict[str, np.ndarray]) -> Path:
    """report.json, the figures and report.md (returned) in p.directory.

    panels: label -> the sample images of that mode's first-seed run (GRID_ROWS x GRID_COLS of them).
    """
    by_mode = {m.label: [r for r in results if r["mode"] == m.label] for m in p.modes}
    summaries = {label: summarize(rs) for label, rs in by_mode.items()}
    verdicts = noise_verdicts(summaries) if len(p.seeds) > 1 else {}
    figures = write_figures(p, by_mode, panels)
    mach = machine()
    report = {
        "name": p.name, "command": p.command(), "budget": {"kind": p.budget, "amount": p.amount, "eval_every": p.eval_every},
        "machine": mach, "seeds": p.seeds, "eval_samples": p.eval_samples, "config": to_dict(p.base), "overrides": p.overrides,
        "modes": [{"mode": label, "summary": summaries[label], **({"fid_vs_best": verdicts[label]} if verdicts else {}),
                   "runs": [{k: v for k, v in r.items() if k not in ("spectrum", "real_spectrum")} for r in rs]}
                  for label, rs in by_mode.items()],
        "figures": figures,
    }
    atomic_write(p.directory / REPORT_JSON, json.dumps(report, indent=1) + "\n")
    text = "\n".join(_setup_lines(p, results, mach) + _table_lines(p, results, summaries, verdicts) + _figure_lines(p))
    return atomic_write(p.directory / REPORT_MD, text)


def _setup_lines(p: Plan, results: list[dict], mach: dict) -> list[str]:
    """The title and how the comparison was made: budget, machine, command, data, seeds, scores."""
    cfg = p.base
    several = len(p.seeds) > 1
    machines = {json.dumps({k: r["machine"][k] for k in ("cpu_count", "platform", "cpu")}) for r in results}
    return [
        f"# Upsampling comparison `{p.name}`",
        "",
        f"- **Budget:** {p.describe_budget()}.",
        f"- **Machine:** {mach['cpu']}, os.cpu_count() = {mach['cpu_count']}, {mach['platform']}, "
        f"Python {mach['python']}, TensorFlow {mach['tensorflow']}, GPUs: {', '.join(mach['gpus']) or 'none'}."
        + ("" if len(machines) == 1 else " **Note:** the runs were evaluated on different machines; see report.json."),
        f"- **Command:** `{p.command()}`",
        f"- **Data and model:** {cfg.data.name} {cfg.data.image_size}x{cfg.data.image_size}x{cfg.data.channels}, "
        f"batch {cfg.data.batch_size}, loss {cfg.train.loss}, EMA decay {cfg.train.ema_decay}; every run identical "
        "except the generator's upsampling.",
        f"- **Seeds:** {', '.join(map(str, p.seeds))}. Seed k sets train.seed = k in every mode: same data order, "
        "same training noise. " + ("Cells show mean ± sample std over the seeds." if several else "One seed: no spread shown."),
        f"- **Scores:** the final checkpoint's {scored_copies(results)} (what `dcgan sample` uses), "
        f"{p.eval_samples} images from the same latents (seed {EVAL_SEED}) for every run, against the "
        f"{cfg.data.name} test split; features: `{results[0]['feature_network']}`. Checkerboard: excess spectral power at "
        "N/2 and N/4 over the real images' (1 = none)." + class_note(results),
        f"- **FID curve:** {curve_note(p)}",
        "- **train images/s:** median of the logged training windows; **wall s:** training wall time "
        + ("(includes the periodic evaluations, sample grids and checkpoints)" if p.budget == "steps"
           else "(the budget; evaluations are not counted)") + f"; **D/G loss:** mean of the last {LOSS_TAIL} logged values.",
        "",
    ]


def _table_lines(p: Plan, results: list[dict], summaries: dict[str, dict], verdicts: dict[str, str]) -> list[str]:
    """The per-mode table (mean ± std over seeds, FID vs best with several seeds) and the per-run one."""
    shown = columns(results)
    header = ["mode"] + [h for _, h, _ in shown] + (["FID vs best"] if verdicts else [])
    rows = [[f"`{label}`"] + [cell(s[k], kind) for k, _, kind in shown] + ([verdicts[label]] if verdicts else [])
            for label, s in summaries.items()]
    per_run = [[f"`{r['mode']}`", str(r["seed"])] + [fmt(r[k], kind) for k, _, kind in shown] for r in results]
    lines = ["## Per mode", "", markdown_table(header, rows)]
    if verdicts:
        lines += ["FID vs best: difference of the mean FID to the best mode's; *within noise* when it is under two "
                  "standard errors of that difference over the seeds (a rough check with few seeds).", ""]
    return lines + ["## Per run", "", markdown_table(["mode", "seed"] + [h for _, h, _ in shown], per_run)]


def _figure_lines(p: Plan) -> list[str]:
    return ["## Figures", "",
            f"Samples: the same {GRID_ROWS * GRID_COLS} latents (`dcgan sample RUN --n {GRID_ROWS * GRID_COLS}`) "
            f"for every mode, seed {p.seeds[0]} runs.", "", f"![samples]({SAMPLES_FIG})", "",
            "Power spectra of the generated images (mean over seeds) against the real test images.", "",
            f"![spectra]({SPECTRA_FIG})", "", "FID during training.", "", f"![FID]({FID_FIG})", ""]


def class_note(results: list[dict]) -> str:
    """How a conditional comparison's class metrics read, with the classifier's own accuracy as the yardstick."""
    if "class_accuracy" not in results[0] and "intra_fid" not in results[0]:
        return ""
    yardstick = (f" (the classifier's own accuracy on the real test images: {results[0]['classifier_test_accuracy']:.3f})"
                 if "classifier_test_accuracy" in results[0] else "")
    return (" Conditional runs, the classes drawn in turn: class accuracy is the share of generated images the dataset's "
            f"classifier assigns to the class asked for{yardstick}; intra-FID the mean over classes of the FID between "
            "one class's generated and test images.")


def curve_note(p: Plan) -> str:
    if p.budget == "steps":
        from dcgan.evaluation.evaluator import TRAINING_METRICS, default_metrics

        logged = ", ".join(default_metrics(p.base, TRAINING_METRICS))
        return (f"train.eval_every = {int(p.eval_every)} steps, train.eval_samples = {p.base.train.eval_samples} "
                f"images ({logged} logged in each run's metrics.jsonl).")
    return (f"evaluated after every {p.eval_every:g} s of training ({len(p.targets())} points), "
            f"train.eval_samples = {p.base.train.eval_samples} images, outside the timed training; each segment "
            "resumes from the previous one's checkpoint, and the budget includes its first step's graph trace.")


def write_figures(p: Plan, by_mode: dict[str, list[dict]], panels: dict[str, np.ndarray]) -> dict[str, str]:
    """samples.png, spectra.png and fid.png in p.directory: {figure: file name}."""
    spectra = {"real": next(iter(by_mode.values()))[0]["real_spectrum"]}  # the same real set for every run
    spectra.update({label: np.mean([r["spectrum"] for r in rs], axis=0) for label, rs in by_mode.items()})
    paths = {
        "samples": plots.plot_panels(p.directory / SAMPLES_FIG, panels, GRID_ROWS, GRID_COLS),
        "spectra": plots.plot_spectra(p.directory / SPECTRA_FIG, spectra, p.base.data.image_size,
                                      "azimuthally averaged power spectrum of generated images", reference="real"),
        "fid": plots.plot_fid(p.directory / FID_FIG, {label: [r["curve"] for r in rs] for label, rs in by_mode.items()}),
    }
    return {k: v.name for k, v in paths.items()}


# ---------------------------------------------------------------- the machine


def machine() -> dict:
    """Where the numbers were measured: speed and wall time only compare on one machine."""
    import tensorflow as tf

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "cpu": cpu_name(),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
