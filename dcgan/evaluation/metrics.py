"""Sample-quality metrics: pure numpy/scipy math on feature vectors and pixels.

    fid               Frechet distance between Gaussians fitted to two feature sets
                      (Heusel et al. 2017; the TTUR reference code's numerics)
    kid               unbiased MMD^2 with the cubic polynomial kernel, mean and std
                      over random subsets (Binkowski et al. 2018)
    precision_recall  improved precision and recall from k-NN balls
                      (Kynkaanniemi et al. 2019)
    checkerboard      excess spectral power at the frequencies stride-2
                      upsampling leaves its marks on, generated vs real
    class_accuracy    share of generated images a classifier assigns to the
                      class they were generated for (conditional runs)
    intra_fid         mean over classes of the FID between one class's generated
                      and real images (Miyato & Koyama 2018)

Feature extraction lives in dcgan.evaluation.features; nothing here imports TensorFlow.
"""

from __future__ import annotations

import warnings

import numpy as np

from dcgan.data.pipeline import LUMA
from dcgan.core.errors import DcganError

# rows of pairwise distances computed at once: 2000 x 10000 float32 is 80 MB
DISTANCE_BATCH = 2000
# images whose FFT is taken at once: 256 x 128 x 128 complex128 is 64 MB (all 10,000 of a test split would be 2.6 GB)
SPECTRUM_BATCH = 256


# ---------------------------------------------------------------- FID


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise DcganError(f"feature statistics need at least 2 feature vectors of shape (N, D), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


class RunningMoments:
    """feature_stats of a stream of (n, D) batches, merged one batch at a time (Chan et al.'s pairwise update):
    the mean and unbiased covariance of their concatenation, in float64, without holding it."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None  # m2: the sum of outer products of deviations from the mean

    def add(self, features: np.ndarray) -> None:
        x = np.asarray(features, np.float64)
        if not len(x):
            return
        mean = x.mean(axis=0)
        deviations = x - mean
        m2 = deviations.T @ deviations
        if self.n == 0:
            self.n, self.mean, self.m2 = len(x), mean, m2
            return
        n = self.n + len(x)
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + np.outer(delta, delta) * (self.n * len(x) / n)
        self.mean = self.mean + delta * (len(x) / n)
        self.n = n

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise DcganError(f"feature statistics need at least 2 feature vectors, got {self.n}")
        return self.mean, self.m2 / (self.n - 1)


def fid(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), as in the TTUR reference code."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise DcganError(f"FID: feature sets differ in dimension ({mu1.shape} vs {mu2.shape})")
    from scipy import linalg  # here, not at import: the CLI reads the metric names without it

    diff = mu1 - mu2
    with warnings.catch_warnings():  # the reference code's disp=False: singularity is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        # a singular product (fewer samples than dimensions, dead features): regularise both covariances
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        # round-off gives tiny imaginary parts; large ones mean the estimate is meaningless
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = np.max(np.abs(covmean.imag))
            raise DcganError(
                f"FID: the covariance square root has an imaginary component {worst:.3g}; "
                "use more samples than feature dimensions"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ---------------------------------------------------------------- per class (conditional generators)


def class_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose largest logit is at the requested label."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if len(logits) != len(labels) or not len(labels):
        raise DcganError(f"class accuracy: {len(logits)} predictions for {len(labels)} labels")
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def class_statistics(features: np.ndarray, labels: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """feature_stats of each class with at least 2 members: {label: (mu, sigma)}.

    A class with fewer has no covariance; it is left out (a tiny test split may lack some classes).
    """
    labels = np.asarray(labels)
    present, counts = np.unique(labels, return_counts=True)
    return {int(c): feature_stats(features[labels == c]) for c, k in zip(present, counts) if k >= 2}


def intra_fid(features: np.ndarray, labels: np.ndarray, real: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[float, dict[int, float]]:
    """Mean over the real classes of FID(generated of class c, real of class c), and each class's FID.

    Plain FID only asks whether the mixture of classes looks right; a generator that draws the wrong class
    for a label keeps a low FID but not a low intra-FID.
    """
    labels = np.asarray(labels)
    if not real:
        raise DcganError("intra-FID: no class has 2 or more real images")
    per_class = {}
    for c, (mu, sigma) in real.items():
        mine = features[labels == c]
        if len(mine) < 2:
            raise DcganError(f"intra-FID: {len(mine)} generated image(s) of class {c}; it needs at least 2 per class")
        per_class[c] = fid(*feature_stats(mine), mu, sigma)
    return float(np.mean(list(per_class.values()))), per_class


# ---------------------------------------------------------------- KID


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate with k(a, b) = (a.b / d + 1)^3; x and y have the same size m."""
    m, d = x.shape
    k_xx, k_yy, k_xy = (_cubic_kernel(a, b, d) for a, b in ((x, x), (y, y), (x, y)))
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def _cubic_kernel(a: np.ndarray, b: np.ndarray, d: int) -> np.ndarray:
    k = a @ b.T / d + 1
    return k * k * k  # an order of magnitude faster than k ** 3


def kid(f1, f2, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of MMD^2 over random subsets, drawn without replacement."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise DcganError(f"KID needs at least 2 samples in each set, got {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd2(f1[rng.choice(len(f1), m, replace=False)], f2[rng.choice(len(f2), m, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------- precision / recall


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _distance_batches(queries: np.ndarray, refs: np.ndarray, batch: int = DISTANCE_BATCH):
    """Yield (start, squared distances of queries[start:start+batch] to every ref)."""
    ref_norms = _squared_norms(refs)
    for start in range(0, len(queries), batch):
        q = queries[start : start + batch]
        d2 = _squared_norms(q)[:, None] + ref_norms[None, :] - 2.0 * (q @ refs.T)
        yield start, np.maximum(d2, 0.0)


def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Squared distance of each point to its k-th nearest other point."""
    if len(features) <= k:
        raise DcganError(f"precision/recall with k={k} needs more than {k} samples per set, got {len(features)}")
    radii = np.empty(len(features), features.dtype)
    for start, d2 in _distance_batches(features, features):
        radii[start : start + len(d2)] = np.partition(d2, k, axis=1)[:, k]  # column 0 is the point itself
    return radii


def manifold_coverage(queries: np.ndarray, refs: np.ndarray, ref_radii: np.ndarray) -> float:
    """Share of queries inside at least one reference point's k-NN ball."""
    inside = np.zeros(len(queries), bool)
    for start, d2 in _distance_batches(queries, refs):
        inside[start : start + len(d2)] = (d2 <= ref_radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision (fakes on the real manifold) and recall (reals on the fake manifold)."""
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    precision = manifold_coverage(fake, real, knn_radii(real, k))
    recall = manifold_coverage(real, fake, knn_radii(fake, k))
    return precision, recall


# ---------------------------------------------------------------- memorisation


def nearest_distances(queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """The Euclidean distance from each query to its nearest reference."""
    queries, refs = np.asarray(queries, np.float32), np.asarray(refs, np.float32)
    batch = max(1, 20_000_000 // max(1, len(refs)))  # ~80 MB of distances at a time, whatever the reference count
    out = np.empty(len(queries), np.float32)
    for start, d2 in _distance_batches(queries, refs, batch):
        out[start : start + len(d2)] = np.sqrt(d2.min(axis=1))
    return out


def memorisation(fake, train, test, quantile: float = 0.01) -> tuple[float, float]:
    """(ratio, copies): how near generated images lie to the training images, against unseen real ones.

    FID against a test split cannot see copying: a generator that reproduces its training images
    scores as well as the training set does. Here, in feature space, ratio is the median distance
    from a generated image to its nearest training image over the same median for the test images:
    about 1 when the generator's images are as new as unseen real images, well below 1 when it
    reproduces training images. copies is the share of generated images nearer to a training image
    than all but `quantile` of the test images are: about `quantile` when nothing is copied.
    """
    d_fake, d_test = nearest_distances(fake, train), nearest_distances(test, train)
    if not (len(d_test) and np.median(d_test) > 0):
        raise DcganError("memorisation: the test images lie on training images (the same set twice?)")
    ratio = float(np.median(d_fake) / np.median(d_test))
    return ratio, float(np.mean(d_fake < np.quantile(d_test, quantile)))


# ---------------------------------------------------------------- checkerboard


def grayscale(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 or float -> (N, H, W) float64 luminance."""
    images = np.asarray(images, np.float64)
    if images.ndim == 3:
        return images
    return images[..., 0] if images.shape[-1] == 1 else images[..., :3] @ LUMA


def power_spectrum(images: np.ndarray, batch: int = SPECTRUM_BATCH) -> np.ndarray:
    """Mean centred 2-D power spectrum (H, W) of the images' grayscale, each image's mean removed."""
    spectrum = RunningSpectrum()
    for start in range(0, len(images), batch):
        spectrum.add(images[start : start + batch])
    return spectrum.mean()


class RunningSpectrum:
    """power_spectrum of a stream of image batches, without the (N, H, W) complex FFT of all of them at once.

    The sum runs image by image in order, as numpy's mean over the first axis does, so any batching gives
    the whole-array result bit for bit.
    """

    def __init__(self):
        self.n, self.sum = 0, None

    def add(self, images: np.ndarray) -> None:
        if not len(images):
            return
        gray = grayscale(images)
        gray = gray - gray.mean(axis=(1, 2), keepdims=True)  # the DC term would dwarf everything else
        spectra = np.abs(np.fft.fftshift(np.fft.fft2(gray), axes=(1, 2))) ** 2
        self.sum = spectra.sum(axis=0) if self.sum is None else np.concatenate([self.sum[None], spectra]).sum(axis=0)
        self.n += len(images)

    def mean(self) -> np.ndarray:
        if not self.n:
            raise DcganError("a power spectrum needs at least one image")
        return self.sum / self.n


def radial_profile(spectrum: np.ndarray) -> np.ndarray:
    """Azimuthal average of a centred spectrum: mean power at each integer radius from the centre."""
    h, w = spectrum.shape
    yy, xx = np.indices((h, w))
    r = np.round(np.hypot(yy - h // 2, xx - w // 2)).astype(int)
    sums = np.bincount(r.ravel(), weights=spectrum.ravel())
    counts = np.bincount(r.ravel())
    return sums / np.maximum(counts, 1)


def artifact_mask(h: int, w: int) -> np.ndarray:
    """True on the rows and columns of a centred spectrum at frequencies N/2 and N/4.

    A stride-2 block repeats a 2-pixel pattern (frequency N/2); the block before
    it repeats a 2-pixel pattern at half the resolution, 4 pixels in the output
    (frequency N/4).
    """
    def axis(n):
        freq = np.abs(np.arange(n) - n // 2)  # centred index -> |frequency| in cycles per image
        return np.isin(freq, [n // 2, round(n / 4)])

    rows, cols = axis(h), axis(w)
    return rows[:, None] | cols[None, :]


def artifact_share(spectrum: np.ndarray) -> float:
    """Share of a spectrum's power that lies on the artifact rows and columns."""
    total = spectrum.sum()
    return float(spectrum[artifact_mask(*spectrum.shape)].sum() / total) if total > 0 else 0.0


def checkerboard_score(fake_images, real_images) -> float:
    """Artifact share of generated images over that of real images: 1.0 = no excess."""
    return spectrum_ratio(power_spectrum(fake_images), power_spectrum(real_images))


def spectrum_ratio(fake: np.ndarray, real: np.ndarray) -> float:
    """checkerboard_score from precomputed power spectra (the real one is computed once)."""
    if fake.shape != real.shape:
        raise DcganError(f"checkerboard score: image sizes differ ({fake.shape} vs {real.shape})")
    real_share = artifact_share(real)
    if real_share == 0:
        raise DcganError("checkerboard score: the real images have no spectral power (all constant)")
    return artifact_share(fake) / real_share


# ---------------------------------------------------------------- the artifact lines, as `dcgan inspect` scores them


def line_mask(size: int, freq: int) -> np.ndarray:
    """True on the rows and columns of a centred size x size spectrum at |frequency| = freq."""
    f = np.abs(np.arange(size) - size // 2)
    return (f == freq)[:, None] | (f == freq)[None, :]


def smooth_baseline(spectrum: np.ndarray) -> np.ndarray:
    """The spectrum with each artifact-line pixel replaced by the mean of its nearest neighbours off the lines."""
    mask = artifact_mask(*spectrum.shape)
    known = (~mask).astype(np.float64)
    baseline, todo = spectrum.astype(np.float64).copy(), mask.copy()
    radius = 0
    while todo.any():  # lines never touch for sides >= 8, so radius 1 fills everything there
        radius += 1
        sums, counts = _box_sum(spectrum * known, radius), _box_sum(known, radius)
        fill = todo & (counts > 0)
        baseline[fill] = sums[fill] / counts[fill]
        todo &= ~fill
    return baseline


def _box_sum(a: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)^2 neighbourhood of every pixel, wrapping around: a spectrum is periodic."""
    return sum(np.roll(a, (dy, dx), axis=(0, 1)) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1))


def excess(spectrum: np.ndarray) -> dict[str, float]:
    """Power above the smooth baseline on the N/2 and N/4 lines, as shares of the total power."""
    total = float(spectrum.sum())
    if total <= 0:
        return {"n2": 0.0, "n4": 0.0, "total": 0.0}
    over = spectrum - smooth_baseline(spectrum)
    mask, n2 = artifact_mask(*spectrum.shape), line_mask(spectrum.shape[0], spectrum.shape[0] // 2)
    parts = {"n2": float(over[n2].sum() / total), "n4": float(over[mask & ~n2].sum() / total)}
    return {**parts, "total": parts["n2"] + parts["n4"]}


def line_shares(spectrum: np.ndarray) -> dict[str, float]:
    """Share of the power on the N/2 lines, on the other N/4 lines, and on both (metrics.artifact_share)."""
    total, both = float(spectrum.sum()), artifact_share(spectrum)
    n2 = float(spectrum[line_mask(spectrum.shape[0], spectrum.shape[0] // 2)].sum() / total) if total > 0 else 0.0
    return {"n2": n2, "n4": both - n2, "total": both}


def white_shares(size: int) -> dict[str, float]:
    """line_shares of white noise: the lines' share of the spectrum's pixels."""
    return line_shares(np.ones((size, size)))


def line_profile(spectrum: np.ndarray) -> np.ndarray:
    """Mean power on the rows and columns at each |frequency| 0..S/2: the lines the score reads, as a curve."""
    size = spectrum.shape[0]
    return np.array([spectrum[line_mask(size, f)].mean() for f in range(size // 2 + 1)])


def shares_profile(spectrum: np.ndarray) -> np.ndarray:
    """line_profile of the spectrum as shares of its total power: maps of any scale on one axis, as the score reads them."""
    total = spectrum.sum()
    return line_profile(spectrum / total if total > 0 else spectrum)
