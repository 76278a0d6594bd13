"""Per-tag breakdowns equal the per-group calls; family correction equals adjust_pvalues."""

import csv
import io

import numpy as np
import pytest

from interp import stats as S

TAGS = np.array(["colors", "counting", "position", "single_object", "two_object"])


def _data(seed: int = 0, n: int = 100):
    rng = np.random.default_rng(seed)
    tags = TAGS[rng.integers(0, TAGS.size, size=n)]
    base = rng.normal(size=n)
    edited = base + rng.normal(0.2, 1.0, size=n) + (tags == "counting") * 0.8
    return tags, edited, base


def test_rows_equal_direct_calls_on_each_group():
    tags, edited, base = _data()
    rows = S.by_group(tags, S.paired_ttest, edited, base, alternative="greater")
    assert [r.group for r in rows] == sorted(set(tags.tolist()))
    for r in rows:
        m = tags == r.group
        assert r.n == int(m.sum())
        assert r.result == S.paired_ttest(edited[m], base[m], alternative="greater")
        assert isinstance(r.group, str)


def test_family_correction_and_overall_row():
    tags, edited, base = _data(1)
    rows = S.by_group(tags, S.paired_ttest, edited, base, adjust="bh", overall=True)
    per_tag = rows[:-1]
    adj = S.adjust_pvalues([r.result.pvalue for r in per_tag], "bh")
    assert tuple(r.pvalue_adjusted for r in per_tag) == adj.adjusted
    assert rows[-1].group == "all" and rows[-1].n == tags.size and rows[-1].pvalue_adjusted is None
    assert rows[-1].result == S.paired_ttest(edited, base)


def test_nested_results_split_keywords_and_records():
    rng = np.random.default_rng(2)
    prompts = np.repeat(np.arange(40), 3)
    tags = TAGS[prompts % TAGS.size]
    sink, control = rng.normal(0.3, 1, size=120), rng.normal(0, 1, size=120)
    rows = S.by_group(
        tags,
        S.difference_of_differences,
        sink,
        control,
        split={"clusters": prompts},
        adjust="holm",
        n_resamples=200,
    )
    for r in rows:
        m = tags == r.group
        direct = S.difference_of_differences(sink[m], control[m], clusters=prompts[m], n_resamples=200)
        assert r.result == direct and r.result.n_clusters == 8
    adj = S.adjust_pvalues([S.result_pvalue(r.result) for r in rows], "holm")
    assert tuple(r.pvalue_adjusted for r in rows) == adj.adjusted
    records = S.to_records(rows)
    assert records[0]["group"] == rows[0].group and records[0]["n_rows"] == 24
    assert records[0]["ttest.pvalue"] == rows[0].result.ttest.pvalue
    assert records[0]["ci.low"] == rows[0].result.ci.low and records[0]["ratio"] is None
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    assert len(buf.getvalue().splitlines()) == 1 + len(rows)


def test_two_dimensional_arrays_are_split_by_row():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(30, 3))
    groups = np.arange(30) % 2
    rows = S.by_group(groups, S.dose_trend, y, budgets=[1, 10, 100], n_resamples=100)
    assert [r.group for r in rows] == [0, 1]
    assert rows[1].result == S.dose_trend(y[1::2], [1, 10, 100], n_resamples=100)


def test_errors_name_the_group_or_are_recorded():
    tags, edited, base = _data(4)
    tags[0] = "rare"
    with pytest.raises(ValueError, match="group 'rare'"):
        S.by_group(tags, S.paired_ttest, edited, base)
    rows = S.by_group(tags, S.paired_ttest, edited, base, skip_errors=True, adjust="holm")
    rare = [r for r in rows if r.group == "rare"][0]
    assert rare.result is None and "at least 2" in rare.error and rare.pvalue_adjusted is None
    assert all(r.pvalue_adjusted is not None for r in rows if r.group != "rare")
    with pytest.raises(ValueError, match="rows but groups has"):
        S.by_group(tags[:-1], S.paired_ttest, edited, base)
