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
    k = ds.isel(sample=sample).sel(layout=layout, branch=branch).isel(key=key)
    if str(k.key_modality.values) == "image":
        return f"image patch ({int(k.key_image_row)},{int(k.key_image_col)})"
    role = "BOS" if bool(k.key_is_bos) else "EOS" if bool(k.key_is_eos) else "pad" if bool(k.key_is_pad) else ""
    tok = str(k.key_token_str.values)
    return f"{k.key_encoder.values} {tok!r}" + (f" [{role}]" if role else "")


def dominant_keys(ds: xr.Dataset, site: str, branch: str = "cond") -> Counter:
    """How often each key identity is the argmax key at ``site`` (over samples, steps, calls, heads)."""
    layout = str(ds.site_key_layout.sel(site=site).values)
    arg = ds.argmax_key.sel(site=site, branch=branch).load()
    counts: Counter = Counter()
    for s in range(ds.sizes["sample"]):
        vals = np.asarray(arg.isel(sample=s).values).ravel()
        for key, n in Counter(int(v) for v in vals if v >= 0).items():
            counts[key_label(ds, s, layout, branch, key)] += n
    return counts


def summarize(ds: xr.Dataset, branch: str = "cond") -> str:
    """Per site: mean and max of max_mass (uniform = 1 / keys), and the most frequent dominant key."""
    if "max_mass" not in ds:
        raise KeyError("the store has no max_mass: record('mass', ...) to summarise sinks")
    lines = [f"{ds.sizes['sample']} sample(s), branch {branch!r}; max_mass over steps and heads",
             f"{'site':<34}{'mean':>8}{'max':>8}{'x uniform':>11}  most frequent dominant key (share)"]
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
        lines.append(f"{site:<34}{vals.mean():>8.4f}{vals.max():>8.4f}{vals.mean() * n_keys:>11.1f}  "
                     f"{top} ({n / max(total, 1):.0%})")
    return "\n".join(lines)
