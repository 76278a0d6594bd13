"""Token identity: which tokens are the sinks (the key of largest incoming mass) across prompts, layers
and steps, filterable by GenEval tag and step.

Design
------
For the chosen condition, CFG branch, tag and step (or all steps), every (sample, step, call, layer,
head) cell's sink is its ``argmax_key``; each is labelled with the key's token text and its word class, computed by
``interp.analysis.token_identity.key_classes`` (the sink-identity analyses' classes, so a class means
the same in the table and in the analyses). The view counts sinks per token text (a bar chart of the
most frequent ones, image keys pooled as "[image]") and the share of each class per layer.
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
    sinks = np.asarray(src.ds["argmax_key"].isel(sample=positions, branch=bi).values)  # (sample, step, ...)
    if step != "all":
        sinks = sinks[:, [steps.index(step)]]
    text = as_str(ds["key_token_str"].isel(layout=0, branch=bi).values)  # (sample, key)
    modality = as_str(ds["key_modality"].isel(layout=0, branch=bi).values)
    classes = key_classes(ds)[:, bi]  # (sample, key)
    s_idx = np.broadcast_to(np.arange(sinks.shape[0])[:, None, None, None, None], sinks.shape)
    ok = sinks >= 0
    ks, ss = sinks[ok], s_idx[ok]
    label = np.where(modality[ss, ks] == "image", "[image]", text[ss, ks])
    label = np.where(label == "", "[empty]", label)
    site_of = np.broadcast_to(np.arange(sinks.shape[3])[None, None, None, :, None], sinks.shape)[ok]
    counts = pd.Series(label).value_counts().head(TOP)
    total = int(ok.sum())
    p["sources"]["tok_src"] = {"token": list(counts.index), "count": floats(counts.to_numpy() / max(total, 1))}
    p["factors"]["tok_x"] = list(counts.index)
    cls = classes[ss, ks]
    rows = []
    for j, lab in enumerate(src.site_labels):
        here = cls[site_of == j]
        n = max(here.size, 1)
        rows.append([lab, *(float((here == c).sum() / n) for c in range(len(WORD_CLASSES)))])
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
