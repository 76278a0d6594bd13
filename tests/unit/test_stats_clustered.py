"""Prompt-clustered bootstrap: brute-force reference, scipy equivalence with one seed per prompt, coverage."""

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import ndtr, ndtri

from interp import stats as S


def _clustered(seed: int, n_prompts: int = 25, seeds_per_prompt: int = 4, ragged: bool = False):
    """Per-(prompt, seed) differences with a shared prompt effect; labels are strings, shuffled order."""
    rng = np.random.default_rng(seed)
    if ragged:
        sizes = rng.integers(1, 2 * seeds_per_prompt, size=n_prompts)
    else:
        sizes = np.full(n_prompts, seeds_per_prompt)
    labels = np.concatenate([[f"p{i:03d}"] * s for i, s in enumerate(sizes)])
    effect = rng.normal(0.2, 1.0, size=n_prompts)
    codes = np.repeat(np.arange(n_prompts), sizes)
    values = effect[codes] + rng.normal(0, 0.5, size=codes.size)
    order = rng.permutation(codes.size)
    return values[order], labels[order]


def _brute_force(values, labels, statistic, n_resamples, seed, level, method):
    """Loop-by-loop reference: draw prompts, concatenate all their seeds, recompute the statistic."""
    uniq = list(dict.fromkeys(labels.tolist()))  # first-appearance order
    groups = [values[labels == u] for u in uniq]
    g = len(groups)
    idx = np.random.default_rng(seed).integers(0, g, size=(n_resamples, g))
    theta = np.array([statistic(np.concatenate([groups[c] for c in row])) for row in idx])
    theta_hat = statistic(values)
    alpha = (1 - level) / 2
    if method == "percentile":
        probs = [alpha, 1 - alpha]
    else:
        p = (np.sum(theta < theta_hat) + np.sum(theta <= theta_hat)) / (2 * n_resamples)
        z0 = ndtri(p)
        jack = np.array([statistic(np.concatenate(groups[:c] + groups[c + 1 :])) for c in range(g)])
        u = (g - 1) * (jack.mean() - jack)
        a = np.sum(u**3) / (6 * np.sum(u**2) ** 1.5)
        probs = [ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in ndtri([alpha, 1 - alpha])]
    return np.percentile(theta, 100 * np.asarray(probs))


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("ragged", [False, True])
def test_matches_brute_force_reference(method, ragged):
    values, labels = _clustered(0, ragged=ragged)
    ours = S.cluster_bootstrap_ci(values, labels, method=method, n_resamples=600, seed=42)
    ref = _brute_force(values, labels, np.mean, 600, 42, 0.95, method)
    assert (ours.low, ours.high) == pytest.approx(tuple(ref), rel=1e-10)
    assert ours.n == values.size and ours.n_clusters == 25


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_callable_statistic_matches_brute_force(method):
    values, labels = _clustered(1, n_prompts=15, ragged=True)
    ours = S.cluster_bootstrap_ci(values, labels, statistic=np.median, method=method, n_resamples=300, seed=3)
    ref = _brute_force(values, labels, np.median, 300, 3, 0.95, method)
    assert (ours.low, ours.high) == pytest.approx(tuple(ref), rel=1e-10)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_one_seed_per_prompt_equals_scipy_bootstrap(method):
    """With singleton clusters the clustered bootstrap is the ordinary one, draw for draw."""
    rng = np.random.default_rng(2)
    d = rng.normal(0.1, 1.0, size=50)
    ours = S.cluster_bootstrap_ci(d, np.arange(50), method=method, n_resamples=2000, seed=17)
    ref = sps.bootstrap(
        (d,),
        np.mean,
        method="BCa" if method == "bca" else "percentile",
        n_resamples=2000,
        rng=np.random.default_rng(17),
    )
    assert ours.low == pytest.approx(float(ref.confidence_interval.low), rel=1e-12)
    assert ours.high == pytest.approx(float(ref.confidence_interval.high), rel=1e-12)
    # and the paired entry point routes clusters there
    base = rng.normal(size=50)
    via_paired = S.paired_bootstrap_ci(base + d, base, clusters=np.arange(50), method=method, n_resamples=2000, seed=17)
    assert via_paired.low == pytest.approx(ours.low, abs=1e-12)


def test_duplicated_seeds_equal_singleton_bootstrap_of_prompt_values():
    """A prompt whose m seeds are identical copies carries no more information than one seed."""
    v = np.random.default_rng(3).normal(size=20)
    labels = np.repeat(np.arange(20), 3)
    dup = S.cluster_bootstrap_ci(np.repeat(v, 3), labels, n_resamples=500, seed=1)
    one = S.cluster_bootstrap_ci(v, np.arange(20), n_resamples=500, seed=1)
    assert (dup.low, dup.high) == pytest.approx((one.low, one.high), rel=1e-12)
    assert dup.n == 60 and dup.n_clusters == 20


def test_pooled_and_cluster_mean_agree_for_balanced_and_differ_for_ragged():
    values, labels = _clustered(4)
    a = S.cluster_bootstrap_ci(values, labels, statistic="mean", n_resamples=400, seed=2)
    b = S.cluster_bootstrap_ci(values, labels, statistic="cluster_mean", n_resamples=400, seed=2)
    assert (a.low, a.high) == pytest.approx((b.low, b.high), rel=1e-10)
    values, labels = _clustered(4, ragged=True)
    a = S.cluster_bootstrap_ci(values, labels, statistic="mean", n_resamples=400, seed=2)
    b = S.cluster_bootstrap_ci(values, labels, statistic="cluster_mean", n_resamples=400, seed=2)
    means, _ = S.cluster_means(values, labels)
    assert b.estimate == pytest.approx(means.mean()) and a.estimate == pytest.approx(values.mean())
    assert a.estimate != pytest.approx(b.estimate)


def test_cluster_order_is_first_appearance_and_means_are_right():
    values = np.array([1.0, 2.0, 3.0, 5.0, 7.0])
    labels = np.array(["b", "a", "b", "c", "a"])
    means, uniq = S.cluster_means(values, labels)
    assert uniq.tolist() == ["b", "a", "c"]
    assert means.tolist() == [2.0, 4.5, 5.0]


def test_seeded_reproduction_and_nan_handling():
    values, labels = _clustered(5)
    a = S.cluster_bootstrap_ci(values, labels, n_resamples=300, seed=9)
    assert a == S.cluster_bootstrap_ci(values, labels, n_resamples=300, seed=9)
    assert a != S.cluster_bootstrap_ci(values, labels, n_resamples=300, seed=10)
    with_nan = values.copy()
    with_nan[[0, 5]] = np.nan
    keep = ~np.isnan(with_nan)
    b = S.cluster_bootstrap_ci(with_nan, labels, n_resamples=300, seed=9)
    assert b == S.cluster_bootstrap_ci(values[keep], labels[keep], n_resamples=300, seed=9)
    with pytest.raises(ValueError, match="at least 2"):
        S.cluster_bootstrap_ci(values, np.zeros(values.size), n_resamples=10)


def test_clustered_covers_where_observation_bootstrap_does_not():
    """Correlated seeds: resampling prompts keeps ~95% coverage, resampling seeds does not.

    200 repetitions of 30 prompts x 4 seeds (prompt sd 1, seed sd 0.5: intra-prompt correlation
    0.8, design effect 3.4). Accepted: clustered percentile CI coverage in [0.89, 0.99];
    observation-level CI coverage < 0.85 (its expected coverage is about 0.72).
    """
    truth = 0.2

    def sample(rng):
        effect = rng.normal(truth, 1.0, size=30)
        return np.repeat(effect, 4) + rng.normal(0, 0.5, size=120), np.repeat(np.arange(30), 4)

    def clustered(data, seed):
        return S.cluster_bootstrap_ci(data[0], data[1], method="percentile", n_resamples=499, seed=seed)

    def naive(data, seed):
        return S.cluster_bootstrap_ci(data[0], np.arange(data[0].size), method="percentile", n_resamples=499, seed=seed)

    cov_c = S.simulate_coverage(clustered, sample, truth, n_reps=200, seed=1)
    cov_n = S.simulate_coverage(naive, sample, truth, n_reps=200, seed=1)
    assert 0.89 <= cov_c.rate <= 0.99, cov_c
    assert cov_n.rate < 0.85, cov_n
    assert cov_c.mean_width > 1.5 * cov_n.mean_width
