"""Evaluate a generator: FID, KID, precision/recall and the checkerboard score; for a conditional
generator also class accuracy and intra-FID.

`Evaluator` holds the real side once (test images, their spectrum, the feature
network and the real features; per class too, with the labels) and scores any generator in one call; `evaluate`
does that for a run's checkpoint (or all of them) and writes eval.json and spectrum.png;
the metrics themselves are one table, `METRIC_TABLE`, which the default lists (`default_metrics`) come from.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dcgan.data import pipeline as datalib
from dcgan.core.config import is_conditional
from dcgan.evaluation.metrics import (class_accuracy, feature_stats, fid, intra_fid, kid, memorisation, power_spectrum, precision_recall,
                           spectrum_ratio)
from dcgan.core.errors import DcganError
from dcgan.evaluation.features import (LABELLED_DATASETS, feature_net_for, label_classifier, real_class_statistics,
                            real_statistics)



@dataclass(frozen=True)
class Metric:
    """One row of the metrics table: how to compute it and what it needs."""

    features: bool  # scored on the feature network's embeddings (else on pixels, or the classifier's logits)
    # (evaluator, images, features, labels, seed) -> this metric's value, or (value, {field: ...}) when eval.json
    # records more beside it (KID's std, intra-FID's per-class values, the classifier's own accuracy)
    compute: Callable
    logged: tuple[str, ...] = ()  # fields that are scores too, "<metric>_<field>": training logs them (KID's std)
    labels: bool = False  # compares classes: only for a conditional run, whose real images come with labels
    datasets: tuple[str, ...] | None = None  # the only datasets it is defined on (None: any)
    needs: str = ""  # why it is only defined on those: the end of the error for any other
    default: bool = True  # in the default list (`dcgan evaluate` without --metrics, compare); else asked for by name


def _score_fid(ev, images, feats, labels, seed):
    return fid(*feature_stats(feats), ev.real["mu"], ev.real["sigma"])


def _score_kid(ev, images, feats, labels, seed):
    value, std = kid(feats, ev.real["features"], seed=seed)
    return value, {"std": std}


def _score_precision(ev, images, feats, labels, seed):
    return ev.precision_recall(feats, seed)[0]


def _score_recall(ev, images, feats, labels, seed):
    return ev.precision_recall(feats, seed)[1]


def _score_checkerboard(ev, images, feats, labels, seed):
    return spectrum_ratio(power_spectrum(images), ev.real_spectrum)


def _score_class_accuracy(ev, images, feats, labels, seed):
    # The yardstick goes beside it: a generator can only be held to what the judge gets right on real images.
    return class_accuracy(ev.judge(images), labels), {"feature_network": ev.judge.key,
                                                      "classifier_test_accuracy": ev.judge_accuracy}


def _score_memorisation(ev, images, feats, labels, seed):
    ratio, copies = memorisation(feats, ev.train_features(), ev.real["features"])
    return ratio, {"copies": copies, "train_images": len(ev.train_features())}


def _score_intra_fid(ev, images, feats, labels, seed):
    value, per_class = intra_fid(feats, labels, ev.real_classes)
    return value, {"per_class": {ev.classes[c]: v for c, v in per_class.items()}}


METRIC_TABLE: dict[str, Metric] = {
    "fid": Metric(True, _score_fid),
    "kid": Metric(True, _score_kid, logged=("std",)),
    "precision": Metric(True, _score_precision),
    "recall": Metric(True, _score_recall),
    "checkerboard": Metric(False, _score_checkerboard),  # the excess power at N/2 and N/4 over the real images'
    # the dataset classifier's verdict: does an image show the class it was generated for?
    "class_accuracy": Metric(False, _score_class_accuracy, labels=True, datasets=LABELLED_DATASETS,
                             needs="needs a classifier trained on a labelled train and test split"),
    "intra_fid": Metric(True, _score_intra_fid, labels=True),  # FID within each class, averaged
    # copying: generated images nearer to the run's training images (data.limit applied) than test images are
    "memorisation": Metric(True, _score_memorisation, logged=("copies",), datasets=LABELLED_DATASETS, default=False,
                           needs="compares the run's training images with a test split the run never saw"),
}
METRICS = tuple(METRIC_TABLE)  # every name `--metrics` takes
TRAINING_METRICS = ("fid", "kid", "checkerboard")  # evaluations during training, plus the class metrics of a conditional run
EVAL_FILE = "eval.json"
SPECTRUM_FILE = "spectrum.png"
CURVE_FILE = "eval_curve.png"
MAX_SAMPLES = 100_000  # twice FID's usual 50,000; 1e9 would be a MemoryError minutes later


def default_metrics(cfg, base: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """base (default: every metric without labels), plus the class metrics when the run is conditional and its dataset has them."""
    base = tuple(m for m, row in METRIC_TABLE.items() if not row.labels and row.default) if base is None else tuple(base)
    if not is_conditional(cfg):
        return base
    return base + tuple(m for m, row in METRIC_TABLE.items() if row.labels and _defined_on(row, cfg.data.name))


def _defined_on(row: Metric, dataset: str) -> bool:
    return row.datasets is None or dataset in row.datasets


def check_metrics(names, cfg, run_dir) -> None:
    """One line when a requested metric does not apply to this run."""
    for m in names:
        row = METRIC_TABLE[m]
        if row.labels and not is_conditional(cfg):
            raise DcganError(f"--metrics {m}: only for a conditional run (model.generator.condition); {run_dir} is unconditional")
        if not _defined_on(row, cfg.data.name):
            raise DcganError(f"--metrics {m}: {row.needs} ({', '.join(row.datasets)}); data.name={cfg.data.name} has none"
                             + (" (intra_fid works on it)" if row.labels else ""))


def parse_metrics(metrics) -> tuple[str, ...]:
    """'fid,kid' or an iterable of names -> validated names, in the order given."""
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [m for m in names if m]
    for m in names:  # the table as it is now: a row added by a program counts
        if m not in METRIC_TABLE:
            raise DcganError(f"unknown metric {m!r}; valid metrics: {', '.join(METRIC_TABLE)}")
    if not names:
        raise DcganError(f"no metric given; valid metrics: {', '.join(METRIC_TABLE)}")
    return tuple(dict.fromkeys(names))


def check_per_class(n: int, metrics, classes: int, what: str = "--n") -> None:
    """intra-FID fits a covariance per class: refuse too few samples before any are generated."""
    if "intra_fid" in metrics and n < 2 * classes:
        raise DcganError(f"{what}: {n} is too few for intra_fid, which needs 2 generated images per class "
                         f"(at least {2 * classes} for {classes} classes)")


def sample_latents(n: int, latent_dim: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """The same latents for every evaluation with this seed, so scores compare across checkpoints."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim), dtype=np.float32)


def sample_labels(n: int, model) -> np.ndarray:
    """0, 1, ..., K-1, 0, ...: balanced class labels for a conditional generator's evaluation."""
    from dcgan.models.networks import balanced_labels, num_classes

    return balanced_labels(n, num_classes(model))


class Scores(dict):
    """name -> float for every score (what training logs and compare tabulates, by name), and in `fields`
    each metric's eval.json fields beside its value (KID's std, intra-FID's per-class values, ...)."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, dict] = {}


class Evaluator:
    """The real side of every metric, computed once; `score` / `evaluate_model` many times."""

    def __init__(self, data_cfg, metrics=METRICS, split: str = "test", feature_model: str | None = None,
                 feature_layer: str | None = None, quiet: bool = False, real_images: np.ndarray | None = None,
                 network: str = "auto"):
        """real_images: the reference set, when not the whole `split` of the dataset (metrics without labels only).

        network: train.feature_network (auto, classifier, inception, selfsup); a feature_model wins over it.
        """
        self.metrics = parse_metrics(metrics)
        # an image folder has no splits, and a prepared dataset is the one split it was prepared from
        self.split = split if datalib.has_test_split(data_cfg.name) else "all"
        rows = [METRIC_TABLE[m] for m in self.metrics]
        self.class_metrics = tuple(m for m in self.metrics if METRIC_TABLE[m].labels)
        if self.class_metrics and real_images is not None:
            raise ValueError("metrics with labels score against a dataset split, not given images")
        self.data_cfg = data_cfg  # with data.limit: the run's own training images, for memorisation
        self._train_features = None
        self.real_labels = self.classes = self.real_images = None
        self.real = self.real_classes = self.judge = self.judge_accuracy = None
        self.net = (feature_net_for(data_cfg, feature_model, feature_layer, quiet=quiet, network=network)
                    if any(r.features for r in rows) else None)
        whole = dataclasses.replace(data_cfg, limit=None)  # data.limit trims the training set; the reference set is the whole split
        if real_images is None and datalib.streams(data_cfg):
            self._stream_real(whole, quiet)
        else:
            self.real_images = real_images  # the caller's; a split loaded here is let go once its statistics are made
            self._array_real(self._load_real(whole, split) if real_images is None else real_images, quiet)
        if "intra_fid" in self.metrics:
            self.real_classes = real_class_statistics(self.real, self.real_labels)
        if "class_accuracy" in self.metrics:
            self.judge, self.judge_accuracy = label_classifier(data_cfg.name, data_cfg.path, quiet=quiet)

    def _load_real(self, data_cfg, split: str) -> np.ndarray:
        """The split's images; for the class metrics the same images with their labels and the class names."""
        if not self.class_metrics:
            return datalib.load_images(data_cfg, split=split)
        real = datalib.load_labelled_images(data_cfg, split=split)
        self.real_labels, self.classes = real.labels, real.classes
        return real.images

    def _array_real(self, images: np.ndarray, quiet: bool) -> None:
        """The real side of images in memory, in bounded batches (the spectrum, the network's features): the
        only whole-split arrays are the pixels, held just for this, and the features."""
        self.real_count = len(images)
        self.real_spectrum = power_spectrum(images)
        if self.net is not None:
            self.real = real_statistics(self.net, images, self.data_cfg.name, self.split, quiet=quiet)

    def _stream_real(self, data_cfg, quiet: bool) -> None:
        """A prepared dataset's real side in one streamed pass (cached), never the whole dataset in memory."""
        from dcgan.evaluation.realstats import streamed_real

        images = datalib.training_data(data_cfg, labelled=bool(self.class_metrics)).images
        real = streamed_real(images, self.net, quiet=quiet)
        self.real_count, self.real_spectrum, self.real = real.count, real.spectrum, real.stats
        if self.class_metrics:  # the per-class statistics come from the feature sample and its labels
            self.real_labels, self.classes = real.labels, images.manifest.classes

    def train_features(self) -> np.ndarray:
        """Features of the images the run trained on (its data.limit applied), computed on first use."""
        if self._train_features is None:
            self._train_features = self.net(datalib.load_images(self.data_cfg, split="train"))
        return self._train_features

    @property
    def feature_network(self) -> str | None:
        return self.net.key if self.net is not None else None

    def score(self, images: np.ndarray, seed: int = 0, labels: np.ndarray | None = None) -> Scores:
        """Every requested metric for uint8 images (labels: the class each was generated for, for the class metrics).

        A metric with logged fields adds '<name>_<field>' scores (KID's 'kid_std').
        """
        if len(images) < 2:
            raise DcganError(f"evaluation needs at least 2 generated images, got {len(images)}")
        if self.class_metrics and (labels is None or len(labels) != len(images)):
            raise DcganError(f"{', '.join(self.class_metrics)}: needs the class label each image was generated for "
                             "(a conditional generator)")
        self._pr = None
        feats = self.net(images) if self.net is not None else None
        out = Scores()
        for name in self.metrics:
            value, fields = _value_fields(METRIC_TABLE[name].compute(self, images, feats, labels, seed))
            if not math.isfinite(value):  # a score, never "fid nan" reported as one
                raise DcganError(f"{name}: the score came out {value}, not a number (from the generated images and the "
                                 "real statistics)")
            out[name] = value
            out.update({f"{name}_{f}": fields[f] for f in METRIC_TABLE[name].logged})
            out.fields[name] = fields
        return out

    def precision_recall(self, feats: np.ndarray, seed: int) -> tuple[float, float]:
        """Both from one k-NN computation, shared by the two metrics within a `score` call."""
        if self._pr is None:
            self._pr = precision_recall(self._real_subset(len(feats), seed), feats)
        return self._pr

    def _real_subset(self, n: int, seed: int) -> np.ndarray:
        """As many real features as generated ones: k-NN radii depend on the sample size."""
        real = self.real["features"]
        if n >= len(real):
            return real
        return real[np.sort(np.random.default_rng(seed).choice(len(real), n, replace=False))]

    def evaluate_model(self, model, n: int, seed: int = 0) -> tuple[Scores, np.ndarray]:
        """Generate n images from a generator model and score them: (scores, images).

        A conditional generator draws the classes in turn (balanced, as the training data's test split is)."""
        from dcgan.models.registry import is_conditional, latent_dim, num_classes
        from dcgan.models.sampling import generate_images

        labels = sample_labels(n, model) if is_conditional(model) else None
        if self.class_metrics and labels is None:
            raise DcganError(f"{', '.join(self.class_metrics)}: only for a conditional generator; this one is unconditional")
        if self.class_metrics and num_classes(model) != len(self.classes):
            raise DcganError(f"the generator knows {num_classes(model)} classes, the data {len(self.classes)}")
        images = generate_images(model, sample_latents(n, latent_dim(model), seed), labels)
        return self.score(images, seed, labels if self.class_metrics else None), images


def _value_fields(result) -> tuple[float, dict]:
    """A metric's result as (value, eval.json fields beside it)."""
    return result if isinstance(result, tuple) else (result, {})
