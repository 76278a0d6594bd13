"""A short text summary of an observation store: max mass per layer and who the dominant keys are.

Used by the main job (``interp demo``) and handy in a notebook. The identity of a key is read from the
store's token coordinates: a text token is shown with its string and role (BOS / EOS / pad / content),
an image patch with its (row, col).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import xarray as xr


def key_label(ds: xr.Dataset, sample: int, layout: str, branch: str, key: int) -> str:
    """Human-readable identity of one key of one sample."""
    return _labeler(ds, layout, branch)(sample, key)


def _labeler(ds: xr.Dataset, layout: str, branch: str):
    """A fast ``(sample, key) -> label`` for one layout and branch: the token coordinates are loaded once
    into numpy (indexing a lazy store key by key would build a dask graph per key)."""
    sel = ds[
        [
            c
            for c in (
                "key_modality",
                "key_image_row",
                "key_image_col",
                "key_image_frame",
                "key_is_bos",
                "key_is_eos",
                "key_is_pad",
                "key_token_str",
                "key_encoder",
            )
            if c in ds.variables
        ]
    ]
    sel = sel.sel(layout=layout, branch=branch)
    if "sample" not in sel.dims:
        sel = sel.expand_dims("sample")
    arr = {name: np.asarray(sel[name].values) for name in sel.variables if name.startswith("key_")}

    def label(sample: int, key: int) -> str:
        if str(arr["key_modality"][sample, key]) == "image":
            if "key_image_frame" in arr:  # video: (frame, row, col)
                f, r, c = (int(arr[n][sample, key]) for n in ("key_image_frame", "key_image_row", "key_image_col"))
                return f"image patch ({f},{r},{c})"
            return f"image patch ({int(arr['key_image_row'][sample, key])},{int(arr['key_image_col'][sample, key])})"
        role = (
            "BOS"
            if arr["key_is_bos"][sample, key]
            else "EOS"
            if arr["key_is_eos"][sample, key]
            else "pad"
            if arr["key_is_pad"][sample, key]
            else ""
        )
        text = f"{arr['key_encoder'][sample, key]} {str(arr['key_token_str'][sample, key])!r}"
        return text + (f" [{role}]" if role else "")

    return label


def _site_layout(ds: xr.Dataset, site: str) -> str:
    """``site``'s own key layout: ``site_key_layout``, or the store's only layout when it lacks that
    variable (a store with several layouts and no ``site_key_layout`` cannot say which is the site's)."""
    if "site_key_layout" in ds.variables:
        return str(ds.site_key_layout.sel(site=site).values)
    layouts = [str(v) for v in ds["layout"].values] if "layout" in ds.coords else []
    if len(layouts) != 1:
        raise ValueError(f"the store holds layouts {layouts} but no site_key_layout: which is {site}'s?")
    return layouts[0]


def dominant_keys(ds: xr.Dataset, site: str, branch: str = "cond") -> Counter:
    """How often each key identity is the argmax key at ``site`` (over samples, steps, calls, heads)."""
    layout = _site_layout(ds, site)
    arg = np.asarray(ds.argmax_key.sel(site=site, branch=branch).values)
    label = _labeler(ds, layout, branch)
    counts: Counter = Counter()
    for s in range(arg.shape[0]):
        for key, n in Counter(int(v) for v in arg[s].ravel() if v >= 0).items():
            counts[label(s, key)] += n
    return counts


def summarize(ds: xr.Dataset, branch: str = "cond") -> str:
    """Per site: mean and max of max_mass (uniform = 1 / keys), and the most frequent dominant key."""
    if "max_mass" not in ds:
        raise KeyError("the store has no max_mass: record('mass', ...) to summarise sinks")
    lines = [
        f"{ds.sizes['sample']} sample(s), branch {branch!r}; max_mass over steps and heads",
        f"{'site':<34}{'mean':>8}{'max':>8}{'x uniform':>11}  most frequent dominant key (share)",
    ]
    mm = ds.max_mass.sel(branch=branch).load()
    for site in [str(s) for s in ds.site.values]:
        vals = mm.sel(site=site).values
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        n_keys = int(ds.site_keys.sel(site=site))
        counts = dominant_keys(ds, site, branch)
        total = sum(counts.values())
        top, n = counts.most_common(1)[0] if counts else ("-", 0)
        lines.append(
            f"{site:<34}{vals.mean():>8.4f}{vals.max():>8.4f}{vals.mean() * n_keys:>11.1f}  "
            f"{top} ({n / max(total, 1):.0%})"
        )
    return "\n".join(lines)
