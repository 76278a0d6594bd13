"""Token identity: which tokens are the sinks (the key of largest incoming mass) across prompts, layers
and steps, filterable by GenEval tag and step.

Design
------
For the chosen condition, CFG branch, tag and step (or all steps), every (sample, step, call, layer,
head) cell's sink is its ``argmax_key``; each is labelled with the key's token text and its word class, computed by
``interp.analysis.token_identity.key_classes`` (the sink-identity analyses' classes, so a class means
the same in the table and in the analyses). The view counts sinks per token text (a bar chart of the
most frequent ones, image keys pooled as "[image]"), the share of each class per layer, and a layer x
step map of the dominant sink's class (the class of the most sink cells of that layer and step, over
samples, calls and heads; all steps whatever the step select says). Keys are read in each site's own
key layout (``site_key_layout``: a video family's self-attention keys are video tokens).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp.analysis.token_identity import as_str, key_classes
from interp.edits.words import WORD_CLASSES
from interp.view.payload import Payload, empty, floats, message, select, table
from interp.view.source import Selection, StoreSource

TOP = 20


def payload(src: StoreSource, params: dict[str, str]) -> Payload:
    p = empty()
    cond = select(p, "tok_condition", [(c, c) for c in src.conditions], (params.get("condition") or src.baseline))
    tags = sorted(set(src.samples["tag"]) - {""})
    tag = select(p, "tok_tag", [("all", "all tags"), *((t, t) for t in tags)], (params.get("tag") or "all"))
    branch = select(p, "tok_branch", [(b, b) for b in src.branches], (params.get("branch") or "cond"))
    steps = [str(int(s)) for s in src.ds["step"].values] if "step" in src.ds.dims else []
    step_options = [("all", "all steps"), *((s, f"step {s}") for s in steps)]
    step = select(p, "tok_step", step_options, params.get("step") or "all")
    p["sources"]["tok_src"] = {"token": [], "count": []}
    p["sources"]["tok_heat_src"] = {"step": [], "layer": [], "cls": [], "share": []}
    p["factors"]["tok_x"] = []
    if "argmax_key" not in src.ds.data_vars or "key_token_str" not in src.ds.variables:
        p["divs"]["tok_html"] = message(f"{src.name} records no sink keys (argmax_key): record 'mass' for this view")
        return p
    positions = src.positions(Selection(cond, None))
    if tag != "all":
        positions = positions[src.samples["tag"].to_numpy()[positions] == tag]
    if positions.size == 0:
        p["divs"]["tok_html"] = message(f"no finished sample of condition {cond!r} has tag {tag!r}")
        return p
    ds = src.key_variables(positions)
    bi = src.branches.index(branch)
    every = np.asarray(
        src.ds["argmax_key"].isel(sample=positions, branch=bi).values
    )  # (sample, step, call, site, head)
    n_sites = every.shape[3]
    layouts = {li: _key_labels(ds, bi, li) for li in {src.layout_of(j) for j in range(n_sites)}}
    per_site = [layouts[src.layout_of(j)] for j in range(n_sites)]
    cls_all = _sink_classes(every, per_site)  # (sample, step, call, site, head), -1 where no sink
    sinks = every if step == "all" else every[:, [steps.index(step)]]
    cls_sel = cls_all if step == "all" else cls_all[:, [steps.index(step)]]
    ok = sinks >= 0
    label = np.concatenate([_sink_labels(sinks[:, :, :, j], *per_site[j][:2]) for j in range(n_sites)])
    cls = np.concatenate([cls_sel[:, :, :, j][ok[:, :, :, j]] for j in range(n_sites)])
    site_of = np.concatenate([np.full(int(ok[:, :, :, j].sum()), j) for j in range(n_sites)])
    counts = pd.Series(label).value_counts().head(TOP)
    total = int(ok.sum())
    p["sources"]["tok_src"] = {"token": list(counts.index), "count": floats(counts.to_numpy() / max(total, 1))}
    p["factors"]["tok_x"] = list(counts.index)
    rows = []
    for j, lab in enumerate(src.site_labels):
        here = cls[site_of == j]
        n = max(here.size, 1)
        rows.append([lab, *(float((here == c).sum() / n) for c in range(len(WORD_CLASSES)))])
    _class_heatmap(p, src, steps, cls_all)
    token_rows = [(t, int(c), float(c / max(total, 1))) for t, c in pd.Series(label).value_counts().head(TOP).items()]
    p["divs"]["tok_html"] = (
        f"<p class='tok-summary'>{total} sink cells (sample x step x call x layer x head) of {positions.size} "
        f"samples, condition {cond}, tag {tag}, branch {branch}, {'all steps' if step == 'all' else 'step ' + step}</p>"
        + "<h4>share of sinks by word class, per layer</h4>"
        + table(["layer", *WORD_CLASSES], rows, cls="tok-classes")
        + "<h4>most frequent sink tokens</h4>"
        + table(["token", "cells", "share"], token_rows, cls="tok-tokens")
    )
    return p


def _key_labels(ds, bi: int, layout: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text, modality, class) of every key of one layout and branch: each (sample, key)."""
    text = as_str(ds["key_token_str"].isel(layout=layout, branch=bi).values)
    modality = as_str(ds["key_modality"].isel(layout=layout, branch=bi).values)
    return text, modality, key_classes(ds, layout)[:, bi]


def _sink_labels(sinks: np.ndarray, text: np.ndarray, modality: np.ndarray) -> np.ndarray:
    """The label of each sink (>= 0) of ``sinks`` (sample, ...): its token text, "[image]" for image keys."""
    s_idx = np.broadcast_to(np.arange(sinks.shape[0]).reshape((-1,) + (1,) * (sinks.ndim - 1)), sinks.shape)
    ok = sinks >= 0
    ks, ss = sinks[ok], s_idx[ok]
    label = np.where(modality[ss, ks] == "image", "[image]", text[ss, ks])
    return np.where(label == "", "[empty]", label)


def _sink_classes(sinks: np.ndarray, per_site: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """The word class (index into WORD_CLASSES) of every sink of (sample, step, call, site, head); -1: none."""
    out = np.full(sinks.shape, -1, dtype=np.int64)
    s_idx = np.broadcast_to(np.arange(sinks.shape[0])[:, None, None, None], sinks[:, :, :, 0].shape)
    for j, (_, _, classes) in enumerate(per_site):
        here = sinks[:, :, :, j]
        ok = here >= 0
        out[:, :, :, j][ok] = classes[s_idx[ok], here[ok]]
    return out


def _class_heatmap(p: Payload, src: StoreSource, steps: list[str], cls: np.ndarray) -> None:
    """Layer x step map of the dominant sink's class: per (step, layer) the class of the most sink cells
    (samples x calls x heads; ties to the first class in WORD_CLASSES) and its share of the cells."""
    n_cls = len(WORD_CLASSES)
    counts = np.stack([(cls == c).sum(axis=(0, 2, 4)) for c in range(n_cls)], axis=-1)  # (step, site, class)
    total = counts.sum(-1)
    top = counts.argmax(-1)
    out: dict[str, list] = {"step": [], "layer": [], "cls": [], "share": []}
    for i, st in enumerate(steps):
        for j, lab in enumerate(src.site_labels):
            if total[i, j] == 0:
                continue
            out["step"].append(st)
            out["layer"].append(lab)
            out["cls"].append(WORD_CLASSES[int(top[i, j])])
            out["share"].append(f"{counts[i, j, top[i, j]] / total[i, j]:.0%}")
    p["sources"]["tok_heat_src"] = out
    p["factors"]["tok_heat_x"] = steps
    p["factors"]["tok_heat_y"] = list(src.site_labels)
