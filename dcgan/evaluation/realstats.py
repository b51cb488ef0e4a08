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
The result is cached per feature network (its weights) and content hash (the manifest's content_sha256, checked
against the records as they are read), beside the cached statistics of in-memory real sets, so the pass is paid
once per dataset.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass

import numpy as np

from dcgan.core.errors import DcganError
from dcgan.data.prepared_format import MANIFEST, content_update
from dcgan.evaluation.cachefiles import (HEX_DIGEST, NO_NETWORK, DamagedCache, check_shapes, load_npz, note,
                                        stats_file)
from dcgan.evaluation.featurenet import check_features
from dcgan.evaluation.metrics import RunningMoments, RunningSpectrum
from dcgan.core.files import atomic_path

SAMPLE = 50_000  # real feature vectors kept: FID's usual sample size; KID and precision/recall subsample further


@dataclass
class StreamedReal:
    count: int  # images read
    spectrum: np.ndarray
    labels: np.ndarray  # of the feature sample (or of the every-k-th images when there is no network)
    stats: dict[str, np.ndarray] | None  # mu, sigma, features (the sample); None without a feature network


def streamed_real(images, net=None, quiet: bool = False) -> StreamedReal:
    """The real side of a `prepared.PreparedImages` (every image it uses), from the cache or one pass.

    The cache entry is named by the manifest's content_sha256, so it is checked to be a hex digest before it
    becomes part of a path, and checked against the records the pass reads before anything is stored under
    it: a dataset claiming another's hash cannot leave its statistics under that one's name.
    """
    manifest = images.manifest
    digest = manifest.content_sha256
    if not isinstance(digest, str) or HEX_DIGEST.fullmatch(digest) is None:
        raise DcganError(f"{manifest.path / MANIFEST}: content_sha256 {str(digest)[:80]!r} is not a sha256 hex digest "
                         "(64 of 0-9a-f; prepare the dataset again)")
    whole = len(images) == manifest.count
    path = stats_file(net, f"prepared-{digest}" + ("" if whole else f"-first{len(images)}"))
    cached = _read(path, len(images), manifest.shape, net is not None, quiet) if path.exists() else None
    if cached is not None:
        return cached
    result, content = _pass(images, net, quiet)
    if not whole:
        return result  # only a pass over every record can check the claimed hash: an unchecked name is never stored
    if content != digest:
        raise DcganError(f"{manifest.path}: the images and labels do not match the manifest's content_sha256 (changed "
                         "since it was prepared? `dcgan prepare --verify` checks every shard)")
    with atomic_path(path) as tmp:
        np.savez(tmp, count=result.count, spectrum=result.spectrum, labels=result.labels, **(result.stats or {}))
    return result


def _pass(images, net, quiet: bool) -> tuple[StreamedReal, str]:
    """One pass in stored order: the real side, and the content hash of what was read (as `prepare` computes it)."""
    from tqdm import tqdm

    every = max(1, math.ceil(len(images) / SAMPLE))
    moments, spectrum, content, sample, labels, seen = RunningMoments(), RunningSpectrum(), hashlib.sha256(), [], [], 0
    with tqdm(total=len(images), unit="img", desc=f"real statistics ({net.key if net else NO_NETWORK})", file=sys.stderr,
              disable=quiet, leave=False) as bar:
        for batch, batch_labels in images.stored_batches():
            for image, label in zip(batch, batch_labels):
                content_update(content, image, label)
            keep = (np.arange(seen, seen + len(batch)) % every) == 0
            spectrum.add(batch)
            labels.append(batch_labels[keep])
            if net is not None:
                feats = net(batch)
                if not seen:
                    check_features(feats.shape[1], f"feature network {net.key}")
                moments.add(feats)
                sample.append(feats[keep])
            seen += len(batch)
            bar.update(len(batch))
    result = StreamedReal(seen, spectrum.mean(), np.concatenate(labels).astype(np.int64), None)
    if net is not None:
        mu, sigma = moments.stats()
        result.stats = {"mu": mu, "sigma": sigma, "features": np.concatenate(sample)}
    return result, content.hexdigest()


def _read(path, count: int, shape: tuple[int, int, int], with_stats: bool, quiet: bool) -> StreamedReal | None:
    """A cached pass, checked against the dataset it claims to describe; None (said so) when it is damaged."""
    sampled = len(range(0, count, max(1, math.ceil(count / SAMPLE))))
    fields = ("count", "spectrum", "labels") + (("mu", "sigma", "features") if with_stats else ())
    try:
        f = load_npz(path, fields)
        if f["count"].shape != () or int(f["count"]) != count:
            raise DamagedCache(f"it counts {f['count']} images, not {count}")
        want = {"spectrum": shape[:2], "labels": (sampled,)}
        if with_stats:
            d = len(f["mu"])
            want.update(mu=(d,), sigma=(d, d), features=(sampled, d))
        check_shapes(f, want)
    except DamagedCache as e:
        note(quiet, f"real statistics: {path} is damaged ({e}); computing them again")
        return None
    stats = {k: f[k] for k in ("mu", "sigma", "features")} if with_stats else None
    return StreamedReal(count, f["spectrum"], f["labels"], stats)
