"""The findings page of a study: every number computed from its tables, none typed by hand.

    python -m interp.analysis.findings TABLES.npz [MORE.npz ...] --out docs/findings.md \\
        [--json findings.json] [--cost cost.json] [--resamples 9999] [--margin 0.05]

A store (``.zarr`` folder) may be given instead of tables: it is reduced first
(``interp.analysis.study_tables``).

Design
------
:func:`compute` turns a :class:`~interp.analysis.study_effects.Study` into a plain dict of results
(JSON-ready: the page's numbers, also written with ``--json``); :func:`render` lays that dict out as
markdown. Both follow one statistical method (:class:`~interp.analysis.study_effects.Method`) and
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
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from interp.analysis.study_effects import Method, Study, Units, complete_units, holm, load_study, pixel_shift
from interp.analysis.token_identity import class_shares, group_counts
from interp.edits.words import CONTENT, NON_CONTENT, WORD_CLASSES

HEADLINE = (
    "top1",
    "random1_modality",
    "top10",
    "random10_modality",
    "top1_all_layers",
    "random1_all_layers_modality",
)
CONTROL_FNS = ("mask_random", "mask_bottomk")
SELECTOR_KEYS = ("fn", "seed", "match")
SMALL = 200  # fewer units than this: the page says it is a small-scale run
REGENERATE = "python -m interp.analysis.findings {inputs} --out docs/findings.md"


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


def compute(study: Study, method: Method | None = None, *, cost: dict | None = None) -> dict:
    """Every result of the findings page, as a JSON-ready dict."""
    method = method or Method()
    baseline = study.meta.get("baseline", "baseline")
    edits = [c for c in study.conditions if c != baseline]
    units = complete_units(study, edits, baseline)
    res: dict = {"method": method.describe(), "margin": method.margin, "alpha": method.alpha, "baseline": baseline}
    res["scale"] = _scale(study, units)
    res["cost"] = _cost(study, cost)
    if len(units) == 0:
        res["empty"] = True
        return res
    b_rows = units.rows[baseline]
    base_correct = study.correct[b_rows]
    res["baseline_accuracy"] = float(base_correct.mean())

    # every condition vs the baseline: accuracy difference (one family), pixel shift, verification
    rows, diffs = [], []
    for c in edits:
        r = units.rows[c]
        diffs.append(method.difference(study.correct[r], base_correct, units.prompt))
    diffs = holm(diffs)
    for c, d in zip(edits, diffs, strict=True):
        r = units.rows[c]
        shift = pixel_shift(study.image[r], study.image[b_rows])
        rows.append(
            {
                "condition": c,
                "plan": study.plan_of(c),
                "accuracy": float(study.correct[r].mean()),
                "delta": d.to_dict(),
                "shift": method.mean(shift, units.prompt).to_dict(),
                "identical_images": float((shift == 0).mean()),
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
        s_shift = pixel_shift(study.image[units.rows[sink]], study.image[b_rows])
        c_shift = pixel_shift(study.image[units.rows[ctrl]], study.image[b_rows])
        res["contrasts"].append(
            {
                "sink": sink,
                "control": ctrl,
                "delta_sink": by_name[sink]["delta"]["estimate"],
                "delta_control": by_name[ctrl]["delta"]["estimate"],
                "difference": d.to_dict(),
                "shift_ratio": method.ratio(s_shift, c_shift, units.prompt).to_dict(),
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


# ------------------------------------------------------------------------------------------------ render


def _f(x: float | None, digits: int = 3, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2g}" if x >= 1e-4 else "<1e-4"


def _ci(e: dict, digits: int = 3, signed: bool = True) -> str:
    return f"{_f(e['estimate'], digits, signed)} [{_f(e['low'], digits, signed)}, {_f(e['high'], digits, signed)}]"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def verdict(e: dict, alpha: float, margin: float) -> str:
    """The fixed rule: an effect needs Holm p < alpha; no effect needs TOST equivalence."""
    p = e.get("p_adj")
    if e.get("unchanged"):
        return "no unit changed (untestable)"
    if p is not None and p < alpha:
        return "lower" if e["estimate"] < 0 else "higher"
    if e.get("equivalent"):
        return f"no effect (equivalent within ±{margin:g})"
    return "inconclusive (neither an effect nor equivalence shown)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines + [""]


def render(res: dict, *, inputs: Sequence[str] = ()) -> str:
    """The findings page (markdown) of :func:`compute`'s results."""
    sc, cost = res["scale"], res["cost"]
    cmd = REGENERATE.format(inputs=" ".join(inputs) or "TABLES.npz")
    L = [
        "# Findings: the paper's sink claims on the model organism",
        "",
        '!!! note "Generated page"',
        f"    Generated by `{cmd}` from the study's tables; every number and verdict below is computed, none",
        "    is typed by hand. Do not edit this page: rerun the study (`traces/study/run_study.sh`) and regenerate it.",
        "",
        "## Scale and cost",
        "",
        f"**{sc['units']} units** (a unit is one caption line of `traces/study/heldout.jsonl` with one seed; "
        f"every condition runs on the same units) of {sc['captions']} distinct captions, "
        f"{sc['seeds_per_caption_line']} seed(s) per caption line, {sc['conditions']} conditions, "
        f"{sc['steps']} steps, guidance {sc['guidance_scale']}, model `{sc['model']}`; {sc['samples']} samples done.",
        "",
    ]
    if sc["units"] < SMALL:
        L += [
            '!!! warning "Small scale"',
            f"    {sc['units']} units only: intervals are wide and most verdicts are expected to be inconclusive. "
            "The study's scale is set by the run (`traces/study/run_study.sh`), not by this page.",
            "",
        ]
    L += _table(["tag", "units"], [[t, n] for t, n in sc["units_per_tag"].items()])
    cost_rows = [[k.replace("_", " "), v if not isinstance(v, float) else f"{v:.4g}"] for k, v in cost.items()]
    L += _table(["cost", "value"], cost_rows)
    if res.get("empty"):
        return "\n".join(L + ["No complete units: nothing to report.", ""])
    alpha, margin = res["alpha"], res["margin"]
    cond = {r["condition"]: r for r in res["conditions"]}
    L += _claims(res, cond, alpha, margin)
    L += ["## The headline table", "", f"Baseline accuracy {_f(res['baseline_accuracy'])} (eta = 0 unless named).", ""]
    head = [c for c in HEADLINE if c in cond]
    L += _table(
        [
            "condition",
            "accuracy",
            "Δ accuracy vs baseline [95% CI]",
            "p (Holm)",
            "verdict",
            "mean abs pixel shift [CI]",
        ],
        [["baseline", _f(res["baseline_accuracy"]), "", "", "", ""]]
        + [
            [
                c,
                _f(cond[c]["accuracy"]),
                _ci(cond[c]["delta"]),
                _p(cond[c]["delta"]["p_adj"]),
                verdict(cond[c]["delta"], alpha, margin),
                _ci(cond[c]["shift"], 4, False),
            ]
            for c in head
        ],
    )
    L += ["## Every condition, with its measured verification", ""]
    L += [
        "Mass before / after: the incoming attention mass of the edited keys, measured in the edited call before and "
        "after the edit, averaged over every (step, layer, branch, head) in the edit's scope (eta = 0 must give 0 "
        "after; the no-op must leave it unchanged). Keys per head: edited keys per (step, layer, branch, head) in "
        "scope. Identical: share of images bit-identical to the baseline's.",
        "",
    ]
    L += _table(
        [
            "condition",
            "accuracy",
            "Δ [95% CI]",
            "p (Holm)",
            "TOST p",
            "pixel shift [CI]",
            "identical",
            "mass before",
            "mass after",
            "keys per head",
        ],
        [
            [
                r["condition"],
                _f(r["accuracy"]),
                _ci(r["delta"]),
                _p(r["delta"]["p_adj"]),
                _p(r["delta"]["tost_p"]),
                _ci(r["shift"], 4, False),
                _pct(r["identical_images"]),
                _f(r["mass_before"], 4),
                _f(r["mass_after"], 4),
                _f(r["keys_per_head"], 2),
            ]
            for r in res["conditions"]
        ],
    )
    L += ["## Sink vs matched control", ""]
    L += [
        "Each top-k edit against the control of the same scope and budget (random keys, matched as named, never "
        "from the top-k set; or bottom-k). Δ(sink - control): the paired accuracy difference between the two edited "
        "images of a unit. Shift ratio: mean pixel shift of the sink edit / of its control.",
        "",
    ]
    L += _table(
        ["sink", "control", "Δ sink", "Δ control", "Δ(sink - control) [CI]", "p (Holm)", "shift ratio [CI]"],
        [
            [
                c["sink"],
                c["control"],
                _f(c["delta_sink"], 3, True),
                _f(c["delta_control"], 3, True),
                _ci(c["difference"]),
                _p(c["difference"]["p_adj"]),
                _ci(c["shift_ratio"], 2, False),
            ]
            for c in res["contrasts"]
        ],
    )
    if res["by_tag"]:
        conds = list(res["by_tag"][0]["effects"])
        L += [
            "## By tag",
            "",
            "Δ accuracy vs baseline [95% CI] per GenEval tag (Holm within each tag), and the share of the edit's "
            "removed keys (cond branch) that are content words (attribute, relation, noun) for that tag's captions.",
            "",
        ]
        L += _table(
            ["tag", "units", "baseline", *[f"{c}: Δ" for c in conds], *[f"{c}: content removed" for c in conds]],
            [
                [t["tag"], t["units"], _f(t["baseline_accuracy"])]
                + [_ci(t["effects"][c]) for c in conds]
                + [_pct(t["content_share"][c]) for c in conds]
                for t in res["by_tag"]
            ],
        )
    L += _identity_section(res["identity"])
    L += _decisive_section(res, alpha, margin)
    L += [
        "## Method",
        "",
        res["method"],
        "Accuracy is the organism's exact scorer (`interp.organism.score`: shape detection and GenEval's rules for "
        "the caption's tag). The pixel shift is the mean absolute difference to the baseline image of the same "
        "unit, in [0, 1]. LPIPS and latent distances are not in the study tables (the organism's 32 px images are "
        "below LPIPS's receptive field, and the sweep does not store final latents), so the shift is pixels only.",
        "",
        "## Regenerate, and rerun on SD3-medium",
        "",
        "```",
        "OUT=/tmp/study LIMIT=150 NPROC=14 bash traces/study/run_study.sh   # sweep + tables + this page",
        cmd,
        "```",
        "",
        "For SD3-medium, copy `traces/study/organism_study.toml` and set `model.id = "
        '"stabilityai/stable-diffusion-3-medium-diffusers"`, `dtype = "float16"`, `steps = 28`, '
        '`guidance_scale = 7.0`, `height = width = 1024`, `prompts.source = "geneval"`; the conditions are '
        "unchanged (layers are fractions of depth). The exact scorer is organism-only: score SD3 images with a "
        "store metric (`interp score`) and analyse with `interp analyze`.",
        "",
    ]
    return "\n".join(L)


def _claims(res: dict, cond: dict, alpha: float, margin: float) -> list[str]:
    L = ["## The paper's claims, on the organism", ""]
    rows = []
    if "top1" in cond:
        d = cond["top1"]["delta"]
        rows.append(
            [
                "Removing the top-1 sink key per head (middle block, eta = 0) does not hurt text-image alignment.",
                f"Δ accuracy {_ci(d)}, Holm p {_p(d['p_adj'])}, TOST p {_p(d['tost_p'])} (margin ±{margin:g}).",
                verdict(d, alpha, margin),
            ]
        )
    ratio = next((c for c in res["contrasts"] if c["sink"] == "top1" and c["control"] == "random1_modality"), None)
    if ratio:
        r = ratio["shift_ratio"]
        rows.append(
            [
                "Sink removal shifts the image far more than equal-budget random masking (about 6x on SD3).",
                f"Pixel-shift ratio top-1 / 1 random (modality-matched) {_ci(r, 2, False)}.",
                "larger than random" if (r["low"] or 0) > 1 else "not shown larger than random",
            ]
        )
    ident = res["identity"]
    if ident.get("dominant_all"):
        shares = dict(zip(ident["classes"], ident["dominant_all"], strict=True))
        non = sum(shares[c] or 0 for c in NON_CONTENT)
        content = sum(shares[c] or 0 for c in CONTENT)
        text_non = non / (non + content) if non + content > 0 else None
        rows.append(
            [
                "Text-side sinks are special / padding / function tokens (T5 `[EOS]` dominates the H1 summary), "
                "not the caption's content words.",
                f"Baseline, cond branch, over (head, layer, step): the most-attended key is an image patch in "
                f"{_pct(shares['image'])}, special/pad/function in {_pct(non)}, a content word in {_pct(content)}; "
                f"of the text ones, {_pct(text_non)} are non-content.",
                "mostly non-content" if text_non is not None and text_non > 0.5 else "not mostly non-content",
            ]
        )
    for f in ident.get("follows_content", []):
        if f["condition"] in ("top1", "top10"):
            rows.append(
                [
                    f"(Token identity) The accuracy drop of `{f['condition']}` follows the removal of content words.",
                    f"Units where it removed a content-word key (cond branch, {_pct(f['share_with_content'])} of "
                    f"units): Δ {_ci(f['with_content'])}; the other units: Δ {_ci(f['without_content'])}.",
                    "descriptive (units select themselves; the decisive control below is the test)",
                ]
            )
    for c in res["decisive"]:
        d = cond[c["sink"]]["delta"]
        words = ", ".join(w for p in cond[c["sink"]]["plan"] for w in p.get("words", []))
        rows.append(
            [
                f"Decisive control `{c['sink']}`: suppress only the dominant keys of class {words}.",
                f"Δ accuracy {_ci(d)} (Holm p {_p(d['p_adj'])}); vs `{c['control']}`: {_ci(c['difference'])}.",
                verdict(d, alpha, margin),
            ]
        )
    return L + _table(["claim", "what the organism shows", "verdict (fixed rule)"], rows)


def _identity_section(ident: dict) -> list[str]:
    cls = ident["classes"]
    L = [
        "## Token identity: what each edit removed",
        "",
        "Share of the edited keys by word class (`interp.edits.words`: the classes the `words=` selectors use), over "
        "every (step, layer, head) of each edit's scope, per CFG branch. The uncond branch encodes the empty "
        "prompt, so it has no content words.",
        "",
    ]
    rows = []
    for r in ident["by_condition"]:
        for b in ("cond", "uncond"):
            if b in r:
                rows.append([r["condition"], b, _f(r["keys_per_sample"], 0)] + [_pct(x) for x in r[b]])
    L += _table(["condition", "branch", "keys / sample", *cls], rows)
    for c, sites in ident["by_site"].items():
        L += [f"**`{c}`, cond branch, by layer:**", ""]
        L += _table(["layer", *cls], [[s, *[_pct(x) for x in v]] for s, v in sites.items()])
    for c, phases in ident["by_phase"].items():
        L += [f"**`{c}`, cond branch, by denoising phase:**", ""]
        L += _table(["steps", *cls], [[s, *[_pct(x) for x in v]] for s, v in phases.items()])
    if ident.get("dominant_by_site"):
        L += ["**Baseline: class of each head's most-attended key, cond branch, by layer (all steps):**", ""]
        L += _table(["layer", *cls], [[s, *[_pct(x) for x in v]] for s, v in ident["dominant_by_site"].items()])
    if ident["follows_content"]:
        L += [
            "**Does the drop follow content removal?** Units split by whether the edit removed at least one content "
            "word key (attribute, relation, noun) in the cond branch; Δ accuracy vs baseline within each group.",
            "",
        ]
        L += _table(
            ["condition", "units with content removed", "Δ with content [CI]", "Δ without content [CI]"],
            [
                [f["condition"], _pct(f["share_with_content"]), _ci(f["with_content"]), _ci(f["without_content"])]
                for f in ident["follows_content"]
            ],
        )
    return L


def _decisive_section(res: dict, alpha: float, margin: float) -> list[str]:
    if not res["decisive"]:
        return []
    cond = {r["condition"]: r for r in res["conditions"]}
    L = [
        "## The decisive control",
        "",
        "Of each head's top-k keys, only those that are content words (attribute, relation, noun) or only those "
        "that are not (special, padding, function words), each against a random control drawing per head as many "
        "keys of the same modality (never from the top-k set). p and verdicts as in the tables above.",
        "",
    ]
    rows = []
    for c in res["decisive"]:
        s = cond[c["sink"]]
        rows.append(
            [
                c["sink"],
                _f(s["keys_per_head"], 2),
                _ci(s["delta"]),
                verdict(s["delta"], alpha, margin),
                c["control"],
                _ci(cond[c["control"]]["delta"]),
                _ci(c["difference"]),
                _p(c["difference"]["p_adj"]),
            ]
        )
    return L + _table(
        ["edit", "keys per head", "Δ vs baseline", "verdict", "control", "Δ control", "Δ(edit - control)", "p (Holm)"],
        rows,
    )


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="study tables (.npz, one per store or worker) or stores (.zarr)")
    ap.add_argument("--out", required=True, help="the page to write (markdown)")
    ap.add_argument("--json", help="also write every result as JSON here")
    ap.add_argument("--cost", help="JSON of the run's cost (run_study.sh writes it), shown on the page")
    ap.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples")
    ap.add_argument("--margin", type=float, default=0.05, help="TOST margin of accuracy differences")
    ap.add_argument("--workers", type=int, default=1, help="processes reducing a store given as input")
    ap.add_argument("--label", help="how the page names its inputs (default: the paths given)")
    args = ap.parse_args(argv)
    method = Method(n_resamples=args.resamples, margin=args.margin)
    cost = json.loads(Path(args.cost).read_text()) if args.cost else None
    with tempfile.TemporaryDirectory() as tmp:
        study = load_study(_tables_of(args.inputs, Path(tmp), args.workers))
    res = compute(study, method, cost=cost)
    label = [args.label] if args.label else args.inputs
    Path(args.out).write_text(render(res, inputs=label), encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    print(f"{args.out}: {res['scale']['units']} units, {len(res.get('conditions', []))} conditions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
