"""H1 dynamics: Table 1 (per-layer attention concentration and activation norms) and Figure 2 (against t/T).

Design
------
Read from the baseline samples of an observation store. Each statistic is first averaged, per sample,
over heads (padded heads are NaN and skipped), CFG branches and denoiser calls, giving one value per
(sample, step, layer). Table 1 averages it over steps per sample and reports the mean over samples
with a bootstrap CI over prompts (prompt-clustered when a prompt has several seeds). Figure 2 plots,
per layer, the mean over samples at each step against t/T = step / (T - 1).

Columns: MaxMass (largest incoming mass of any key, mean over heads and branches) and the same as a
multiple of the uniform mass 1/N; entropy (nats); top-k concentration ``query_topk`` (the per-query
variant the paper's Table 1 uses; its k is read from the store and printed); the maximum attention
output norm (``act_pre_max``, pre output projection, L-infinity when recorded) of image and of text
query rows. MaxMass, entropy and ``query_topk`` are required; the activation columns are optional and
the table says when they were not recorded.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from interp import stats
from interp.analysis import style
from interp.analysis.context import Context, Result
from interp.analysis.data import baseline_samples, require_variables, site_label, steps_run, steps_text, strings
from interp.analysis.errors import StoreLacks
from interp.analysis.tables import Column, Table, ci_cell

NAME = "h1_dynamics"
REQUIRED = ("max_mass", "entropy", "query_topk")


def per_sample_step(da: xr.DataArray) -> xr.DataArray:
    """Mean over heads, branches and calls (NaN-skipping): dims (sample, step, site)."""
    dims = [d for d in ("head", "branch", "call") if d in da.dims]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices (a layer not recorded at a step)
        return da.mean(dim=dims, skipna=True).transpose("sample", "step", "site")


def act_norm(ds: xr.Dataset, stream: str) -> tuple[xr.DataArray, str] | None:
    if "act_pre_max" not in ds or stream not in [str(s) for s in ds["stream"].values]:
        return None
    ords = [str(o) for o in ds["norm_ord"].values]
    order = "inf" if "inf" in ords else ords[0]
    da = ds["act_pre_max"].sel(stream=stream, norm_ord=order)
    if not np.isfinite(da.values).any():
        return None
    return da, order


def step_axis(ds: xr.Dataset, *, analysis: str) -> np.ndarray:
    """t/T per step, the same for every sample (else the samples mix step counts)."""
    t = np.asarray(ds["t_over_T"].values, dtype=np.float64)
    if t.ndim == 1:
        return t
    ref = t[0]
    same = np.all((np.abs(t - ref) < 1e-9) | (np.isnan(t) & np.isnan(ref)), axis=1)
    if not same.all():
        raise ValueError(
            f"{analysis}: the baseline samples have different step schedules (t/T differs); "
            "analyse conditions with one number of steps at a time"
        )
    return ref


def _ci(values: np.ndarray, prompts: np.ndarray, ctx: Context) -> tuple[float, float, float]:
    ok = np.isfinite(values)
    if ok.sum() == 0:
        return (np.nan, np.nan, np.nan)
    if ok.sum() == 1:
        v = float(values[ok][0])
        return (v, np.nan, np.nan)
    p = prompts[ok]
    clusters = p if np.unique(p).size < p.size else None
    ci = stats.bootstrap_ci(values[ok], clusters=clusters, **ctx.cfg.boot)
    return (ci.estimate, ci.low, ci.high)


def run(ctx: Context) -> Result:
    ds = baseline_samples(ctx.ds, ctx.cfg.baseline, analysis=NAME)
    require_variables(
        ds, REQUIRED, analysis=NAME, hint="record('mass', 'entropy', 'query_topk', layers='all') in the baseline"
    )
    res = Result(NAME)
    prompts = strings(ds["prompt"].values) if "prompt" in ds.variables else np.arange(ds.sizes["sample"]).astype(object)
    series: dict[str, tuple[xr.DataArray, str, str]] = {
        "max_mass": (per_sample_step(ds["max_mass"]), "MaxMass", "max incoming mass (fraction)"),
        "entropy": (per_sample_step(ds["entropy"]), "entropy (nats)", "entropy (nats)"),
    }
    k = ds["query_topk"].attrs.get("k", "?")
    series["query_topk"] = (
        per_sample_step(ds["query_topk"]),
        f"top-{k} conc. (query_topk)",
        f"top-{k} concentration (fraction)",
    )
    missing_act = []
    for stream in ("image", "text"):
        got = act_norm(ds, stream)
        if got is None:
            missing_act.append(stream)
            continue
        da, order = got
        norm = "L∞" if order == "inf" else f"L{order}"
        series[f"act_{stream}"] = (
            per_sample_step(da),
            f"max |AV| {norm}, {stream} rows",
            f"max |AV| {norm} ({stream} rows)",
        )
    sites = [str(s) for s in ds["site"].values]
    recorded = [s for s in sites if np.isfinite(series["max_mass"][0].sel(site=s).values).any()]
    if not recorded:
        raise StoreLacks("layer", ["any layer with max_mass"], analysis=NAME, have=sites)
    n_keys = dict(zip(sites, (int(v) for v in ds["site_keys"].values), strict=True)) if "site_keys" in ds else {}

    rows: list[dict[str, Any]] = []
    for site in recorded:
        row: dict[str, Any] = {"layer": site_label(ds, site), "site": site, "n_keys": n_keys.get(site, np.nan)}
        for key, (da, _, _) in series.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                per_sample = np.nanmean(da.sel(site=site).values, axis=1)
            est, lo, hi = _ci(per_sample, prompts, ctx)
            row.update({key: est, f"{key}_low": lo, f"{key}_high": hi})
        if n_keys.get(site):
            row["max_mass_x_uniform"] = row["max_mass"] * n_keys[site]
            row["entropy_of_uniform"] = float(np.log(n_keys[site]))
        rows.append(row)
    columns = [Column("layer", "layer"), Column("keys N", "n_keys", digits=0)]
    columns.append(Column("MaxMass [CI]", fmt=lambda r: ci_cell(r, "max_mass")))
    columns.append(Column("MaxMass x N", "max_mass_x_uniform", digits=2))
    columns.append(Column("entropy (nats) [CI]", fmt=lambda r: ci_cell(r, "entropy", 3)))
    columns.append(Column("ln N", "entropy_of_uniform", digits=3))
    columns.append(Column(f"{series['query_topk'][1]} [CI]", fmt=lambda r: ci_cell(r, "query_topk")))
    for stream in ("image", "text"):
        if f"act_{stream}" in series:
            columns.append(
                Column(series[f"act_{stream}"][1] + " [CI]", fmt=lambda r, s=stream: ci_cell(r, f"act_{s}", 3))
            )
    queries = ds["max_mass"].attrs.get("queries", "used")
    notes = [
        f"{ds.sizes['sample']} baseline sample(s) ({np.unique(prompts).size} prompt(s)), "
        f"{steps_text(steps_run(ds))} (condition {ctx.cfg.baseline!r}); "
        "per sample: mean over heads, CFG branches, calls and steps; "
        f"{int(ctx.cfg.level * 100)}% {ctx.cfg.ci_method} bootstrap CI over prompts ({ctx.cfg.n_resamples} resamples).",
        f"Incoming mass over the {queries!r} query set; MaxMass x N is MaxMass as a multiple of the uniform mass 1/N; "
        "ln N is the entropy of uniform attention.",
        f"top-{k} concentration is `query_topk` (mean over queries of each query's {k} largest probabilities), "
        "not `mass_topk`.",
    ]
    if missing_act:
        notes.append(
            f"Activation norms not recorded for {', '.join(missing_act)} rows: "
            "record('act_norms', where='pre_out', ord='inf') to add them."
        )
    res.add_table(
        Table("table01_h1_dynamics", "Table 1: attention concentration per layer (H1)", columns, rows, notes), ctx.out
    )

    # Figure 2: each statistic against t/T, one line per layer
    t = step_axis(ds, analysis=NAME)
    panels = [k for k in ("max_mass", "entropy", "query_topk", "act_image") if k in series]  # the paper's 4 panels
    ncols = 2
    nrows = int(np.ceil(len(panels) / ncols))  # text-row norms are in the table only
    fig, axes = style.figure(nrows, ncols, width=3.6, height=2.6)
    flat = axes.ravel()
    blocks = [int(ds["site_block"].sel(site=s)) if "site_block" in ds else i for i, s in enumerate(recorded)]
    looks = style.site_styles(recorded, blocks)
    for ax, key in zip(flat, panels, strict=False):
        da, _, ylabel = series[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(da.sel(site=recorded).values, axis=0)  # (step, site)
        for j, site in enumerate(recorded):
            y = mean[:, j]
            ok = np.isfinite(y)
            ax.plot(
                t[ok],
                y[ok],
                color=looks[j][0],
                ls=looks[j][1],
                lw=1.3,
                marker="o" if ok.sum() < 12 else None,
                ms=3,
                label=site_label(ds, site),
            )
        ax.set_xlabel("t/T (0 = noisiest step)")
        style.ylabel(ax, ylabel)
        ax.set_xlim(-0.02, 1.02)
    for ax in flat[len(panels) :]:
        ax.axis("off")
        if "act_image" not in series:
            note = (
                "(d) activation norms not recorded: add record('act_norms', where='pre_out', ord='inf') to the baseline"
            )
            ax.text(0.5, 0.5, style.wrap(note, 34), ha="center", va="center", transform=ax.transAxes, color="0.35")
    titles = "abcdef"
    for i, key in enumerate(panels):
        flat[i].set_title(f"({titles[i]}) {series[key][1]}", loc="left")
    style.layer_legend(fig, list(flat[: len(panels)]), [site_label(ds, s) for s in recorded], blocks, recorded)
    fig.suptitle(
        f"Figure 2: attention dynamics over denoising ({ctx.cfg.baseline}, n={ds.sizes['sample']}, "
        f"{steps_text(steps_run(ds))})"
    )
    res.files.append(style.save(fig, ctx.out / "figure02_h1_dynamics.png"))
    return res
