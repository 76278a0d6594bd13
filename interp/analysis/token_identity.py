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
over a flat index. Samples are read in blocks (``reduce_blocks``) so a large store never sits in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr

from interp.adapters.base import TokenLayout
from interp.edits.words import WORD_CLASSES, word_class


def key_classes(ds: xr.Dataset, layout: int = 0) -> np.ndarray:
    """(sample, branch, key) int8 index into ``WORD_CLASSES`` of every key (of ``layout``), -1 beyond it."""
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


def class_counts(keys: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Edited keys per (sample, branch, site, step, class).

    ``keys``: (sample, step, site, branch, head, rank) key indices, -1 padded (one edit, one call);
    ``classes``: (sample, branch, key) from :func:`key_classes`."""
    n, n_step, n_site, n_branch = keys.shape[:4]
    s_idx, t_idx, site_idx, b_idx = np.indices(keys.shape[:4], sparse=True)
    valid = keys >= 0
    cls = classes[s_idx[..., None, None], b_idx[..., None, None], np.clip(keys, 0, None)]
    valid &= cls >= 0
    flat = (((s_idx * n_branch + b_idx) * n_site + site_idx) * n_step + t_idx)[..., None, None] * len(WORD_CLASSES)
    flat = np.broadcast_to(flat + cls.astype(np.int64), keys.shape)[valid]
    counts = np.bincount(flat, minlength=n * n_branch * n_site * n_step * len(WORD_CLASSES))
    return counts.reshape(n, n_branch, n_site, n_step, len(WORD_CLASSES))


def dominant_counts(argmax: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Heads whose most-attended key is of each class, per (sample, branch, site, step, class).

    ``argmax``: (sample, step, site, branch, head) key indices (the ``mass`` record's ``argmax_key``)."""
    return class_counts(argmax[..., None], classes)


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
