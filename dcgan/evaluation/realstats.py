"""The real side of evaluation for a prepared dataset, streamed: one pass over its shards in bounded memory.

A prepared dataset may be bigger than memory, so evaluation does not load it (`data.load_images` would, up to
MAX_ARRAY_BYTES). It reads the shards once in stored order, a batch at a time, and keeps only what the metrics
need:
    mu, sigma   the feature mean and covariance over every image (merged batch by batch: exact, as
                StyleGAN2-ADA's fid50k_full takes the whole dataset)
    features    a sample of at most SAMPLE feature vectors, every k-th image in stored order (spread over
                the whole dataset), for KID, precision/recall and the per-class statistics of intra-FID
    labels      the sample's labels (-1 where the dataset has none)
    spectrum    the mean power spectrum of every image, for the checkerboard score
The result is cached per feature network and content hash (the manifest's content_sha256), beside the cached
statistics of in-memory real sets, so the pass is paid once per dataset.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from dcgan.evaluation.featurenet import check_features
from dcgan.evaluation.metrics import RunningMoments, power_spectrum
from dcgan.core.files import cache_dir, atomic_path

SAMPLE = 50_000  # real feature vectors kept: FID's usual sample size; KID and precision/recall subsample further
NO_NETWORK = "pixels"  # the cache folder of a pass that needs no feature network (checkerboard only)


@dataclass
class StreamedReal:
    count: int  # images read
    spectrum: np.ndarray
    labels: np.ndarray  # of the feature sample (or of the every-k-th images when there is no network)
    stats: dict[str, np.ndarray] | None  # mu, sigma, features (the sample); None without a feature network


def streamed_real(images, net=None, quiet: bool = False) -> StreamedReal:
    """The real side of a `prepared.PreparedImages` (every image it uses), from the cache or one pass."""
    from tqdm import tqdm

    key = net.key if net is not None else NO_NETWORK
    limit = f"-first{len(images)}" if len(images) != images.manifest.count else ""
    path = cache_dir() / "stats" / key / f"prepared-{images.manifest.content_sha256}{limit}.npz"
    if path.is_file():
        return _read(path)
    every = max(1, math.ceil(len(images) / SAMPLE))
    moments, sample, labels = RunningMoments(), [], []
    spectrum, seen = 0.0, 0
    with tqdm(total=len(images), unit="img", desc=f"real statistics ({key})", file=sys.stderr, disable=quiet,
              leave=False) as bar:
        for batch, batch_labels in images.stored_batches():
            keep = (np.arange(seen, seen + len(batch)) % every) == 0
            spectrum = spectrum + power_spectrum(batch) * len(batch)
            labels.append(batch_labels[keep])
            if net is not None:
                feats = net(batch)
                if not seen:
                    check_features(feats.shape[1], f"feature network {net.key}")
                moments.add(feats)
                sample.append(feats[keep])
            seen += len(batch)
            bar.update(len(batch))
    result = StreamedReal(seen, spectrum / max(seen, 1), np.concatenate(labels).astype(np.int64), None)
    if net is not None:
        mu, sigma = moments.stats()
        result.stats = {"mu": mu, "sigma": sigma, "features": np.concatenate(sample)}
    with atomic_path(path) as tmp:
        np.savez(tmp, count=result.count, spectrum=result.spectrum, labels=result.labels, **(result.stats or {}))
    return result


def _read(path) -> StreamedReal:
    with np.load(path, allow_pickle=False) as f:
        stats = {k: f[k] for k in ("mu", "sigma", "features")} if "mu" in f else None
        return StreamedReal(int(f["count"]), f["spectrum"], f["labels"], stats)
