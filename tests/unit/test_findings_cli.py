"""``interp findings``: the page, its figures and its distances from the committed CPU study tables.

Checks: the command writes the page and the figures it references (relative paths that resolve, real
PNGs), the latent distance is the brute-force RMS of the organism's final latents (its pixels in
[-1, 1]) and the sink / control latent ratio is the ratio of those means, a model without pixel
latents gets no latent column and a stated reason, LPIPS is skipped with the reason when its weights
are absent and, with weights (a random-weight AlexNet from the metric tests' fixture), is the metric's
own score of each unit's (edited, baseline) pair, with the sink / control ratio of those means; figures
are drawn only from results that hold their data, and user errors are one line with status 2.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from interp.analysis.findings import compute
from interp.analysis.findings_distances import final_latents, latent_distance
from interp.analysis.findings_figures import CLASSES, FOREST, RATIO, write_figures
from interp.analysis.findings_page import render
from interp.analysis.study_effects import Method, complete_units, load_study
from interp.cli import EXIT_OK, EXIT_USAGE, main
from interp.metrics import MetricSettings, load_metric

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "metrics"))
import metric_helpers as helpers  # noqa: E402

TABLES = Path(__file__).resolve().parents[2] / "traces" / "study" / "tables_cpu.npz"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study():
    return load_study([TABLES])


@pytest.fixture(scope="module")
def results(study):
    return compute(study, Method(n_resamples=99), lpips=False)


def test_command_writes_the_page_and_its_figures(tmp_path, capsys):
    out = tmp_path / "docs" / "findings.md"
    out.parent.mkdir()
    argv = ["findings", str(TABLES), "--out", str(out), "--resamples", "99", "--no-lpips"]
    assert main([*argv, "--json", str(tmp_path / "f.json")]) == EXIT_OK
    page = out.read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert refs == [f"img/findings/{name}" for name in (FOREST, RATIO, CLASSES)]
    for ref in refs:
        assert (out.parent / ref).read_bytes()[:8] == PNG
    res = json.loads((tmp_path / "f.json").read_text())
    assert "latent RMS distance [CI]" in page and "LPIPS [CI]" not in page
    assert "LPIPS skipped: not asked for" in page and res["has_latent"] and not res["has_lpips"]
    assert not re.search(r"\bnan\b", page.lower())
    assert "interp findings" in page  # the page names the command that regenerates it
    other = tmp_path / "figs"
    assert main([*argv, "--figures", str(other)]) == EXIT_OK
    assert "](../figs/accuracy_forest.png)" in out.read_text() and (other / FOREST).is_file()


def test_latent_distance_is_the_brute_force_rms(study, results):
    units = complete_units(study, [r["condition"] for r in results["conditions"]])
    base = units.rows["baseline"]
    by_name = {r["condition"]: r for r in results["conditions"]}
    for cond in ("top1", "random1_modality"):
        want = []
        for i, j in zip(units.rows[cond], base, strict=True):
            a = study.image[i].astype(float) * 2 / 255 - 1
            b = study.image[j].astype(float) * 2 / 255 - 1
            want.append(np.sqrt(((a - b) ** 2).sum() / a.size))
        assert by_name[cond]["latent"]["estimate"] == pytest.approx(np.mean(want), rel=1e-12)
        assert by_name[cond]["latent"]["low"] <= by_name[cond]["latent"]["estimate"] <= by_name[cond]["latent"]["high"]
    pair = next(c for c in results["contrasts"] if (c["sink"], c["control"]) == ("top1", "random1_modality"))
    ratio = by_name["top1"]["latent"]["estimate"] / by_name["random1_modality"]["latent"]["estimate"]
    assert pair["latent_ratio"]["estimate"] == pytest.approx(ratio, rel=1e-12)
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    np.testing.assert_allclose(latent_distance(x, 0 * x), [np.sqrt(np.mean(v**2)) for v in x])


def test_a_model_without_pixel_latents_states_why(study):
    meta = json.loads(json.dumps(study.meta))
    meta["sweep_config"]["model"]["id"] = "stabilityai/stable-diffusion-3-medium-diffusers"
    other = replace(study, meta=meta)
    latents, reason = final_latents(other)
    assert latents is None and "no final latents" in reason
    res = compute(other, Method(n_resamples=99), lpips=False)
    assert not res["has_latent"] and all("latent" not in r for r in res["conditions"])
    page = render(res)
    assert "latent RMS distance" not in page and "no final latents" in page


def test_lpips_without_weights_is_skipped_with_the_reason(study, tmp_path):
    settings = MetricSettings(weights_dir=tmp_path, hf_cache_dir=None, torch_home=None)
    res = compute(study, Method(n_resamples=99), lpips=True, lpips_settings=settings)
    assert not res["has_lpips"] and all("lpips" not in r for r in res["conditions"])
    assert res["lpips_note"].startswith("LPIPS skipped:") and "alexnet-owt-7be5be79.pth" in res["lpips_note"]
    assert res["lpips_note"] + "." in render(res) and "LPIPS [CI]" not in render(res)


def test_lpips_with_weights_scores_each_unit_against_its_baseline(study, tmp_path):
    """Random-weight AlexNet (the metric tests' fixture): the page's LPIPS is the metric on the unit's pair."""
    helpers.write_alexnet(tmp_path, seed=5)
    settings = MetricSettings(weights_dir=tmp_path, device="cpu", lpips_size=64, verify_hashes=False)
    conds = ["noop", "top1", "random1_modality"]
    keep = np.isin(study.condition, ["baseline", *conds]) & (study.prompt_index < 12)
    rows = {k: v[keep] for k, v in study.__dict__.items() if isinstance(v, np.ndarray) and v.shape[:1] == (len(study),)}
    small = replace(study, **rows)
    res = compute(small, Method(n_resamples=99), lpips=True, lpips_settings=settings)
    assert res["has_lpips"] and "64 x 64" in res["lpips_note"]
    units = complete_units(small, conds)
    metric = load_metric("lpips", settings)
    base = [Image.fromarray(x) for x in small.image[units.rows["baseline"]]]
    by_name = {r["condition"]: r for r in res["conditions"]}
    means = {}
    for c in conds:
        direct = metric.score_pairs([Image.fromarray(x) for x in small.image[units.rows[c]]], base)["lpips"]
        means[c] = direct.mean()
        assert by_name[c]["lpips"]["estimate"] == pytest.approx(means[c], rel=1e-6)
    assert by_name["noop"]["lpips"]["estimate"] == 0  # bit-identical images
    pair = next(c for c in res["contrasts"] if c["sink"] == "top1")
    assert pair["lpips_ratio"]["estimate"] == pytest.approx(means["top1"] / means["random1_modality"], rel=1e-6)
    assert "LPIPS [CI]" in render(res)


def test_figures_only_from_results_that_hold_their_data(results, tmp_path):
    bare = {**results, "contrasts": [], "identity": {**results["identity"], "by_site": {}, "by_phase": {}}}
    written = write_figures(bare, tmp_path / "a")
    assert [name for name, _ in written] == [FOREST]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [FOREST]
    assert write_figures({**results, "empty": True}, tmp_path / "b") == []
    assert f"{results['baseline_accuracy']:.3f}" in dict(write_figures(results, tmp_path / "c"))[FOREST]


def test_user_errors_are_one_line(tmp_path, capsys):
    def err(*argv: str) -> str:
        assert main(["findings", *argv, "--no-lpips"]) == EXIT_USAGE
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    out = str(tmp_path / "page.md")
    assert "no study tables at" in err(str(tmp_path / "missing.npz"), "--out", out)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    assert "is not study tables" in err(str(tmp_path / "other.npz"), "--out", out)
    assert "several table files" in err(str(TABLES), str(TABLES), "--out", out)
    assert "existing folder" in err(str(TABLES), "--out", str(tmp_path / "no" / "page.md"))
