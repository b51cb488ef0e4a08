import numpy as np
import pytest
from scipy import linalg

from dcgan.evaluation import metrics
from dcgan.core.errors import DcganError
from helpers import blob_images


def _gaussian(rng, n, mean, cov):
    return rng.multivariate_normal(mean, cov, size=n)


def _closed_form(mu1, s1, mu2, s2):
    root = linalg.sqrtm(linalg.sqrtm(s1) @ s2 @ linalg.sqrtm(s1)).real  # the symmetric form
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 8))
    mu, sigma = metrics.feature_stats(x)
    assert abs(metrics.fid(mu, sigma, mu, sigma)) < 1e-6


def test_fid_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + np.eye(4), np.diag([0.5, 1.0, 2.0, 3.0])
    mu1, mu2 = np.zeros(4), np.array([1.0, -2.0, 0.5, 0.0])
    exact = _closed_form(mu1, s1, mu2, s2)
    # the formula itself, on the true parameters
    assert metrics.fid(mu1, s1, mu2, s2) == pytest.approx(exact, rel=1e-8)
    # diagonal covariances: sum (sqrt a - sqrt b)^2 + |mu1 - mu2|^2
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    assert metrics.fid(np.zeros(3), np.diag(d1), np.ones(3), np.diag(d2)) == pytest.approx(3 + 1 + 0 + 4)
    # and estimated from samples
    x, y = _gaussian(rng, 40000, mu1, s1), _gaussian(rng, 40000, mu2, s2)
    assert metrics.fid(*metrics.feature_stats(x), *metrics.feature_stats(y)) == pytest.approx(exact, rel=0.03)


def test_fid_survives_singular_covariances():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 20)), rng.normal(size=(5, 20))  # rank 4 covariances in 20 dims
    value = metrics.fid(*metrics.feature_stats(x), *metrics.feature_stats(y))
    assert np.isfinite(value) and value > 0


def test_kid_is_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, same_std = metrics.kid(x, y, subsets=10, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    shifts = [metrics.kid(x, y + s, subsets=10, subset_size=200)[0] for s in (0.25, 0.5, 1.0)]
    assert shifts[0] > abs(same) + 3 * same_std
    assert shifts[0] < shifts[1] < shifts[2]


def test_kid_is_unbiased_mmd_with_the_cubic_kernel():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) + 1

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    m = 5
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert metrics.polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy)
    # subsets of the whole sets (size min(1000, n)): every subset is the full set
    mean, std = metrics.kid(x, y, subsets=3)
    assert mean == pytest.approx(xx + yy - 2 * xy) and std == pytest.approx(0, abs=1e-9)


def _cloud(rng, centre, n):
    return rng.normal(size=(n, 2)) * 0.1 + np.asarray(centre, float)


def test_precision_recall_on_point_clouds():
    rng = np.random.default_rng(5)
    real = np.concatenate([_cloud(rng, (0, 0), 200), _cloud(rng, (10, 0), 200)])
    # the generator covers both modes: precision and recall near 1
    good = np.concatenate([_cloud(rng, (0, 0), 200), _cloud(rng, (10, 0), 200)])
    p, r = metrics.precision_recall(real, good)
    assert p > 0.9 and r > 0.9
    # mode dropping: every sample is realistic (precision ~1) but half the data is missed (recall ~0.5)
    dropped = _cloud(rng, (0, 0), 400)
    p, r = metrics.precision_recall(real, dropped)
    assert p > 0.9 and r == pytest.approx(0.5, abs=0.05)
    # half the samples off the data: precision ~0.5, the off-data cloud covers no real point
    half = np.concatenate([_cloud(rng, (0, 0), 200), _cloud(rng, (10, 0), 100), _cloud(rng, (0, 50), 100)])
    p, r = metrics.precision_recall(real, half)
    assert p == pytest.approx(0.75, abs=0.05) and r > 0.85
    # nothing near the data at all
    assert metrics.precision_recall(real, _cloud(rng, (100, 100), 400)) == (0.0, 0.0)


def test_precision_recall_exact_radii_and_batching(monkeypatch):
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    # k = 1: each point's radius is the distance to its nearest other point
    np.testing.assert_allclose(metrics.knn_radii(real.astype(np.float32), k=1), [1, 1, 1, 1, 49])
    fake = np.array([[0.5], [5.0], [20.0]])
    monkeypatch.setattr(metrics, "DISTANCE_BATCH", 2)  # results must not depend on the batch size
    p, r = metrics.precision_recall(real, fake, k=1)
    # 0.5 is inside the unit balls; 5 is inside 10's ball of radius 7; 20 is outside everything
    assert p == pytest.approx(2 / 3)
    with pytest.raises(DcganError, match="k=3 needs more than 3 samples"):
        metrics.precision_recall(real[:3], fake)


def test_checkerboard_score_flags_a_planted_stride_2_pattern():
    # two samples of smooth images (discs): no excess power at the artifact frequencies
    real, fake = blob_images(200, seed=1), blob_images(200, seed=2)
    assert metrics.checkerboard_score(fake, real) == pytest.approx(1.0, abs=0.1)
    yy, xx = np.mgrid[:28, :28]
    board = np.where((yy + xx) % 2 == 0, 12.0, -12.0)[None, ..., None]  # +-12 of 255: faint to the eye
    # scaled and lifted off 0 so clipping does not eat half of the pattern (the score ignores both)
    planted = np.clip(fake * 0.9 + 20 + board, 0, 255).astype(np.uint8)
    assert metrics.checkerboard_score(fake * 0.9 + 20, real) == pytest.approx(metrics.checkerboard_score(fake, real), abs=0.01)
    assert metrics.checkerboard_score(planted, real) > 2
    # RGB images are scored on their luminance; the N/4 frequency (4-pixel period) counts too
    stripes = np.where((xx // 2) % 2 == 0, 12.0, -12.0)[None, ..., None]
    rgb_fake = np.repeat(np.clip(fake * 0.9 + 20 + stripes, 0, 255).astype(np.uint8), 3, axis=-1)
    assert metrics.checkerboard_score(rgb_fake, np.repeat(real, 3, axis=-1)) > 2


def test_radial_profile_and_power_spectrum():
    spectrum = np.zeros((9, 9))
    spectrum[4, 4 + 3] = spectrum[4 - 3, 4] = 8.0  # two points at radius 3
    profile = metrics.radial_profile(spectrum)
    ring = np.round(np.hypot(*(np.indices((9, 9)) - 4))) == 3
    assert profile[3] == pytest.approx(16.0 / ring.sum()) and profile[:3].sum() == 0
    # a pure cosine at 7 cycles per image puts all its power at the +-7 columns of the centre row
    x = np.arange(28)
    wave = np.tile(np.cos(2 * np.pi * 7 * x / 28), (28, 1))[None, ..., None]
    power = metrics.power_spectrum(wave)
    assert set(zip(*np.nonzero(power > 1e-6))) == {(14, 7), (14, 21)}
    assert metrics.artifact_share(power) == pytest.approx(1.0)


# ---------------------------------------------------------------- per class


def test_class_accuracy_is_the_share_of_argmax_hits():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert metrics.class_accuracy(logits, [0, 1, 1, 1]) == 0.75
    assert metrics.class_accuracy(logits, [1, 0, 0, 0]) == 0.25  # two classes, every label flipped: the complement
    with pytest.raises(DcganError, match="class accuracy: 4 predictions for 3 labels"):
        metrics.class_accuracy(logits, [0, 1, 1])


def test_intra_fid_sees_classes_swapped_that_plain_fid_misses():
    rng = np.random.default_rng(3)
    centres = {0: np.zeros(4), 1: np.full(4, 3.0)}
    labels = np.repeat([0, 1], 2000)
    real = np.concatenate([_gaussian(rng, 2000, centres[c], np.eye(4)) for c in (0, 1)])
    fake = np.concatenate([_gaussian(rng, 2000, centres[c], np.eye(4)) for c in (0, 1)])
    stats = metrics.class_statistics(real, labels)
    right, per_class = metrics.intra_fid(fake, labels, stats)
    assert set(per_class) == {0, 1} and right == pytest.approx(np.mean(list(per_class.values())))
    assert right < 0.05
    # each label drawn as the other class: the mixture (plain FID) is unchanged, intra-FID is |3 - 0|^2 * 4 = 36
    wrong, _ = metrics.intra_fid(fake, 1 - labels, stats)
    assert wrong == pytest.approx(36, rel=0.1)
    assert metrics.fid(*metrics.feature_stats(fake), *metrics.feature_stats(real)) < 0.05


def test_intra_fid_scores_the_classes_the_real_set_has():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(7, 3))
    stats = metrics.class_statistics(real, [0, 0, 0, 1, 1, 1, 2])  # class 2: one image, no covariance
    assert set(stats) == {0, 1}
    value, per_class = metrics.intra_fid(rng.normal(size=(9, 3)), [0, 1, 2] * 3, stats)
    assert set(per_class) == {0, 1} and np.isfinite(value)
    with pytest.raises(DcganError, match="intra-FID: 1 generated image\\(s\\) of class 1; it needs at least 2 per class"):
        metrics.intra_fid(rng.normal(size=(3, 3)), [0, 0, 1], stats)
    with pytest.raises(DcganError, match="intra-FID: no class has 2 or more real images"):
        metrics.intra_fid(real, [0] * 7, {})


def test_memorisation_tells_copies_from_new_samples():
    rng = np.random.default_rng(0)
    train, test, fresh = (rng.standard_normal((n, 8)).astype(np.float32) for n in (300, 2000, 2000))
    d = metrics.nearest_distances(train[:5] + 0.5, train)
    assert d == pytest.approx([np.linalg.norm(train - q, axis=1).min() for q in train[:5] + 0.5], rel=1e-4)
    ratio, copies = metrics.memorisation(fresh, train, test)  # drawn like the test images: as new as they are
    assert ratio == pytest.approx(1.0, abs=0.05) and copies < 0.03
    ratio, copies = metrics.memorisation(train[rng.integers(0, 300, 500)] + 1e-3, train, test)  # near-copies
    assert ratio < 0.01 and copies == 1.0
    with pytest.raises(DcganError, match="the test images lie on training images"):
        metrics.memorisation(fresh, train, train)
