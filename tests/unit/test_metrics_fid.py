"""FID_shift / KID: per-image Inception features from a fabricated torch-fidelity checkpoint, FID and
KID from stored features equal to torchmetrics on images and to the formulas written with scipy/numpy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "metrics"))

import metric_helpers as helpers  # noqa: E402

from interp.metrics import MetricSettings, fid_from_features, kid_from_features, load_metric  # noqa: E402
from interp.metrics.fid import kid_subset_size  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("inception")
    path = helpers.write_inception(root, seed=5)
    return MetricSettings(weights_dir=root, device="cpu", batch_size=4), path


def _images(n, seed, size=(64, 48)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def _fid_scipy(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_from_features_matches_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 8))
    b = rng.normal(loc=0.3, scale=1.2, size=(50, 8))
    assert fid_from_features(a, b) == pytest.approx(_fid_scipy(a, b), rel=1e-8)
    assert abs(fid_from_features(a, a)) < 1e-9
    with pytest.raises(ValueError, match="n_images >= 2"):
        fid_from_features(a[:1], b)


def test_kid_from_features_matches_unbiased_mmd():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(12, 6)), rng.normal(loc=0.5, size=(10, 6))
    out = kid_from_features(a, b, subsets=1, subset_size=10)
    assert out["subset_size"] == 10
    # With one subset of every row of b and a permutation subset of a, compute the same estimator by hand.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ia = torch.randperm(12)[:10].numpy()
        ib = torch.randperm(10)[:10].numpy()
    x, y = a[ia], b[ib]
    d = a.shape[1]
    k = lambda u, v: (u @ v.T / d + 1.0) ** 3  # noqa: E731 - torchmetrics' polynomial kernel
    m = 10
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.sum() / m**2
    assert out["kid_mean"] == pytest.approx(mmd, rel=1e-8)
    assert kid_subset_size(300, 250) == 250 and kid_subset_size(5000, 4000) == 1000
    assert kid_subset_size(300, 250, 100) == 100


def test_features_and_fid_shift(setup):
    settings, path = setup
    metric = load_metric("inception", settings)
    a, b = _images(3, 0), _images(3, 1, size=(40, 40))
    fa, fb = metric.features(a), metric.features(b)
    assert fa.shape == (3, 2048) and fa.dtype == np.float32
    assert fa.std() > 1e-3  # not collapsed
    # two sizes in one call, other batches: each row is the image's own features, in input order
    mixed = metric.score([b[0], a[1], b[2]])["inception_pool3"]
    np.testing.assert_allclose(mixed, np.stack([fb[0], fa[1], fb[2]]), rtol=1e-5, atol=1e-6)
    assert abs(metric.fid_kid(fa, fa)["fid"]) < 1e-6 * max(1.0, float(fa.var(0).sum()))  # FID_shift(x, x) ~ 0
    # stored-features path == torchmetrics' FrechetInceptionDistance run on the images
    from torchmetrics.image.fid import FrechetInceptionDistance

    tm = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path), antialias=True)

    def batch(ims):
        return torch.from_numpy(np.stack([np.asarray(im) for im in ims])).permute(0, 3, 1, 2).contiguous()

    tm.update(batch(a), real=True)
    tm.update(batch(b), real=False)
    both = metric.fid_kid(fa, fb)
    assert both["fid"] == pytest.approx(float(tm.compute()), rel=1e-4, abs=1e-9)
    assert both["subset_size"] == 3 and both["kid_std"] >= 0


def test_antialias_setting_is_applied_and_recorded(setup):
    settings, _ = setup
    on = load_metric("inception", settings.replace(fid_antialias=True))
    off = load_metric("inception", settings.replace(fid_antialias=False))
    ims = _images(2, 3, size=(200, 150))
    assert np.abs(on.features(ims) - off.features(ims)).max() > 1e-6
    info = off.version_info()
    assert info["settings"]["fid_antialias"] is False
    assert json.loads(json.dumps(info)) == info
    assert info["kind"] == "features"


@pytest.mark.parametrize(("n_a", "n_b", "dim"), [(30, 25, 64), (80, 70, 16)])
def test_lowrank_fid_equals_torchmetrics(n_a, n_b, dim):
    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(loc=0.2, size=(n_b, dim)) @ rng.normal(size=(dim, dim))
    ref = fid_from_features(a, b)
    assert fid_from_features(a, b, method="lowrank") == pytest.approx(ref, rel=1e-7)
    assert abs(fid_from_features(a, a, method="lowrank")) < 1e-9 * float(a.var(0).sum())
    with pytest.raises(ValueError, match="method"):
        fid_from_features(a, b, method="nope")
