"""Choosing the edited keys of one attention call: top-k / bottom-k sinks, random controls, fixed keys.

Design
------
``choose_keys`` returns, for every (batch row, head), the edited key indices as a (B, H, K) int64
tensor padded with -1, K the largest set size. Inputs are the unedited incoming mass of the call
(B, H, Nk) over the selector's query set, a candidate mask per batch row (valid keys of the right
modality), and the token layout of each row's branch (for modality / token-class matching and fixed
token names). Ranking ties are broken by key index (``torch.topk`` on CPU is stable in practice; the
top set is what matters).

Random controls draw from a ``numpy`` generator seeded by (selector seed, trace seed, step, call, site,
batch row, edit index), so the same seed gives the same keys and draws differ across steps, samples,
sites and branches; they never draw a key of the top-k set they control for. Matching:
``modality`` draws as many text and image keys as the top-k set has; ``token_class`` matches its
composition over (image, text content, text padding, text special); ``mass`` shuffles the non-top-k
candidates and keeps the prefix whose total unedited mass is closest to the top-k set's (so
|achieved - target| <= the mass of one candidate key).

A selector with ``words`` (``interp.edits.words``) keeps only the top-k keys of those word classes
(the others become -1, so heads differ in how many keys they edit); its random control draws, per
head, as many keys as that filtered set has (matched on it), still never from the whole top-k set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from interp.adapters.base import TokenLayout
from interp.edits.spec import Selector
from interp.edits.words import word_class
from interp.plan import PlanError


def token_class(layout: TokenLayout) -> np.ndarray:
    """Per key: 0 image, 1 text content, 2 text padding, 3 text special (BOS / EOS)."""
    cls = np.where(layout.modality == "image", 0, 1)
    cls = np.where(layout.is_pad, 2, cls)
    return np.where(layout.is_bos | layout.is_eos, 3, cls)


def candidates_of(layouts: Sequence[TokenLayout], modality: str | None) -> Tensor:
    """(B, Nk) bool candidate keys of each batch row's layout, on the CPU."""
    return torch.as_tensor(np.stack([candidates(lay, modality) for lay in layouts]))


def candidates(layout: TokenLayout, modality: str | None) -> np.ndarray:
    keep = np.asarray(layout.valid, bool).copy()
    if modality is not None:
        keep &= layout.modality == modality
    return keep


def resolve_fixed(keys: Sequence[object], layout: TokenLayout) -> np.ndarray:
    """Key indices of fixed keys given by index or token name (CLIP pads are positions after EOS)."""
    out: list[int] = []
    n = len(layout)
    clip = np.char.startswith(layout.encoder.astype(str), "CLIP")
    t5 = np.char.startswith(layout.encoder.astype(str), "T5") | (layout.encoder.astype(str) == "UMT5")
    named = {
        "clip_bos": clip & layout.is_bos,
        "clip_eos": clip & layout.is_eos,
        "clip_pad": clip & layout.is_pad,
        "t5_eos": t5 & layout.is_eos,
        "t5_pad": t5 & layout.is_pad,
        "text": layout.modality == "text",
        "image": layout.modality == "image",
    }
    for key in keys:
        if isinstance(key, int):
            if not (-n <= key < n):
                raise PlanError(f"fixed key {key} is out of range: this site has {n} keys")
            out.append(key % n)
        elif key in named:
            idx = np.flatnonzero(named[key])
            if len(idx) == 0:
                raise PlanError(f"fixed key {key!r}: this site's token layout has no such token")
            out.extend(int(i) for i in idx)
        else:  # image:ROW,COL, or image:FRAME,ROW,COL on video
            parts = [int(x) for x in str(key)[6:].split(",")]
            if len(parts) == 3 and not layout.has_frames:
                raise PlanError(f"fixed key {key!r}: this site's tokens have no frames; give 'image:ROW,COL'")
            if len(parts) == 2 and layout.has_frames:
                raise PlanError(f"fixed key {key!r}: this site's tokens are a video's; give 'image:FRAME,ROW,COL'")
            *f, r, c = parts
            hit = (layout.image_row == r) & (layout.image_col == c)
            if f:
                hit &= layout.image_frame == f[0]
            idx = np.flatnonzero(hit)
            if len(idx) == 0:
                where = f"frame {f[0]}, row {r}, col {c}" if f else f"row {r}, col {c}"
                raise PlanError(f"fixed key {key!r}: no image patch at {where}")
            out.append(int(idx[0]))
    return np.unique(np.asarray(out, dtype=np.int64))


def _ranked(mass: Tensor, cand: Tensor, k: int, largest: bool, select: str) -> Tensor:
    fill = float("-inf") if largest else float("inf")
    m = mass.masked_fill(~cand[:, None, :], fill)
    if select == "union":
        m = m.mean(dim=1, keepdim=True).expand_as(m)
    return m.topk(k, dim=-1, largest=largest).indices


def check_budget(sel: Selector, layout: TokenLayout, where: str) -> None:
    """Refuse a budget that leaves no key to choose, or no key for the row to attend to."""
    if sel.kind in ("topk", "bottomk", "random", "replay"):
        n = int(candidates(layout, sel.modality).sum())
        what = f"{sel.modality} keys" if sel.modality else "valid keys"
        if sel.k > n:
            raise PlanError(f"{where}: k={sel.k} exceeds the {n} {what} that can be chosen")
        if sel.kind == "random" and sel.match is None and 2 * sel.k > n:
            raise PlanError(
                f"{where}: a random control of k={sel.k} needs {2 * sel.k} {what} (k for the "
                f"top-k set it avoids, k to draw); there are {n}"
            )
        if sel.k >= int(np.asarray(layout.valid).sum()):
            raise PlanError(f"{where}: k={sel.k} would remove every key a query can attend to")


def choose_keys(
    sel: Selector,
    mass: Tensor | None,
    layouts: Sequence[TokenLayout],
    *,
    n_heads: int,
    seed_parts: Sequence[int],
    replayed: Tensor | None = None,
    candidate_mask: Tensor | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Edited key indices (B, H, K), -1 padded. ``layouts[b]`` is the token layout of batch row b.

    ``candidate_mask``: ``candidates_of(layouts, sel.modality)`` on the mass's device, if the caller
    keeps it (the observer does, per trace: building it copies from the host, which synchronises).
    ``device``: where the keys are used (the attention call's); fixed-key and replayed selections have no
    mass to take it from. Defaults to the mass's device, else the CPU."""
    b_rows = len(layouts)
    if device is None:
        device = mass.device if mass is not None else torch.device("cpu")
    if sel.kind == "none" or (sel.kind != "keys" and sel.k == 0):
        return torch.full((b_rows, n_heads, 0), -1, dtype=torch.long, device=device)
    if sel.kind == "keys":
        rows = [torch.as_tensor(resolve_fixed(sel.keys, lay), device=device) for lay in layouts]
        width = max(len(r) for r in rows)
        out = torch.full((b_rows, n_heads, width), -1, dtype=torch.long, device=device)
        for b, r in enumerate(rows):
            out[b, :, : len(r)] = r
        return out
    if sel.kind == "replay":
        assert replayed is not None
        return replayed[..., : sel.k].to(device=device, dtype=torch.long)
    cand = candidate_mask if candidate_mask is not None else candidates_of(layouts, sel.modality).to(device)
    if sel.kind in ("topk", "bottomk"):
        chosen = _ranked(mass, cand, sel.k, sel.kind == "topk", sel.select)
        return _of_words(chosen, layouts, sel.words) if sel.words else chosen
    return _random(sel, mass, cand, layouts, n_heads, seed_parts)


def _of_words(keys: Tensor, layouts: Sequence[TokenLayout], words: tuple[str, ...]) -> Tensor:
    """``keys`` (B, H, K) with the keys whose word class is not in ``words`` replaced by -1."""
    allowed = torch.as_tensor(np.stack([np.isin(word_class(lay), words) for lay in layouts])).to(keys.device)
    keep = allowed[:, None, :].expand(-1, keys.shape[1], -1).gather(-1, keys.clamp(min=0)) & (keys >= 0)
    return torch.where(keep, keys, torch.full_like(keys, -1))


def _random(
    sel: Selector,
    mass: Tensor,
    cand: Tensor,
    layouts: Sequence[TokenLayout],
    n_heads: int,
    seed_parts: Sequence[int],
) -> Tensor:
    top = _ranked(mass, cand, sel.k, True, sel.select)
    # the set the control stands for: the top-k set, or its keys of the named word classes
    target_set = (_of_words(top, layouts, sel.words) if sel.words else top).cpu().numpy()
    top = top.cpu().numpy()
    mass_np = mass.detach().float().cpu().numpy()
    cand_np = cand.cpu().numpy()
    sets: list[list[np.ndarray]] = []
    for b, lay in enumerate(layouts):
        rng = np.random.default_rng(np.random.SeedSequence([int(x) for x in (sel.seed, *seed_parts, b)]))
        cls = token_class(lay) if sel.match == "token_class" else None
        per_head = []
        heads = 1 if sel.select == "union" else n_heads
        for h in range(heads):
            pool = np.flatnonzero(cand_np[b])
            pool = pool[~np.isin(pool, top[b, h])]
            want = target_set[b, h][target_set[b, h] >= 0]
            if len(want) == 0:
                pick = want
            elif sel.match is None:
                pick = rng.choice(pool, size=len(want), replace=False)
            elif sel.match == "modality":
                pick = _stratified(rng, pool, lay.modality, lay.modality[want])
            elif sel.match == "token_class":
                pick = _stratified(rng, pool, cls, cls[want])
            else:  # mass
                m = mass_np[b].mean(0) if sel.select == "union" else mass_np[b, h]
                target = float(m[want].sum())
                order = rng.permutation(pool)
                cum = np.cumsum(m[order])
                n = int(np.argmin(np.abs(cum - target))) + 1
                pick = order[:n]
            per_head.append(np.sort(pick))
        if sel.select == "union":
            per_head = per_head * n_heads
        sets.append(per_head)
    width = max(max(len(p) for row in sets for p in row), 1)
    out = torch.full((len(layouts), n_heads, width), -1, dtype=torch.long)
    for b, row in enumerate(sets):
        for h, p in enumerate(row):
            out[b, h, : len(p)] = torch.as_tensor(p)
    return out.to(mass.device)


def _stratified(rng: np.random.Generator, pool: np.ndarray, labels: np.ndarray, want: np.ndarray) -> np.ndarray:
    picks = []
    for label, count in zip(*np.unique(want, return_counts=True), strict=True):
        sub = pool[labels[pool] == label]
        if len(sub) < count:
            raise PlanError(
                f"matched control: only {len(sub)} candidate keys of class {label!r} outside the "
                f"top-k set, {count} needed"
            )
        picks.append(rng.choice(sub, size=count, replace=False))
    return np.concatenate(picks)
