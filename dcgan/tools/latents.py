"""Which latents a seed names, and which labels a class list names: what `dcgan sample` and `dcgan.load` share.

A seed names one latent vector (numpy's default_rng(seed)), so an image can be asked for again by its seed,
alone or among any others; a conditional run draws each seed in each chosen class, class-major. No TensorFlow.
"""

from __future__ import annotations

import re

import numpy as np

from dcgan.core.errors import DcganError, clip, printable

DEFAULT_SEEDS = 64  # one class, or an unconditional run: an 8x8 grid's seeds
DEFAULT_CLASS_SEEDS = 8  # several classes: one row per class, seeds 0..7 across
LISTED_CLASSES = 12  # an error lists at most this many of a run's classes (a folder dataset may have hundreds)
MAX_SEEDS = 1_000_000  # a typo like 0-1000000000 should fail, not fill the memory
MAX_TRUNCATION = 10.0  # z ~ N(0, 1): past ~3 the generator saturates; 1e308 overflows float32 to inf


def parse_seeds(text: str) -> list[int]:
    """'0-15,42' -> [0, 1, ..., 15, 42]; ranges are inclusive, order and repeats are kept."""
    seeds: list[int] = []
    for item in text.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d{1,18})(?:\s*-\s*(\d{1,18}))?", item)  # int() refuses > 4300 digits
        if not m:
            raise DcganError(f"--seeds {text!r}: {item!r} is not a seed or a range like 0-15 "
                             "(seeds are integers >= 0 of at most 18 digits)")
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo:
            raise DcganError(f"--seeds {text!r}: range {item!r} runs backwards")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise DcganError(f"--seeds {text!r}: more than {MAX_SEEDS} seeds")
        seeds.extend(range(lo, hi + 1))
    return seeds


def parse_class_list(text: str) -> list[str | tuple[int, int]]:
    """'0-3,sneaker' -> [(0, 3), 'sneaker']: inclusive index ranges and names, order and repeats kept.

    Only the syntax is checked here: which names and indices exist is the run's to say (resolve_classes).
    """
    picks: list[str | tuple[int, int]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise DcganError(f"--class {clip(text)!r}: an empty item; give class names or indices separated by "
                             "commas, e.g. 0-3,sneaker (or all)")
        m = re.fullmatch(r"(\d{1,18})(?:\s*-\s*(\d{1,18}))?", item)  # anything else is a name: T-shirt/top has a '-'
        if m and int(m[2] or m[1]) < int(m[1]):
            raise DcganError(f"--class {clip(text)!r}: range {item!r} runs backwards")
        picks.append((int(m[1]), int(m[2] or m[1])) if m else item)
    return picks


def class_key(name: str) -> str:
    """How a class name is matched: any case, and '_' for a space (ankle_boot needs no quotes)."""
    return re.sub(r"[\s_]+", " ", name.strip()).casefold()


def class_list(names: list[str]) -> str:
    """'0: T-shirt/top, 1: Trouser, ...' for an error message, cut short for a run with many classes."""
    shown = [f"{i}: {printable(name)}" for i, name in enumerate(names[:LISTED_CLASSES])]
    if len(names) > LISTED_CLASSES:
        shown.append(f"... {len(names) - 1}: {printable(names[-1])}")
    return ", ".join(shown)


def resolve_classes(text: str | None, names: list[str] | None, run_dir) -> list[int] | None:
    """--class against the run's class names -> label indices; every class when not given; None: unconditional run."""
    if names is None:
        if text is not None:
            raise DcganError(f"--class {clip(text)!r}: {run_dir} is an unconditional run; it has no classes")
        return None
    if text is None:
        return list(range(len(names)))
    by_key: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        by_key.setdefault(class_key(name), []).append(index)
    chosen: list[int] = []
    for pick in parse_class_list(text):
        if isinstance(pick, tuple):
            if pick[1] >= len(names):
                raise DcganError(f"--class {clip(text)!r}: no class {pick[1]}; the classes are {class_list(names)}")
            chosen.extend(range(pick[0], pick[1] + 1))
        elif class_key(pick) == "all":
            chosen.extend(range(len(names)))
        elif len(by_key.get(class_key(pick), [])) == 1:
            chosen.extend(by_key[class_key(pick)])
        else:
            matches = by_key.get(class_key(pick))
            why = (f"{clip(pick)!r} names classes {', '.join(map(str, matches))}, give an index" if matches
                   else f"unknown class {clip(pick)!r}")
            raise DcganError(f"--class {clip(text)!r}: {why}; the classes are {class_list(names)}")
    return chosen


def check_truncation(truncation: float) -> None:
    if not 0 < truncation <= MAX_TRUNCATION:  # nan fails both comparisons
        raise DcganError(f"--truncation {truncation:g}: must be in (0, {MAX_TRUNCATION:g}] (1 = no truncation)")


def check_n(n: int) -> None:
    if not 1 <= n <= MAX_SEEDS:
        raise DcganError(f"--n {n}: must be between 1 and {MAX_SEEDS}")


def default_seeds(classes: list[int] | None) -> list[int]:
    """The seeds sampled when none are asked for: 64, or 8 in each class when there are several classes."""
    return list(range(DEFAULT_CLASS_SEEDS if classes is not None and len(classes) > 1 else DEFAULT_SEEDS))


def latents(seeds, latent_dim: int, truncation: float = 1.0) -> np.ndarray:
    """One standard normal vector per seed, each from its own generator, scaled by truncation."""
    z = np.empty((len(seeds), latent_dim), np.float32)
    for i, seed in enumerate(seeds):
        z[i] = np.random.default_rng(seed).standard_normal(latent_dim)
    return z * np.float32(truncation) if truncation != 1.0 else z


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: Gaussian latents live near a sphere, a straight line cuts inside it.

    t = 0 and t = 1 give a and b exactly, so a walk's endpoints are its seeds' images.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:  # (anti)parallel: the great circle is undefined, a line is as good
        out = (1.0 - t) * a64 + t * b64
    else:
        out = (np.sin((1.0 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def walk_length(segments: int, frames: int) -> int:
    """Latents (images) of a walk: `frames` per segment, then the last endpoint."""
    return segments * frames + 1


def walk(endpoints: np.ndarray, frames: int) -> np.ndarray:
    """K+1 endpoints -> K*frames+1 latents: `frames` steps per segment, then the last endpoint."""
    steps = [slerp(a, b, i / frames) for a, b in zip(endpoints[:-1], endpoints[1:]) for i in range(frames)]
    return np.stack(steps + [endpoints[-1]])


def in_classes(z: np.ndarray, classes: list[int] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The same latents once per class, class-major, with their labels (None: an unconditional run)."""
    if classes is None:
        return z, None
    return np.tile(z, (len(classes), 1)), np.repeat(np.asarray(classes, np.int64), len(z))
