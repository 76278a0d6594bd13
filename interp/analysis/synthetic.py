"""SYNTHETIC stores for testing the H2 analyses before real edit sweeps exist. Not data.

Design
------
:func:`synthetic_store` writes a small Zarr store with exactly the variable names the edit, sweep and
metric parts of the project write (``condition`` / ``prompt`` / ``seed`` / ``tag`` sample coordinates,
the ``sweep_conditions`` attribute with each condition's plan JSON, ``score_*`` and
``lpips_vs_baseline`` metrics, ``inception_pool3`` features, ``image``, the edit bookkeeping
``edit_keys`` / ``edit_mass_before`` / ``edit_mass_after`` / ``edit_entropy_after`` and the baseline
``entropy``), filled with random numbers whose condition effects are *chosen* (the attribute
``synthetic_truth`` lists them). Every store it writes carries ``synthetic = "true"`` and a
``synthetic_note`` attribute, and its model id says SYNTHETIC, so nobody mistakes it for a result.

The conditions mirror the paper's experiments as sweep recipes would define them (edit presets of
``interp.edits``: selector / operation / scope), so each analysis finds what it looks for. Effects
scale with the edit: removed sinks change images more than random keys at equal budget (about 6x in
LPIPS), effects grow with k and with 1 - eta, the zero-bias no-op changes nothing measurable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from interp.store.schema import strings

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
METRICS = ("score_clip_t", "score_hps", "score_imagereward")
SD = {"score_clip_t": 0.01, "score_hps": 0.004, "score_imagereward": 0.2}
BASE = {"score_clip_t": 0.30, "score_hps": 0.25, "score_imagereward": 0.1}
N_SITES, N_STEPS, N_HEADS, N_BRANCH, N_FEAT, IMG = 4, 4, 2, 2, 16, 8


def edit(
    kind: str = "topk",
    *,
    k: int = 1,
    eta: float = 0.0,
    layers: Any = 0.5,
    name: str = "edit",
    path: str = "score",
    mode: str = "zero",
    alpha: float = 0.0,
    select: str = "head",
    modality: str | None = None,
    match: str | None = None,
    phase: tuple[float, float] | None = None,
    force_kernel: bool = False,
) -> dict[str, Any]:
    """One plan item as ``Plan.to_json`` writes an ``interp.edits.Edit``."""
    return {
        "type": "Edit",
        "name": name,
        "selector": {
            "kind": kind,
            "k": k,
            "select": select,
            "by": "used",
            "modality": modality,
            "match": match,
            "seed": 0,
            "keys": [],
            "source": None,
            "source_sample": None,
        },
        "operation": {
            "path": path,
            "eta": eta,
            "mode": mode,
            "alpha": alpha,
            "mean_over": None,
            "force_kernel": force_kernel,
        },
        "scope": {
            "layers": layers,
            "steps": None,
            "phase": list(phase) if phase else None,
            "sigma": None,
            "calls": None,
            "branch": "both",
            "queries": "all",
            "heads": None,
        },
    }


@dataclass(frozen=True)
class SynthCondition:
    name: str
    edits: tuple[dict[str, Any], ...] = ()
    sampler: dict[str, Any] = field(default_factory=dict)
    seed_offset: int = 0
    effect: dict[str, float] = field(default_factory=dict)  # mean shift per metric (and "lpips")
    sites: tuple[int, ...] = ()  # sites the edit acts on (bookkeeping)


def default_conditions() -> list[SynthCondition]:
    """Every experiment family of the paper, small: the default synthetic design."""
    c: list[SynthCondition] = [SynthCondition("baseline")]

    def eff(scale: float, lp: float) -> dict[str, float]:
        return {
            "score_clip_t": -0.004 * scale,
            "score_hps": -0.003 * scale,
            "score_imagereward": -0.08 * scale,
            "lpips": lp,
        }

    c.append(
        SynthCondition(
            "noop_kernel", (edit(eta=1.0, force_kernel=True, name="noop_kernel"),), effect={"lpips": 1e-4}, sites=(2,)
        )
    )
    for k, s in ((1, 1.0), (5, 2.0), (10, 2.6)):
        c.append(SynthCondition(f"sink_k{k}", (edit(k=k, name=f"sink_k{k}"),), effect=eff(s, 0.06 * s), sites=(2,)))
        c.append(
            SynthCondition(
                f"random_k{k}", (edit("random", k=k, name=f"random_k{k}"),), effect=eff(s / 6, 0.01 * s), sites=(2,)
            )
        )
    for m in ("modality", "token_class", "mass"):
        c.append(
            SynthCondition(
                f"random_{m}_k1",
                (edit("random", k=1, match=m, name=f"random_{m}_k1"),),
                effect=eff(0.3, 0.015),
                sites=(2,),
            )
        )
    c.append(SynthCondition("bottom_k1", (edit("bottomk", k=1, name="bottom_k1"),), effect=eff(0.0, 0.002), sites=(2,)))
    for eta in (0.25, 0.5, 0.75):
        c.append(
            SynthCondition(
                f"sink_k1_eta{eta:g}",
                (edit(k=1, eta=eta, name=f"sink_k1_eta{eta:g}"),),
                effect=eff(1 - eta, 0.06 * (1 - eta)),
                sites=(2,),
            )
        )
    c.append(
        SynthCondition(
            "sink_multi",
            (edit(k=1, layers=[0.25, 0.5, 0.75], name="sink_multi"),),
            effect=eff(2.5, 0.15),
            sites=(1, 2, 3),
        )
    )
    for w, (a, b) in (("early", (0.0, 0.34)), ("mid", (0.34, 0.67)), ("late", (0.67, 1.0))):
        c.append(
            SynthCondition(
                f"sink_{w}",
                (edit(k=1, phase=(a, b), name=f"sink_{w}"),),
                effect=eff({"early": 1.2, "mid": 0.6, "late": 0.1}[w], 0.03),
                sites=(2,),
            )
        )
    for mod, s in (("text", 1.3), ("image", 0.4)):
        c.append(
            SynthCondition(
                f"sink_{mod}", (edit(k=1, modality=mod, name=f"sink_{mod}"),), effect=eff(s, 0.05 * s), sites=(2,)
            )
        )
    c.append(
        SynthCondition("sink_union", (edit(k=1, select="union", name="sink_union"),), effect=eff(0.8, 0.05), sites=(2,))
    )
    for mode, alpha, s in (("zero", 0.0, 1.5), ("mean", 0.0, 0.7), ("lerp", 0.5, 0.35)):
        c.append(
            SynthCondition(
                f"values_{mode}",
                (edit(path="value", mode=mode, alpha=alpha, name=f"values_{mode}"),),
                effect=eff(s, 0.05 * s),
                sites=(2,),
            )
        )
    g2 = {"guidance_scale": 2.0, "steps": 4}
    c.append(SynthCondition("baseline_g2", sampler=g2, effect=eff(0.5, 0.2)))
    c.append(
        SynthCondition("sink_k1_g2", (edit(k=1, name="sink_k1_g2"),), sampler=g2, effect=eff(1.6, 0.25), sites=(2,))
    )
    c.append(SynthCondition("seed_plus1", seed_offset=1, effect={"lpips": 0.4}))
    return c


def _sampler(over: dict[str, Any]) -> dict[str, Any]:
    return {"guidance_scale": 5.0, "steps": 4, "height": 64, "width": 64, **over}


def synthetic_store(
    path: str | os.PathLike,
    *,
    n_prompts: int = 12,
    seeds_per_prompt: int = 1,
    conditions: list[SynthCondition] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Write a SYNTHETIC H2 store to ``path`` (Zarr v3) and return the dataset written."""
    rng = np.random.default_rng(seed)
    conds = conditions if conditions is not None else default_conditions()
    prompts = [f"synthetic prompt {i}" for i in range(n_prompts)]
    rows = []
    for p in range(n_prompts):
        for r in range(seeds_per_prompt):
            for c in conds:
                rows.append((p, r, c))
    n = len(rows)
    prompt_q = {m: rng.normal(BASE[m], SD[m] * 3, size=(n_prompts, seeds_per_prompt)) for m in METRICS}
    scores = {m: np.empty(n) for m in METRICS}
    lpips = np.empty(n)
    feats_base = rng.normal(size=(n_prompts, seeds_per_prompt, N_FEAT))
    feats = np.empty((n, N_FEAT), dtype=np.float32)
    images = np.empty((n, IMG, IMG, 3), dtype=np.uint8)
    base_img = rng.integers(0, 256, size=(n_prompts, seeds_per_prompt, IMG, IMG, 3))
    edit_names = [c.name for c in conds if c.edits]
    n_edit = len(edit_names)
    shape = (n, n_edit, N_STEPS, 1, N_SITES, N_BRANCH, N_HEADS)
    before = np.full(shape, np.nan, dtype=np.float32)
    after = np.full(shape, np.nan, dtype=np.float32)
    ent_after = np.full(shape, np.nan, dtype=np.float32)
    ekeys = np.full((*shape, 10), -1, dtype=np.int32)
    entropy = rng.normal(5.0, 0.05, size=(n, N_STEPS, 1, N_SITES, N_BRANCH, N_HEADS)).astype(np.float32)
    for i, (p, r, c) in enumerate(rows):
        for m in METRICS:
            noise = rng.normal(0, SD[m] * 0.5) if c.effect.get(m, 0.0) != 0.0 else 0.0
            scores[m][i] = prompt_q[m][p, r] + c.effect.get(m, 0.0) + noise
        lp = c.effect.get("lpips", 0.0)
        lpips[i] = 0.0 if c.name == "baseline" else max(0.0, lp + rng.normal(0, lp * 0.3))
        feats[i] = feats_base[p, r] + rng.normal(0, 1, N_FEAT) * lp * 2 + lp
        delta = rng.integers(-60, 61, size=(IMG, IMG, 3)) * min(1.0, lp * 3)
        images[i] = np.clip(base_img[p, r] + delta, 0, 255).astype(np.uint8)
        if c.edits:
            e = edit_names.index(c.name)
            spec = c.edits[0]
            k = spec["selector"]["k"]
            eta = spec["operation"]["eta"]
            kind = spec["selector"]["kind"]
            phase = spec["scope"]["phase"]
            for s in c.sites:
                for st in range(N_STEPS):
                    tt = st / (N_STEPS - 1)
                    if phase and not (phase[0] - 1e-9 <= tt <= phase[1] + 1e-9):
                        continue
                    if kind in ("topk",):
                        P = np.clip(rng.normal(0.08 * np.sqrt(k), 0.01, size=(N_BRANCH, N_HEADS)), 0.01, 0.9)
                    else:
                        P = np.clip(rng.normal(k / 365, 0.0005, size=(N_BRANCH, N_HEADS)), 1e-5, 0.9)
                    if spec["operation"]["path"] == "value":
                        post = P
                    else:
                        post = eta * P / (1 - (1 - eta) * P)
                    before[i, e, st, 0, s] = P
                    after[i, e, st, 0, s] = post
                    ent_after[i, e, st, 0, s] = entropy[i, st, 0, s] + (P - post) * 0.5
                    ekeys[i, e, st, 0, s, :, :, :k] = rng.integers(0, 300, size=(N_BRANCH, N_HEADS, min(k, 10)))
    t = np.tile(np.arange(N_STEPS) / (N_STEPS - 1), (n, 1))
    cond_entries = [
        {
            "name": c.name,
            "plan": [{"type": "Record", "stats": ["mass", "entropy"], "layers": "all"}, *c.edits],
            "plan_calls": [],
            "sampler": _sampler(c.sampler),
            "seed_offset": c.seed_offset,
        }
        for c in conds
    ]
    truth = {c.name: c.effect for c in conds}
    ds = xr.Dataset(
        {
            **{m: ("sample", scores[m]) for m in METRICS},
            "lpips_vs_baseline": ("sample", lpips),
            "inception_pool3": (("sample", "feature"), feats),
            "image": (("sample", "y", "x", "rgb"), images),
            "entropy": (("sample", "step", "call", "site", "branch", "head"), entropy),
            "edit_mass_before": (("sample", "edit", "step", "call", "site", "branch", "head"), before),
            "edit_mass_after": (("sample", "edit", "step", "call", "site", "branch", "head"), after),
            "edit_entropy_after": (("sample", "edit", "step", "call", "site", "branch", "head"), ent_after),
            "edit_keys": (("sample", "edit", "step", "call", "site", "branch", "head", "edit_rank"), ekeys),
            "done": ("sample", np.ones(n, dtype=bool)),
        },
        coords={
            "prompt": ("sample", strings([prompts[p] for p, _, _ in rows])),
            "seed": ("sample", np.array([1000 + p * 10 + r + c.seed_offset for p, r, c in rows], dtype=np.int64)),
            "replicate": ("sample", np.array([r for _, r, _ in rows], dtype=np.int64)),
            "prompt_index": ("sample", np.array([p for p, _, _ in rows], dtype=np.int64)),
            "condition": ("sample", strings([c.name for _, _, c in rows])),
            "tag": ("sample", strings([TAGS[p % len(TAGS)] for p, _, _ in rows])),
            "t_over_T": (("sample", "step"), t),
            "step": np.arange(N_STEPS),
            "call": [0],
            "site": strings([f"transformer_blocks.{i}.attn" for i in range(N_SITES)]),
            "site_block": ("site", np.arange(N_SITES)),
            "branch": strings(["uncond", "cond"]),
            "head": np.arange(N_HEADS),
            "edit": strings(edit_names),
            "edit_rank": np.arange(10),
        },
        attrs={
            "synthetic": "true",
            "synthetic_note": "SYNTHETIC test fixture (interp.analysis.synthetic): random numbers with chosen effects",
            "synthetic_truth": json.dumps(truth),
            "sweep_conditions": json.dumps(cond_entries),
            "sweep_baseline": "baseline",
            "sweep_model_id": "SYNTHETIC",
            "model_id": "SYNTHETIC",
        },
    )
    enc = {
        v: {"chunks": tuple(min(64, s) if d == "sample" else s for d, s in zip(ds[v].dims, ds[v].shape, strict=True))}
        for v in ds.variables
        if "sample" in ds[v].dims
    }
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=True, encoding=enc)
    return ds
