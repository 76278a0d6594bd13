"""FID in SVD form against torchmetrics (interp.metrics) and the textbook sqrtm formula."""

import numpy as np
import pytest
from scipy import linalg

from interp.analysis.fid import fid


def textbook(a, b):
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sa @ sb).real
    return float(np.sum((ma - mb) ** 2) + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean))


@pytest.mark.parametrize(("n", "m", "d"), [(30, 25, 8), (12, 40, 64), (50, 50, 10)])
def test_fid_matches_textbook_formula(n, m, d):
    rng = np.random.default_rng(n + d)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(m, d)) * 1.3 + 0.4
    assert fid(a, b) == pytest.approx(textbook(a, b), rel=1e-6)


def test_fid_matches_torchmetrics():
    metrics = pytest.importorskip("interp.metrics")
    pytest.importorskip("torchmetrics")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 64))
    b = rng.normal(size=(35, 64)) * 1.2 + 0.1
    assert fid(a, b) == pytest.approx(metrics.fid_from_features(a, b), rel=1e-6)


def test_fid_properties():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 5))
    b = rng.normal(size=(20, 5)) + 1.0
    assert fid(a, a) == pytest.approx(0.0, abs=1e-9)
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        fid(a[:1], b)
