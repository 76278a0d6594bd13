"""Coverage simulation: 95% intervals cover a known mean in about 95% of repetitions.

Data: 50 normal pairs, true mean difference 0.3. The t interval is exact here (coverage 0.95);
the bootstrap intervals are slightly narrow at n = 50 (a percentile interval is about
mean -/+ 1.96 * s * sqrt(49/50) / sqrt(50), expected coverage P(|T_49| < 1.94) = 0.942).

Default run: 300 repetitions per procedure, accepted band [0.91, 0.985] (binomial sd at 300 reps
about 0.013, so at least 2.4 sd on each side of 0.942-0.95). Slow run: 2000 repetitions, band
[0.925, 0.968] (sd about 0.005: at least 3.3 sd on each side).
"""

import numpy as np
import pytest

from interp import stats as S

TRUE_MEAN = 0.3


def _paired_sample(n: int):
    def sample(rng):
        base = rng.normal(0.0, 1.0, size=n)
        return base + TRUE_MEAN + rng.normal(0.0, 0.8, size=n), base

    return sample


PROCEDURES = {
    "t": lambda data, seed: S.mean_difference(*data),
    "percentile": lambda data, seed: S.paired_bootstrap_ci(*data, method="percentile", n_resamples=999, seed=seed),
    "bca": lambda data, seed: S.paired_bootstrap_ci(*data, method="bca", n_resamples=999, seed=seed),
}


@pytest.mark.parametrize("name", list(PROCEDURES))
def test_95_percent_intervals_cover_the_true_mean(name):
    res = S.simulate_coverage(PROCEDURES[name], _paired_sample(50), TRUE_MEAN, n_reps=300, seed=2024)
    assert res.n_reps == 300
    assert 0.91 <= res.rate <= 0.985, res


def test_a_biased_procedure_fails_the_band():
    """The check can fail: an interval centred 0.15 away from the truth under-covers badly."""

    def shifted(data, seed):
        md = S.mean_difference(*data)
        return md.low + 0.15, md.high + 0.15

    res = S.simulate_coverage(shifted, _paired_sample(50), TRUE_MEAN, n_reps=300, seed=2024)
    assert res.rate < 0.85


def test_simulation_is_reproducible():
    a = S.simulate_coverage(PROCEDURES["percentile"], _paired_sample(20), TRUE_MEAN, n_reps=30, seed=5)
    b = S.simulate_coverage(PROCEDURES["percentile"], _paired_sample(20), TRUE_MEAN, n_reps=30, seed=5)
    assert a == b
    assert a.rate_low <= a.rate <= a.rate_high
    with pytest.raises(ValueError, match="n_reps"):
        S.simulate_coverage(PROCEDURES["t"], _paired_sample(5), 0.0, n_reps=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROCEDURES))
def test_coverage_large(name):
    res = S.simulate_coverage(PROCEDURES[name], _paired_sample(50), TRUE_MEAN, n_reps=2000, seed=7)
    assert 0.925 <= res.rate <= 0.968, res


@pytest.mark.slow
def test_clustered_coverage_large():
    def sample(rng):
        effect = rng.normal(TRUE_MEAN, 1.0, size=40)
        return np.repeat(effect, 3) + rng.normal(0, 0.5, size=120), np.repeat(np.arange(40), 3)

    def clustered(data, seed):
        return S.cluster_bootstrap_ci(data[0], data[1], method="bca", n_resamples=999, seed=seed)

    # 40 prompts: expected coverage about P(|T_39| < 1.96 * sqrt(39/40)) = 0.940; 4000 reps, sd 0.004
    res = S.simulate_coverage(clustered, sample, TRUE_MEAN, n_reps=4000, seed=8)
    assert 0.925 <= res.rate <= 0.968, res
