"""Token identity of edits: which kind of token every edited key was (``interp.edits.words`` classes),
counted per sample, CFG branch, site, step and class, straight from a sweep store.

Design
------
A sweep store holds, per sample, the keys each edit acted on (``edit_keys``: edit, step, call, site,
branch, head, edit_rank; -1 padded) and the token layout of every key (``key_token_str``,
``key_modality``, ``key_is_bos`` / ``key_is_eos`` / ``key_is_pad``). ``key_classes`` rebuilds each
sample's layout and labels its keys with ``interp.edits.words.word_class`` (the same function the
``words=`` selectors use, so "content" means the same thing in the edit and in the analysis);
``class_counts`` counts edited keys per (sample, branch, site, step, class) with one ``np.bincount``
over a flat index. Samples are read in blocks (``blocks``) so a large store never sits in memory.

Every site's key indices are read in that site's own key layout (``site_key_layout``): a video
family's self-attention keys are the video tokens and its cross-attention keys the text, SDXL's attn1
keys are image patches at the block's resolution and its attn2 keys the CLIP text. ``layout_classes``
labels every layout a site uses (sample, layout, branch, key) and ``site_layouts`` maps each site to
its layout, so a key is never labelled with another site's tokens; ``key_classes`` labels one layout
the caller names (there is no default layout).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr

from interp.adapters.base import TokenLayout
from interp.edits.words import WORD_CLASSES, word_class


def site_layouts(ds: xr.Dataset) -> np.ndarray:
    """(site,) index into the store's ``layout`` coordinate of each site's key layout (``site_key_layout``).

    A store that names no per-site layout has one layout, used by every site; a site naming a layout the
    store does not hold is an error (labelling its keys with another layout would be silently wrong)."""
    n_sites = ds.sizes["site"]
    if "site_key_layout" not in ds.variables:
        if ds.sizes.get("layout", 1) != 1:
            raise ValueError(
                f"the store holds {ds.sizes['layout']} key layouts but no site_key_layout: "
                "cannot tell which layout a site's keys are in"
            )
        return np.zeros(n_sites, dtype=np.int64)
    names = [str(v) for v in as_str(ds["layout"].values)]
    wanted = [str(v) for v in as_str(ds["site_key_layout"].values)]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"site_key_layout names layouts the store does not hold: {unknown} (it holds {names})")
    return np.array([names.index(w) for w in wanted], dtype=np.int64)


def layout_classes(ds: xr.Dataset) -> np.ndarray:
    """(sample, layout, branch, key) int8 classes (:func:`key_classes`) of every layout some site uses
    (-1 elsewhere); index it with :func:`site_layouts` to label a site's keys."""
    used = np.unique(site_layouts(ds))
    shape = (ds.sizes["sample"], ds.sizes.get("layout", 1), ds.sizes["branch"], ds.sizes["key"])
    out = np.full(shape, -1, dtype=np.int8)
    for li in used:
        out[:, li] = key_classes(ds, int(li))
    return out


def key_classes(ds: xr.Dataset, layout: int) -> np.ndarray:
    """(sample, branch, key) int8 index into ``WORD_CLASSES`` of every key of the layout at index ``layout``
    of the store's ``layout`` coordinate, -1 beyond it. Which layout a site's keys are in is the store's
    ``site_key_layout`` (:func:`site_layouts`)."""
    tok = as_str(ds.key_token_str.isel(layout=layout).values)
    mod = as_str(ds.key_modality.isel(layout=layout).values)
    bos = np.asarray(ds.key_is_bos.isel(layout=layout).values, bool)
    eos = np.asarray(ds.key_is_eos.isel(layout=layout).values, bool)
    pad = np.asarray(ds.key_is_pad.isel(layout=layout).values, bool)
    out = np.full(tok.shape, -1, dtype=np.int8)
    lookup = {c: i for i, c in enumerate(WORD_CLASSES)}
    seen: dict[tuple, np.ndarray] = {}  # a caption's layout recurs in every condition: classify it once
    for s in range(tok.shape[0]):
        for b in range(tok.shape[1]):
            real = mod[s, b] != ""
            n = int(real.sum())
            if n == 0:
                continue
            key = (
                tuple(tok[s, b, :n]),
                tuple(mod[s, b, :n]),
                bos[s, b, :n].tobytes(),
                eos[s, b, :n].tobytes(),
                pad[s, b, :n].tobytes(),
            )
            if key in seen:
                out[s, b, :n] = seen[key]
                continue
            lay = TokenLayout(
                modality=mod[s, b, :n],
                encoder=mod[s, b, :n],
                token_id=np.zeros(n, np.int64),
                token_str=tok[s, b, :n],
                is_bos=bos[s, b, :n],
                is_eos=eos[s, b, :n],
                is_pad=pad[s, b, :n],
                image_row=np.zeros(n, np.int64),
                image_col=np.zeros(n, np.int64),
            )
            seen[key] = np.array([lookup[c] for c in word_class(lay)], dtype=np.int8)
            out[s, b, :n] = seen[key]
    return out


def as_str(values: np.ndarray) -> np.ndarray:
    """A string array of any numpy string dtype (the store's ``StringDType`` included) as ``str_``."""
    arr = np.asarray(values)
    return np.array(arr.tolist(), dtype=str).reshape(arr.shape) if arr.size else arr.astype(object).astype(str)


def class_counts(keys: np.ndarray, classes: np.ndarray, site_layout: np.ndarray) -> np.ndarray:
    """Edited keys per (sample, branch, site, step, class), each site's keys labelled in its own layout.

    ``keys``: (sample, step, site, branch, head, rank) key indices, -1 padded (one edit, one call);
    ``classes``: (sample, layout, branch, key) from :func:`layout_classes`; ``site_layout``: (site,) layout
    index of each site (:func:`site_layouts`)."""
    n, n_step, n_site, n_branch = keys.shape[:4]
    site_layout = np.asarray(site_layout, dtype=np.int64)
    if site_layout.shape != (n_site,):
        raise ValueError(f"site_layout has shape {site_layout.shape}, the keys have {n_site} sites")
    s_idx, t_idx, site_idx, b_idx = np.indices(keys.shape[:4], sparse=True)
    valid = (keys >= 0) & (keys < classes.shape[-1])
    lay = site_layout[site_idx]
    cls = classes[
        s_idx[..., None, None], lay[..., None, None], b_idx[..., None, None], np.clip(keys, 0, classes.shape[-1] - 1)
    ]
    valid &= cls >= 0
    flat = (((s_idx * n_branch + b_idx) * n_site + site_idx) * n_step + t_idx)[..., None, None] * len(WORD_CLASSES)
    flat = np.broadcast_to(flat + cls.astype(np.int64), keys.shape)[valid]
    counts = np.bincount(flat, minlength=n * n_branch * n_site * n_step * len(WORD_CLASSES))
    return counts.reshape(n, n_branch, n_site, n_step, len(WORD_CLASSES))


def dominant_counts(argmax: np.ndarray, classes: np.ndarray, site_layout: np.ndarray) -> np.ndarray:
    """Heads whose most-attended key is of each class, per (sample, branch, site, step, class).

    ``argmax``: (sample, step, site, branch, head) key indices (the ``mass`` record's ``argmax_key``);
    ``classes`` and ``site_layout`` as in :func:`class_counts`."""
    return class_counts(argmax[..., None], classes, site_layout)


def blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def class_shares(counts: np.ndarray, axis: tuple[int, ...] | int | None = None) -> np.ndarray:
    """Share of each class (last axis) of ``counts`` summed over ``axis`` (default: every other axis).

    NaN where nothing was counted (an edit in no scope, a branch without text)."""
    c = np.asarray(counts, np.float64)
    if axis is None:
        axis = tuple(range(c.ndim - 1))
    total = c.sum(axis=axis)
    tot = total.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, total / np.where(tot > 0, tot, 1), np.nan)


def group_counts(counts: np.ndarray, group: tuple[str, ...]) -> np.ndarray:
    """Counts of the classes of ``group`` (e.g. ``interp.edits.words.CONTENT``), summed (class axis last)."""
    idx = [WORD_CLASSES.index(c) for c in group]
    return np.asarray(counts)[..., idx].sum(axis=-1)
