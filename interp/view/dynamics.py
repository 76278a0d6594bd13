"""Sink dynamics: a layer x step heat map of a statistic, and the detail of one (layer, step) cell.

Design
------
The heat map of a variable for a selection (condition, all its samples or one, CFG branch, mean or max
over heads or one head) is the analyses' own reduction (``interp.analysis.h1_dynamics.per_sample_step``:
NaN-skipping mean over heads, branches and calls, per sample), then the mean over the selected
samples; "max over heads" and a single head replace only the head reduction. Activation norms are read
at the image stream and the ``inf`` norm, as the H1 analysis reads them (``act_norm``).

A cell's detail is every recorded statistic per head at that (layer, step) for the same selection,
and the top keys (``topk_keys`` / ``topk_mass``) of one sample (the selected one, else the first of the
condition) with their token text, word class (``interp.edits.words``, the analyses' classes) and, for
image keys, their position marked on that sample's image. Keys are read in the site's own key layout
(``site_key_layout``: a video family's self-attention keys are video tokens, its cross-attention keys
the text); a video key's position is its (frame, row, col), the circle on the image its (row, col).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from interp.analysis.h1_dynamics import per_sample_step
from interp.view.payload import Payload, empty, floats, image_source, image_uri, message, select, table
from interp.view.source import HEAT_VARIABLES, Selection, StoreSource, ViewError

HEADS = (("mean", "mean over heads"), ("max", "max over heads"))


def _variable(src: StoreSource, name: str) -> xr.DataArray:
    da = src.ds[name]
    if "stream" in da.dims:
        da = da.sel(stream="image")
    if "norm_ord" in da.dims:
        ords = [str(o) for o in src.ds["norm_ord"].values]
        da = da.sel(norm_ord="inf" if "inf" in ords else ords[0])
    return da


def selection(src: StoreSource, p: Payload, params: dict[str, str], prefix: str) -> tuple[Selection, str, str]:
    """Resolve (and echo into the selects) the condition, sample, branch and head of a request."""
    cond = select(p, f"{prefix}_condition", [(c, c) for c in src.conditions], (params.get("condition") or src.baseline))
    table_ = src.samples[src.samples["condition"] == cond]
    options = [("all", f"all {len(table_)} samples (mean)")] + [
        (str(int(i)), src.sample_label(int(i))) for i in table_["position"]
    ]
    sample = select(p, f"{prefix}_sample", options, (params.get("sample") or "all"))
    branch = select(p, f"{prefix}_branch", [(b, b) for b in src.branches], (params.get("branch") or "cond"))
    n_head = src.ds.sizes.get("head", 0)
    head = select(
        p, f"{prefix}_head", [*HEADS, *((str(h), f"head {h}") for h in range(n_head))], (params.get("head") or "")
    )
    return Selection(cond, None if sample == "all" else int(sample)), branch, head


def _reduce(src: StoreSource, name: str, sel: Selection, branch: str, head: str) -> np.ndarray:
    """(step, site) values of ``name`` for the selection: the analyses' reduction (module docstring)."""
    da = _variable(src, name).isel(sample=src.positions(sel))
    if "branch" in da.dims:
        da = da.sel(branch=[branch])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if head == "max" and "head" in da.dims:
            da = da.where(np.isfinite(da)).max("head", skipna=True)
        elif head not in ("mean", "max") and "head" in da.dims:
            da = da.isel(head=int(head))
        per = per_sample_step(da)  # (sample, step, site)
        return np.asarray(per.mean("sample", skipna=True).values, dtype=np.float64)


def heatmap(src: StoreSource, params: dict[str, str]) -> Payload:
    p = empty()
    if not src.heat_variables:
        select(p, "dyn_var", [], "")
        p["divs"]["dyn_note"] = message(
            f"{src.name} records no per-layer statistic ({', '.join(HEAT_VARIABLES)}); record 'mass' or 'entropy'",
            "warning",
        )
        p["sources"]["heat_src"] = {"step": [], "layer": [], "value": [], "site": [], "shown": []}
        return p
    var = select(p, "dyn_var", [(v, HEAT_VARIABLES[v]) for v in src.heat_variables], (params.get("var") or ""))
    sel, branch, head = selection(src, p, params, "dyn")
    values = _reduce(src, var, sel, branch, head)  # (step, site)
    steps = [str(int(s)) for s in src.ds["step"].values]
    labels = src.site_labels
    grid_step = [steps[i] for i in range(len(steps)) for _ in labels]
    grid_layer = [labels[j] for _ in steps for j in range(len(labels))]
    grid_site = [src.sites[j] for _ in steps for j in range(len(labels))]
    flat = floats(values.reshape(-1))
    p["sources"]["heat_src"] = {
        "step": grid_step,
        "layer": grid_layer,
        "site": grid_site,
        "value": flat,
        "shown": [("" if v is None else f"{v:.4g}") for v in flat],
    }
    p["factors"]["heat_x"] = steps
    p["factors"]["heat_y"] = labels
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    p["mappers"]["heat_mapper"] = [low, high if high > low else low + 1e-9]
    what = "all samples" if sel.sample is None else src.sample_label(sel.sample)
    p["divs"]["dyn_note"] = (
        f"<b>{HEAT_VARIABLES[var]}</b> ({var}) of condition <b>{sel.condition}</b>, {what}, branch {branch}, "
        f"{dict(HEADS).get(head, f'head {head}')}; click a cell for its heads and top keys"
    )
    return p


def cell(src: StoreSource, params: dict[str, str]) -> Payload:
    """The detail of one (site, step) cell for the heat map's selection."""
    p = empty()
    sel, branch, _ = selection(src, empty(), params, "dyn")
    site, step = (params.get("site") or ""), (params.get("step") or "")
    if site not in src.sites or not step.lstrip("-").isdigit() or int(step) not in set(src.ds["step"].values.tolist()):
        raise ViewError(f"no cell (site {site!r}, step {step!r}) in {src.name}")
    si, st = src.sites.index(site), int(step)
    positions = src.positions(sel)
    heads_rows: dict[str, np.ndarray] = {}
    for var in src.heat_variables:
        da = _variable(src, var)
        if "branch" in da.dims:
            da = da.sel(branch=branch)
        da = src.selection_values(da, f"{var}/{branch}", positions).isel(site=si).sel(step=st)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            da = da.mean([d for d in ("sample", "call") if d in da.dims], skipna=True)
        heads_rows[var] = np.asarray(da.values, dtype=np.float64)
    n_heads = int(src.ds["site_heads"].values[si]) if "site_heads" in src.ds.variables else src.ds.sizes.get("head", 0)
    rows = [[h, *(float(heads_rows[v][h]) for v in heads_rows)] for h in range(n_heads)]
    label = src.site_labels[si]
    parts = [f"<h4 class='cell-title'>{label} ({site}), step {st}</h4>"]
    parts.append(table(["head", *heads_rows], rows, cls="cell-heads"))
    rep = int(positions[0])
    marks: dict[str, list] = {"x": [], "y": [], "label": []}
    if "topk_keys" in src.ds.data_vars:
        keys = np.asarray(src.ds["topk_keys"].isel(sample=rep, site=si, call=0).sel(step=st, branch=branch).values)
        mass = np.asarray(src.ds["topk_mass"].isel(sample=rep, site=si, call=0).sel(step=st, branch=branch).values)
        layout = src.key_table(rep, branch, src.layout_of(si))
        img = src.sample_values("image", rep) if "image" in src.ds.data_vars else None
        grid = _image_grid(layout)
        top_rows = []
        for h in range(n_heads):
            for r in range(min(3, keys.shape[-1])):
                k = int(keys[h, r])
                if k < 0:
                    continue
                tok = layout.loc[k] if k in layout.index else None
                text = "" if tok is None else str(tok["token_str"])
                modality = "" if tok is None else str(tok["modality"])
                where = ""
                if tok is not None and modality == "image" and grid is not None and img is not None:
                    row_, col_, frame = int(tok["image_row"]), int(tok["image_col"]), int(tok["image_frame"])
                    where = f"row {row_}, col {col_}" if frame < 0 else f"frame {frame}, row {row_}, col {col_}"
                    hh, ww = img.shape[:2]
                    marks["x"].append((col_ + 0.5) * ww / grid[1])
                    marks["y"].append(hh - (row_ + 0.5) * hh / grid[0])
                    marks["label"].append(f"h{h} #{r + 1}" + ("" if frame < 0 else f" f{frame}"))
                cls = "" if tok is None else str(tok["class"])
                top_rows.append((h, r + 1, k, float(mass[h, r]), text, modality, cls, where))
        parts.append(f"<p>top keys of {src.sample_label(rep)} (branch {branch})</p>")
        frames = " (frame, row, col)" if src.has_frames() else ""
        parts.append(
            table(
                ["head", "rank", "key", "mass", "token", "modality", "class", "image position" + frames],
                top_rows,
                cls="cell-top",
            )
        )
        if img is not None:
            p["sources"]["cell_img_src"] = image_source(image_uri(img), img.shape[0], img.shape[1])
            p["ranges"]["cell_img_x"] = [0, img.shape[1]]
            p["ranges"]["cell_img_y"] = [0, img.shape[0]]
    else:
        parts.append(message("the store records no top keys (record 'mass' for them)"))
    p["sources"]["cell_marks_src"] = marks
    p["divs"]["cell_html"] = "".join(parts)
    return p


def _image_grid(layout) -> tuple[int, int] | None:
    """(rows, cols) of the image-token grid of a layout, None without image keys."""
    image = layout[layout["modality"] == "image"] if len(layout) else layout
    if not len(image):
        return None
    return int(image["image_row"].max()) + 1, int(image["image_col"].max()) + 1
