"""The comparison's grammar and plan: `--modes` specs into `Mode`s, every argument into one checked `Plan`.

Fair by construction: every run of a comparison is the same config (the user's
file and --set overrides) except the generator's upsampling. For seed k every
mode gets train.seed = k, which fixes the data order (make_dataset shuffles by
the seed), the training noise and the fixed sample latents; the final scores of
every run use the same evaluation latents against the same real set.

    --budget steps    every run trains the same number of steps; the FID curve
                      comes from train.eval_every (default steps/5)
    --budget seconds  every run trains the same wall-clock time on this machine,
                      cut into segments (default 5) with an untimed evaluation
                      after each (see dcgan.tools.compare)

Nothing here needs TensorFlow: a bad spec or argument fails before any model is built.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from dcgan.core.config import Config, check_dir_name, from_dict, load_config, to_dict
from dcgan.core.errors import ConfigError, DcganError
from dcgan.evaluation.evaluator import MAX_SAMPLES
from dcgan.core.upsampling import INTERPOLATIONS, MODES, UPSAMPLING_MODES
from dcgan.tools.sample import parse_seeds

BUDGETS = ("steps", "seconds")
DEFAULT_POINTS = 5  # evaluations along the budget
STEP_CAP = 10**9  # train.steps of a seconds-budget run: the time budget ends it
MIN_EVAL_SAMPLES = 16


# ---------------------------------------------------------------- mode specs


@dataclass(frozen=True)
class Mode:
    """One generator variant: the upsampling of each block plus its options."""

    blocks: tuple[str, ...]  # one mode for all blocks, or one per block (earliest first)
    kernel: int | None = None  # transpose_kernel_size
    interpolation: str | None = None  # of upsample blocks
    antialias: bool = False  # every block's x2 output low-passed (model.generator.antialias)

    @property
    def label(self) -> str:
        """The canonical spec: transpose+upsample:bilinear:k4:blur."""
        return "+".join(self.blocks) + (f":{self.interpolation}" if self.interpolation else "") + (
            f":k{self.kernel}" if self.kernel else "") + (":blur" if self.antialias else "")

    @property
    def slug(self) -> str:
        return self.label.replace(":", "-")

    def apply(self, gen: dict) -> None:
        """Write this mode into a generator config dict."""
        gen["upsampling"] = list(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
        if self.kernel is not None:
            gen["transpose_kernel_size"] = self.kernel
        if self.interpolation is not None:
            gen["interpolation"] = self.interpolation
        if self.antialias:
            gen["antialias"] = True


def parse_mode(spec: str) -> Mode:
    """'transpose:k4', 'upsample:bilinear', 'subpixel:blur', 'transpose+upsample:k5' -> Mode."""
    text = spec.strip()
    if not text:
        raise DcganError("--modes: empty mode (two commas in a row or a trailing comma?)")
    head, *options = text.split(":")
    blocks = tuple(b.strip() for b in head.split("+"))
    for b in blocks:
        if b not in UPSAMPLING_MODES:
            raise DcganError(f"--modes {text!r}: unknown upsampling {b!r}; use {', '.join(UPSAMPLING_MODES)}, "
                             "or one per block joined by + (e.g. transpose+upsample)")
    kernel = interpolation = None
    antialias = False
    for opt in (o.strip() for o in options):
        if opt == "blur":
            if antialias:
                raise DcganError(f"--modes {text!r}: blur is given twice")
            antialias = True
            continue
        if m := re.fullmatch(r"k(\d+)", opt):
            if kernel is not None:
                raise DcganError(f"--modes {text!r}: the kernel is given twice")
            if not any(MODES[b].kernel_option for b in blocks):
                raise DcganError(f"--modes {text!r}: :{opt} sets the kernel of transpose blocks and this mode has none "
                                 "(use --set model.generator.kernel_size=N for the other convolutions)")
            kernel = int(m[1])
        elif opt in INTERPOLATIONS:
            if interpolation is not None:
                raise DcganError(f"--modes {text!r}: the interpolation is given twice")
            if not any(MODES[b].interpolation_option for b in blocks):
                raise DcganError(f"--modes {text!r}: :{opt} is the resize of upsample blocks and this mode has none")
            interpolation = opt
        else:
            raise DcganError(f"--modes {text!r}: unknown option {opt!r}; options are kN (transpose kernel), "
                             "nearest or bilinear (upsample resize) and blur (a low-pass after every x2)")
    return Mode(blocks, kernel, interpolation, antialias)


def parse_modes(text: str) -> list[Mode]:
    modes = [parse_mode(s) for s in text.split(",")]
    labels = [m.label for m in modes]
    for label in labels:
        if labels.count(label) > 1:
            raise DcganError(f"--modes: {label!r} is given twice")
    return modes


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    """A validated comparison: which runs, under which budget, evaluated how."""

    base: Config
    modes: list[Mode]
    seeds: list[int]
    budget: str  # steps | seconds
    amount: float  # steps or seconds
    eval_every: float  # steps between evaluations, or seconds between them
    eval_samples: int
    name: str
    config_path: str | None = None
    overrides: list[str] = dataclasses.field(default_factory=list)

    @property
    def directory(self) -> Path:
        return Path(self.base.run.dir) / f"compare-{self.name}"

    def run_name(self, mode: Mode, seed: int) -> str:
        return f"{mode.slug}-seed{seed}"

    def run_dir(self, mode: Mode, seed: int) -> Path:
        return self.directory / self.run_name(mode, seed)

    def run_config(self, mode: Mode, seed: int) -> Config:
        """The base config with this mode, seed and budget; everything else identical across runs."""
        data = to_dict(self.base)
        mode.apply(data["model"]["generator"])
        t = data["train"]
        t["seed"] = seed
        if self.budget == "steps":
            t.update(steps=int(self.amount), epochs=None, time_budget_s=None, eval_every=int(self.eval_every))
        else:  # time_budget_s is set per training session (see compare.train_for_seconds)
            t.update(steps=STEP_CAP, epochs=None, time_budget_s=None, eval_every=None)
        data["run"] = {"dir": str(self.directory), "name": self.run_name(mode, seed)}
        try:
            return from_dict(data)
        except ConfigError as e:
            raise DcganError(f"--modes {mode.label!r}: {e}") from None

    def targets(self) -> list[float]:
        """Seconds budget: the spent time at which each evaluation happens (the last = the budget)."""
        n = max(1, math.ceil(self.amount / self.eval_every - 1e-9))
        return [min(i * self.eval_every, self.amount) for i in range(1, n + 1)]

    def describe_budget(self) -> str:
        if self.budget == "steps":
            return f"same number of training steps: {int(self.amount)} per run"
        return f"same wall-clock training time on this machine: {self.amount:g} s per run"

    def command(self) -> str:
        """The canonical command line that reproduces (or resumes) this comparison."""
        parts = ["dcgan", "compare"] + (["--config", self.config_path] if self.config_path else [])
        parts += ["--modes", ",".join(m.label for m in self.modes), "--budget", self.budget]
        parts += ["--steps", str(int(self.amount))] if self.budget == "steps" else ["--seconds", f"{self.amount:g}"]
        parts += ["--seeds", ",".join(map(str, self.seeds)), "--name", self.name]
        for s in self.overrides:
            parts += ["--set", s]
        parts += ["--eval-samples", str(self.eval_samples), "--eval-every", f"{self.eval_every:g}"]
        return shlex.join(parts)


def make_plan(config: str | None = None, modes: str = "", budget: str = "steps", steps: int | None = None,
              seconds: float | None = None, seeds: str | None = None, name: str | None = None, overrides=(),
              eval_samples: int = 10000, eval_every: float | None = None) -> Plan:
    """Check every argument and every run's config (no TensorFlow needed)."""
    base = load_config(config, list(overrides))
    parsed = parse_modes(modes)
    amount = _budget_amount(budget, steps, seconds, base)
    eval_every = _eval_every(budget, amount, eval_every)
    if eval_samples < MIN_EVAL_SAMPLES:
        raise DcganError(f"--eval-samples {eval_samples}: must be at least {MIN_EVAL_SAMPLES}")
    if eval_samples > MAX_SAMPLES:  # now: the evaluation comes after every run's training
        raise DcganError(f"--eval-samples {eval_samples}: too many; at most {MAX_SAMPLES} generated images "
                         "(FID is usually reported on 50000)")
    seed_list = parse_seeds(seeds) if seeds is not None else [base.train.seed]
    if len(set(seed_list)) != len(seed_list):
        raise DcganError(f"--seeds {seeds!r}: a seed is repeated")
    unit = f"{int(amount)}steps" if budget == "steps" else f"{amount:g}s"
    name = name if name is not None else f"{base.data.name}-{unit}"
    check_dir_name(name, "--name")
    p = Plan(base, parsed, seed_list, budget, amount, eval_every, eval_samples, name, config, list(overrides))
    _check_distinct(p)
    return p


def _budget_amount(budget: str, steps: int | None, seconds: float | None, base: Config) -> float:
    """The steps or seconds each run gets; only the option of the chosen budget may be given."""
    if budget not in BUDGETS:
        raise DcganError(f"--budget {budget!r}: choose steps or seconds")
    if budget == "steps":
        if seconds is not None:
            raise DcganError("--seconds applies to --budget seconds")
        amount = steps if steps is not None else base.train.steps
        if amount is None:
            raise DcganError("--budget steps: give --steps N (the config sets no train.steps)")
        if amount < 1 or int(amount) != amount:
            raise DcganError(f"--steps {amount}: must be a whole number of at least 1")
        return amount
    if steps is not None:
        raise DcganError("--steps applies to --budget steps")
    if seconds is None:
        raise DcganError("--budget seconds: give --seconds S")
    if not seconds >= 1 or not math.isfinite(seconds):
        raise DcganError(f"--seconds {seconds}: must be a number of at least 1")
    return float(seconds)


def _eval_every(budget: str, amount: float, eval_every: float | None) -> float:
    """Steps or seconds between evaluations: DEFAULT_POINTS along the budget unless given."""
    if eval_every is None:
        eval_every = max(1, int(amount) // DEFAULT_POINTS) if budget == "steps" else max(1.0, amount / DEFAULT_POINTS)
    at_least_one = eval_every >= 1 and math.isfinite(eval_every)  # nan and inf first: int() raises on them
    if budget == "steps" and not (at_least_one and int(eval_every) == eval_every):
        raise DcganError(f"--eval-every {eval_every:g}: with --budget steps it is a whole number of steps, at least 1")
    if budget == "seconds" and not at_least_one:
        raise DcganError(f"--eval-every {eval_every:g}: with --budget seconds it is a number of seconds, at least 1")
    return float(eval_every)


def _check_distinct(p: Plan) -> None:
    """Builds each mode's config (validating it against the image size) and catches two specs of one model."""
    seen = {}
    for mode in p.modes:
        model = json.dumps(to_dict(p.run_config(mode, p.seeds[0]).model), sort_keys=True)
        if model in seen:
            raise DcganError(f"--modes: {mode.label!r} builds the same generator as {seen[model]!r}")
        seen[model] = mode.label
