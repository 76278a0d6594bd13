"""The findings page of a study: every number computed from its tables, none typed by hand.

    interp findings TABLES.npz [MORE.npz ...] --out docs/findings.md [--figures DIR] \\
        [--json findings.json] [--cost cost.json] [--resamples 9999] [--margin 0.05] [--no-lpips]

(``python -m interp.analysis.findings_cli`` takes the same options.) The figures
(``interp.analysis.findings_figures``) go to ``img/findings/`` beside the page unless ``--figures``
names a folder; the page references them by relative path.

A store (``.zarr`` folder) may be given instead of tables: it is reduced first
(``interp.analysis.study_tables``).

Design
------
:func:`compute` turns a :class:`~interp.analysis.study_effects.Study` into a plain dict of results
(JSON-ready: the page's numbers, also written with ``--json``); :func:`~interp.analysis.findings_page.render`
lays that dict out as markdown. Both follow one statistical method (:class:`~interp.analysis.study_effects.Method`) and
compare all conditions on the same complete units. Sink / control pairs are derived from the sweep's
plans, not from names: a ``mask_random`` or ``mask_bottomk`` condition controls the ``mask_topk``
condition whose plan is the same up to the selector (``fn``, ``seed``, ``match``), so the page works
for any study config (the SD3-medium variant of the recipe included).

Sections: scale and cost; the paper's claims, each with what the organism shows and a verdict from
fixed rules (an effect needs a Holm-adjusted p < alpha, "no effect" needs TOST equivalence, anything
else is inconclusive); the headline table; every condition with its measured verification (mass of the
edited keys before and after, keys per head); sink vs matched control; effects by tag; token identity
(which word classes each edit removed, by branch, layer and step; the baseline's dominant keys; the
drop with and without content removed); the decisive control (content vs non-content dominant keys,
each against its matched random control); the method; how to regenerate and rerun on SD3-medium.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from interp.analysis.findings_distances import final_latents, latent_distance, lpips_distances
from interp.analysis.findings_page import render
from interp.analysis.study_effects import (
    Method,
    Study,
    StudyError,
    Units,
    complete_units,
    holm,
    load_study,
    pixel_shift,
)
from interp.analysis.token_identity import class_shares, group_counts
from interp.edits.words import CONTENT, WORD_CLASSES

if TYPE_CHECKING:
    from interp.metrics import MetricSettings

CONTROL_FNS = ("mask_random", "mask_bottomk")
SELECTOR_KEYS = ("fn", "seed", "match")


# ----------------------------------------------------------------------------------------------- compute


def _plan_key(plan: Sequence[dict]) -> str:
    return json.dumps([{k: v for k, v in c.items() if k not in SELECTOR_KEYS} for c in plan], sort_keys=True)


def control_pairs(study: Study) -> list[tuple[str, str]]:
    """(sink, control) condition pairs: controls are random / bottom-k edits of a top-k plan's scope."""
    conds = study.conditions
    sinks = {}
    for c in conds:
        plan = study.plan_of(c)
        if plan and all(p.get("fn") == "mask_topk" for p in plan):
            sinks.setdefault(_plan_key(plan), c)
    out = []
    for c in conds:
        plan = study.plan_of(c)
        if plan and all(p.get("fn") in CONTROL_FNS for p in plan) and _plan_key(plan) in sinks:
            out.append((sinks[_plan_key(plan)], c))
    return out


def _branch(study: Study, name: str) -> int | None:
    hits = np.flatnonzero(study.branch == name)
    return int(hits[0]) if hits.size else None


def compute(
    study: Study,
    method: Method | None = None,
    *,
    cost: dict | None = None,
    lpips: bool = True,
    lpips_settings: MetricSettings | None = None,
) -> dict:
    """Every result of the findings page, as a JSON-ready dict.

    ``lpips``: score LPIPS vs the baseline where its weights resolve (``lpips_settings``, default
    ``MetricSettings()``: ``$INTERP_WEIGHTS_DIR``); without weights (or with ``lpips=False``) the results
    state why it is absent."""
    method = method or Method()
    baseline = study.meta.get("baseline", "baseline")
    edits = [c for c in study.conditions if c != baseline]
    units = complete_units(study, edits, baseline)
    res: dict = {"method": method.describe(), "margin": method.margin, "alpha": method.alpha, "baseline": baseline}
    res["scale"] = _scale(study, units)
    res["cost"] = _cost(study, cost if cost is not None else study.meta.get("cost"))
    if len(units) == 0:
        res["empty"] = True
        return res
    b_rows = units.rows[baseline]
    base_correct = study.correct[b_rows]
    res["baseline_accuracy"] = float(base_correct.mean())
    latents, res["latent_note"] = final_latents(study)
    if lpips:
        lp, res["lpips_note"] = lpips_distances(study, units, edits, baseline, lpips_settings)
    else:
        lp, res["lpips_note"] = None, "LPIPS skipped: not asked for (--no-lpips)"
    res["has_latent"], res["has_lpips"] = latents is not None, lp is not None

    def distances(c: str) -> dict[str, np.ndarray]:
        r = units.rows[c]
        out = {"shift": pixel_shift(study.image[r], study.image[b_rows])}
        if latents is not None:
            out["latent"] = latent_distance(latents[r], latents[b_rows])
        if lp is not None:
            out["lpips"] = lp[c]
        return out

    # every condition vs the baseline: accuracy difference (one family), pixel shift, verification
    rows, diffs = [], []
    for c in edits:
        r = units.rows[c]
        diffs.append(method.difference(study.correct[r], base_correct, units.prompt))
    diffs = holm(diffs)
    for c, d in zip(edits, diffs, strict=True):
        r = units.rows[c]
        dist = distances(c)
        rows.append(
            {
                "condition": c,
                "plan": study.plan_of(c),
                "accuracy": float(study.correct[r].mean()),
                "delta": d.to_dict(),
                **{k: method.mean(v, units.prompt).to_dict() for k, v in dist.items()},
                "identical_images": float((dist["shift"] == 0).mean()),
                "mass_before": _nanmean(study.mass_before[r]),
                "mass_after": _nanmean(study.mass_after[r]),
                "keys_per_head": _nanmean(study.n_keys[r]),
            }
        )
    res["conditions"] = rows
    by_name = {r["condition"]: r for r in rows}

    # sink vs matched control (one family): accuracy difference of differences, shift ratio
    pairs = control_pairs(study)
    contrasts = []
    for sink, ctrl in pairs:
        rs, rc = units.rows[sink], units.rows[ctrl]
        contrasts.append(method.difference(study.correct[rs], study.correct[rc], units.prompt, tost=True))
    contrasts = holm(contrasts)
    res["contrasts"] = []
    for (sink, ctrl), d in zip(pairs, contrasts, strict=True):
        s_dist, c_dist = distances(sink), distances(ctrl)
        res["contrasts"].append(
            {
                "sink": sink,
                "control": ctrl,
                "delta_sink": by_name[sink]["delta"]["estimate"],
                "delta_control": by_name[ctrl]["delta"]["estimate"],
                "difference": d.to_dict(),
                **{
                    f"{k}_ratio": method.ratio(s_dist[k], c_dist[k], units.prompt).to_dict()
                    for k in s_dist  # shift_ratio, latent_ratio, lpips_ratio
                },
            }
        )

    res["by_tag"] = _by_tag(study, units, [c for c in ("top1", "top10", "top1_all_layers") if c in units.rows], method)
    res["identity"] = _identity(study, units, edits, method)
    res["decisive"] = [c for c in res["contrasts"] if any(p.get("words") for p in study.plan_of(c["sink"]))]
    return res


def _scale(study: Study, units: Units) -> dict:
    cfg = study.meta.get("sweep_config", {})
    tags, counts = np.unique(units.tag, return_counts=True)
    return {
        "samples": len(study),
        "units": len(units),
        "captions": int(np.unique(units.prompt).size),
        "units_per_tag": {str(t): int(n) for t, n in zip(tags, counts, strict=True)},
        "seeds_per_caption_line": int(np.unique(units.replicate).size) if len(units) else 0,
        "conditions": len(study.conditions),
        "steps": cfg.get("sampler", {}).get("steps"),
        "guidance_scale": cfg.get("sampler", {}).get("guidance_scale"),
        "model": cfg.get("model", {}).get("id"),
        "stores": study.meta.get("stores", []),
    }


def _cost(study: Study, cost: dict | None) -> dict:
    out = dict(cost or {})
    out["generation_seconds_sum"] = float(np.sum(study.gen_seconds))
    out["samples_done"] = len(study)
    return out


def _nanmean(x: np.ndarray) -> float | None:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def _by_tag(study: Study, units: Units, conds: list[str], method: Method) -> list[dict]:
    baseline = next(iter(units.rows))
    cond_b = _branch(study, "cond")
    out = []
    for tag in np.unique(units.tag):
        sub = units.subset(units.tag == tag)
        base = study.correct[sub.rows[baseline]]
        ests = holm([method.difference(study.correct[sub.rows[c]], base, sub.prompt) for c in conds])
        content = {}
        for c in conds:  # share of the cond branch's edited keys that are content words, for this tag
            ed = study.edited[sub.rows[c], cond_b] if cond_b is not None else np.zeros((0, len(WORD_CLASSES)))
            total = ed.sum()
            content[c] = float(group_counts(ed, CONTENT).sum() / total) if total else None
        out.append(
            {
                "tag": str(tag),
                "units": len(sub),
                "baseline_accuracy": float(base.mean()),
                "effects": {c: e.to_dict() for c, e in zip(conds, ests, strict=True)},
                "content_share": content,
            }
        )
    return out


def _identity(study: Study, units: Units, edits: list[str], method: Method) -> dict:
    cond_b, uncond_b = _branch(study, "cond"), _branch(study, "uncond")
    baseline = next(iter(units.rows))
    out: dict = {"classes": list(WORD_CLASSES), "by_condition": [], "by_site": {}, "by_phase": {}}
    for c in edits:
        ed = study.edited[units.rows[c]]
        if ed.sum() == 0:
            continue
        row = {"condition": c, "keys_per_sample": float(ed.sum() / len(units))}
        for name, b in (("cond", cond_b), ("uncond", uncond_b)):
            if b is not None:
                row[name] = _list(class_shares(ed[:, b]))
        out["by_condition"].append(row)
    for c in ("top1_all_layers", "top1", "top10"):
        if c in units.rows and cond_b is not None and study.edited[units.rows[c]].sum():
            ed = study.edited[units.rows[c], cond_b]  # (unit, site, step, class)
            out["by_site"][c] = {
                str(s): _list(class_shares(ed[:, i])) for i, s in enumerate(study.site) if ed[:, i].sum()
            }
            n_step = ed.shape[2]
            thirds = np.array_split(np.arange(n_step), 3)
            out["by_phase"][c] = {
                f"steps {int(t[0])}-{int(t[-1])}": _list(class_shares(ed[:, :, t])) for t in thirds if t.size
            }
    if cond_b is not None:
        dom = study.dominant[units.rows[baseline], cond_b]
        out["dominant_by_site"] = {str(s): _list(class_shares(dom[:, i])) for i, s in enumerate(study.site)}
        out["dominant_all"] = _list(class_shares(dom))
    # does the drop follow content removal? units where the edit removed >= 1 content key (cond branch) vs not
    follow = []
    base = study.correct[units.rows[baseline]]
    for c in edits:
        plan = study.plan_of(c)
        if cond_b is None or not plan or any(p.get("fn") != "mask_topk" or p.get("words") for p in plan):
            continue
        r = units.rows[c]
        content = group_counts(study.edited[r, cond_b], CONTENT).sum(axis=(1, 2)) > 0
        entry = {"condition": c, "share_with_content": float(content.mean())}
        for label, mask in (("with_content", content), ("without_content", ~content)):
            sub = units.subset(mask)
            entry[label] = method.difference(study.correct[r[mask]], base[mask], sub.prompt, tost=False).to_dict()
        follow.append(entry)
    out["follows_content"] = follow
    return out


def _list(x: np.ndarray) -> list:
    return [None if not math.isfinite(float(v)) else float(v) for v in np.ravel(x)]


# ------------------------------------------------------------------------------------------------- CLI


def _tables_of(inputs: Sequence[str], tmp: Path, workers: int) -> list[str]:
    from interp.analysis.study_tables import reduce_store

    out = []
    for i, src in enumerate(inputs):
        if Path(src).is_dir():  # a store: reduce it first
            dest = tmp / f"tables_{i}.npz"
            reduce_store(src, dest, workers=workers, progress=False)
            out.append(str(dest))
        else:
            out.append(src)
    return out


def write_page(args: argparse.Namespace) -> int:
    """Write the page (and its figures, and ``--json``) from the study's tables or stores (options as
    :func:`interp.analysis.findings_cli.add_arguments` defines them)."""
    from interp.analysis.findings_figures import write_figures

    if args.resamples < 1:
        raise StudyError(f"--resamples must be at least 1, got {args.resamples}")
    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir():
        raise StudyError(f"--out {out}: give a markdown file in an existing folder")
    method = Method(n_resamples=args.resamples, margin=args.margin)
    cost = json.loads(Path(args.cost).read_text()) if args.cost else None
    with tempfile.TemporaryDirectory() as tmp:
        study = load_study(_tables_of(args.inputs, Path(tmp), args.workers))
    settings = None
    if args.weights_dir:
        from interp.metrics import MetricSettings

        settings = MetricSettings(weights_dir=args.weights_dir)
    res = compute(study, method, cost=cost, lpips=not args.no_lpips, lpips_settings=settings)
    folder = Path(args.figures) if args.figures else out.parent / "img" / "findings"
    written = write_figures(res, folder)
    rel = Path(os.path.relpath(folder, out.parent))
    figures = [((rel / name).as_posix(), caption) for name, caption in written]
    label = [args.label] if args.label else args.inputs
    out.write_text(render(res, inputs=label, figures=figures), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    print(
        f"{out}: {res['scale']['units']} units, {len(res.get('conditions', []))} conditions, "
        f"{len(written)} figures in {folder}"
    )
    return 0
