"""``interp analyze`` on incomplete stores: done/pending per condition, refusal, ``--partial`` marks outputs.

The stores are the synthetic fixture with some ``done`` flags cleared, as a stopped sweep leaves them;
the counts are checked against a brute-force count of the flags.
"""

from collections import Counter

import numpy as np
import pytest
import zarr
from PIL import Image

from interp.analysis.cli import main
from interp.analysis.completeness import IncompleteStore, completeness, require_complete
from tests.fixtures.analysis_store import default_conditions, synthetic_store

KEEP = {"baseline", "noop_kernel", "sink_k1", "random_k1"}


def _store(path, done_rows):
    """The synthetic store with only the samples ``done_rows`` (a function of the row index) done."""
    synthetic_store(path, n_prompts=4, conditions=[c for c in default_conditions() if c.name in KEEP])
    group = zarr.open_group(str(path), mode="r+")
    done = np.array([bool(done_rows(i)) for i in range(group["done"].shape[0])])
    group["done"][:] = done
    return path, done


def test_counts_per_condition_match_the_done_flags(tmp_path):
    path, done = _store(tmp_path / "s.zarr", lambda i: i % 3 == 0)
    state = completeness(path)
    names = [str(c) for c in zarr.open_group(str(path), mode="r")["condition"][:]]
    want_total, want_done = Counter(names), Counter(n for n, d in zip(names, done, strict=True) if d)
    assert [c.name for c in state.conditions] == list(dict.fromkeys(names))
    for c in state.conditions:
        assert (c.done, c.total) == (want_done[c.name], want_total[c.name])
    assert (state.done, state.total, state.complete) == (int(done.sum()), done.size, False)
    with pytest.raises(IncompleteStore, match="pending"):
        require_complete(state, partial=False)
    require_complete(state, partial=True)


def test_a_store_with_no_done_sample_is_refused_even_with_partial(tmp_path, capsys):
    path, done = _store(tmp_path / "s.zarr", lambda i: False)
    for extra in ([], ["--partial"]):
        assert main([str(path), "--out", str(tmp_path / "out"), "--only", "table17", *extra]) == 2
        err = capsys.readouterr().err
        assert f"has no done sample yet (0 of {done.size}: baseline 0/4 done, noop_kernel 0/4 done" in err
        assert "lacks condition" not in err and len(err.strip().splitlines()) == 1


def test_a_partial_store_is_refused_then_analysed_with_every_output_marked(tmp_path, capsys):
    path, done = _store(tmp_path / "s.zarr", lambda i: i < 8)  # prompts 0 and 1 of every condition
    out = tmp_path / "out"
    args = [str(path), "--out", str(out), "--only", "table17", "table8", "--resamples", "99"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert f"8 of {done.size} samples done, {done.size - 8} pending (baseline 2/4 done" in captured.out
    assert "pass --partial" in captured.err and not (out / "table17_noop.md").exists()
    assert main([*args, "--partial"]) == 0
    printed = capsys.readouterr().out
    assert f"PARTIAL: {done.size - 8} of {done.size} samples pending" in printed
    tables = sorted(out.glob("*.md"))
    assert {p.name for p in tables} >= {"table17_noop.md", "table08_summary.md", "index.md"}
    for md in tables:
        text = md.read_text()
        assert f"only 8 of {done.size} samples of the store were done" in text, md.name
        if md.name != "index.md":
            assert text.startswith(f"## PARTIAL (8 of {done.size} samples done): Table"), md.name
    figures = sorted(out.glob("*.png"))
    assert figures
    for png in figures:
        with Image.open(png) as img:
            assert img.text["interp_partial"].startswith(f"PARTIAL: 8 of {done.size} samples done"), png.name


def test_a_complete_store_is_not_marked(tmp_path, capsys):
    path, done = _store(tmp_path / "s.zarr", lambda i: True)
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--only", "table17", "--resamples", "99"]) == 0
    assert f"{done.size} of {done.size} samples done, 0 pending" in capsys.readouterr().out
    assert (out / "table17_noop.md").read_text().startswith("## Table 17")
    assert "PARTIAL" not in (out / "index.md").read_text()


def test_a_store_without_samples_is_refused(tmp_path, capsys):
    path = tmp_path / "empty.zarr"
    zarr.open_group(str(path), mode="w")
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"store {path} holds no samples; nothing to analyse" in capsys.readouterr().err
