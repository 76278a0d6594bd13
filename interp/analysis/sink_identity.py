"""Token identity of sinks (issue 8 item 3) and the index-0 overlap.

Design
------
Which tokens are the dominant keys? Every key of a sample has an identity in the store's token
coordinates (``key_*``, per sample, layout, branch and key). This module maps each key to a *class*:
``image`` or, for text keys, the encoder family (``CLIP``, ``T5``, or the encoder name) and role
(``BOS``, ``EOS``, ``pad``, ``content``; CLIP pads with its end-of-text token, and the store's flags
already tell EOS from padding by position); and to an *identity*: the class for text keys, the
patch position (row, col) for image keys, (frame, row, col) for a video's (its figure's patch map
pools the frames). The dominant keys of a head at a step are its top
``identity_top`` keys by incoming mass (``topk_keys``; 1 = the argmax key), from the baseline samples.

Reported per layer (table) and per layer and step (CSV, figure): the share of dominant keys in each
class and the most frequent identity; and how stable the dominant key is

- across steps: the share of consecutive steps at which a head keeps the same argmax key;
- across heads: the share of heads whose argmax key is the modal one among heads (same sample, step);
- across prompts: the share of samples whose argmax key has the modal identity (same step, head).

Index-0 overlap: the paper's code counted "index 0" as CLIP BOS, but in SD3's joint layout
``[image, CLIP, T5]`` key 0 is image patch (0, 0). The overlap table measures, per layer, how often
the argmax key (and the stored top-K set) is key 0, image patch (0, 0) and CLIP BOS, separately.

Shares are counted over samples x steps x calls x CFG branches x heads (valid heads and keys only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from interp.analysis import style
from interp.analysis.context import Context, Result
from interp.analysis.data import baseline_samples, site_label, steps_run, steps_text, strings
from interp.analysis.errors import StoreLacks
from interp.analysis.tables import Column, Table, num

NAME = "sink_identity"
NAME_INDEX0 = "index0_overlap"
ROLES = ("BOS", "EOS", "pad", "content")
IMAGE_BASE = 1_000_000  # identity codes >= IMAGE_BASE are image patches: IMAGE_BASE + row * 10_000 + col
FRAME_BASE = 100_000_000  # ... plus frame * FRAME_BASE for a video's patches (frame 0: the image codes)


def patch_of(code: int) -> tuple[int, int, int]:
    """(frame, row, col) of an image-patch identity code."""
    frame, rest = divmod(code - IMAGE_BASE, FRAME_BASE)
    return (frame, *divmod(rest, 10_000))


KEY_FIELDS = ("key_modality", "key_encoder", "key_is_bos", "key_is_eos", "key_is_pad", "key_image_row", "key_image_col")


def family(encoder: str) -> str:
    if encoder.upper().startswith("CLIP"):
        return "CLIP"
    if encoder.upper().startswith("T5"):
        return "T5"
    return encoder


@dataclass(frozen=True)
class KeyClasses:
    """Class and identity code of every key: arrays (sample, layout, branch, key)."""

    classes: tuple[str, ...]
    class_code: np.ndarray  # int16, -1 for invalid keys
    identity: np.ndarray  # int64, -1 for invalid keys
    layouts: tuple[str, ...]
    video: bool = False  # the keys carry frames (key_image_frame): patch identities are (frame, row, col)

    def identity_name(self, code: int) -> str:
        if code < 0:
            return "invalid"
        if code >= IMAGE_BASE:
            f, r, c = patch_of(code)
            return f"image ({f},{r},{c})" if self.video else f"image ({r},{c})"
        return self.classes[code]

    def code_of(self, name: str) -> int | None:
        return self.classes.index(name) if name in self.classes else None


def key_classes(ds: xr.Dataset, *, analysis: str) -> KeyClasses:
    missing = [f for f in KEY_FIELDS if f not in ds.variables]
    if missing:
        raise StoreLacks(
            "token coordinate", missing, analysis=analysis, hint="stores written by interp >= 0.1 have them"
        )
    mod = np.asarray(ds["key_modality"].values).astype(object)
    enc = np.asarray(ds["key_encoder"].values).astype(object)
    bos = np.asarray(ds["key_is_bos"].values, dtype=bool)
    eos = np.asarray(ds["key_is_eos"].values, dtype=bool)
    pad = np.asarray(ds["key_is_pad"].values, dtype=bool)
    row = np.asarray(ds["key_image_row"].values, dtype=np.int64)
    col = np.asarray(ds["key_image_col"].values, dtype=np.int64)
    valid = np.asarray(ds["key_valid"].values, dtype=bool) if "key_valid" in ds.variables else np.ones(mod.shape, bool)
    valid &= mod != ""
    classes = ["image"]
    fams = list(dict.fromkeys(family(e) for e in np.unique(enc[(mod == "text") & valid])))
    for f in fams:
        classes.extend(f"{f} {r}" for r in ROLES)
    code = np.full(mod.shape, -1, dtype=np.int16)
    code[(mod == "image") & valid] = 0
    fam_of = np.vectorize(family, otypes=[object])(enc) if enc.size else enc
    role = np.where(bos, "BOS", np.where(eos, "EOS", np.where(pad, "pad", "content")))
    for i, name in enumerate(classes[1:], start=1):
        f, r = name.rsplit(" ", 1)
        code[(mod == "text") & valid & (fam_of == f) & (role == r)] = i
    identity = code.astype(np.int64)
    img = code == 0
    identity[img] = IMAGE_BASE + row[img] * 10_000 + col[img]
    video = "key_image_frame" in ds.variables
    if video:
        frame = np.asarray(ds["key_image_frame"].values, dtype=np.int64)
        identity[img] += np.maximum(frame[img], 0) * FRAME_BASE
    layouts = tuple(strings(ds["layout"].values)) if "layout" in ds.coords else ("joint",)
    return KeyClasses(tuple(classes), code, identity, layouts, video)


def _gather(table: np.ndarray, keys: np.ndarray, fill: int = -1) -> np.ndarray:
    """``table[sample, branch, key]`` at ``keys`` (sample, step, call, branch, head, r); -1 keys -> fill."""
    s, b, k = table.shape
    ok = (keys >= 0) & (keys < k)
    si = np.arange(s).reshape(-1, 1, 1, 1, 1, 1)
    bi = np.arange(b).reshape(1, 1, 1, -1, 1, 1)
    flat = (si * b + bi) * k + np.where(ok, keys, 0)
    out = table.reshape(-1)[flat]
    return np.where(ok, out, fill)


def modal_share(x: np.ndarray, valid: np.ndarray, axis: int) -> np.ndarray:
    """Share of the valid entries along ``axis`` equal to the most frequent value (NaN if none valid).

    Vectorised run-length count after sorting (np.unique has no axis-wise counts).
    """
    x = np.moveaxis(np.asarray(x, dtype=np.int64), axis, 0)
    v = np.moveaxis(np.asarray(valid, dtype=bool), axis, 0)
    n = x.shape[0]
    rest = x.shape[1:]
    x = x.reshape(n, -1)
    v = v.reshape(n, -1)
    m = x.shape[1]
    placeholder = -2 - np.arange(n * m, dtype=np.int64).reshape(n, m)  # invalid entries never form runs
    x = np.where(v, x, placeholder)
    xs = np.sort(x, axis=0)
    starts = np.vstack([np.ones((1, m), bool), np.diff(xs, axis=0) != 0])
    run = np.cumsum(starts, axis=0) - 1  # run index within column
    flat = run + np.arange(m) * n
    counts = np.bincount(flat.ravel(), minlength=n * m).reshape(m, n)
    best = counts.max(axis=1).astype(np.float64)
    nvalid = v.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(nvalid > 0, best / np.maximum(nvalid, 1), np.nan)
    return share.reshape(rest)


def _dominant(ds: xr.Dataset, site: str, top: int, *, analysis: str) -> np.ndarray:
    """Dominant keys (sample, step, call, branch, head, top), -1 where missing."""
    if "topk_keys" in ds and ds.sizes.get("rank", 0) >= top:
        da = ds["topk_keys"].sel(site=site).isel(rank=slice(0, top))
        return np.asarray(da.transpose("sample", "step", "call", "branch", "head", "rank").values, dtype=np.int64)
    if top == 1 and "argmax_key" in ds:
        da = ds["argmax_key"].sel(site=site)
        return np.asarray(da.transpose("sample", "step", "call", "branch", "head").values, dtype=np.int64)[..., None]
    raise StoreLacks(
        "variable",
        ["topk_keys" if top > 1 else "argmax_key"],
        analysis=analysis,
        hint=f"record('mass', top>={top}) in the baseline",
    )


def _layout_index(ds: xr.Dataset, kc: KeyClasses, site: str) -> int:
    """Index (into ``kc.layouts``) of ``site``'s own key layout (``site_key_layout``): a video family's
    self-attention keys are video tokens, its cross-attention keys text. A site naming a layout the store
    does not hold is an error, never read in another layout."""
    if "site_key_layout" not in ds.variables:
        if len(kc.layouts) != 1:
            raise ValueError(f"the store holds layouts {kc.layouts} but no site_key_layout: which is {site}'s?")
        return 0
    name = str(ds["site_key_layout"].sel(site=site).values)
    if name not in kc.layouts:
        raise ValueError(f"site {site} names key layout {name!r}, which the store does not hold ({kc.layouts})")
    return kc.layouts.index(name)


def run(ctx: Context) -> Result:
    ds = baseline_samples(ctx.ds, ctx.cfg.baseline, analysis=NAME)
    top = ctx.cfg.identity_top
    kc = key_classes(ds, analysis=NAME)
    sites = [str(s) for s in ds["site"].values]
    t, ran = _schedule(ds)
    n_cls = len(kc.classes)
    rows: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    share_grid = []  # (site, step, class)
    image_counts: dict[tuple[int, int], float] = {}
    used_sites = []
    for site in sites:
        keys = _dominant(ds, site, top, analysis=NAME)
        if not (keys >= 0).any():
            continue
        used_sites.append(site)
        li = _layout_index(ds, kc, site)
        cls = _gather(kc.class_code[:, li].astype(np.int64), keys)
        ident = _gather(kc.identity[:, li], keys)
        valid = cls >= 0
        per_step = np.zeros((keys.shape[1], n_cls))
        for st in range(keys.shape[1]):
            c = cls[:, st][valid[:, st]]
            if c.size:
                per_step[st] = np.bincount(c, minlength=n_cls)[:n_cls] / c.size
        share_grid.append(per_step)
        allc = cls[valid]
        shares = np.bincount(allc, minlength=n_cls)[:n_cls] / max(allc.size, 1)
        ids, counts = np.unique(ident[valid], return_counts=True)
        order = np.argsort(-counts)
        for i in np.flatnonzero(ids >= IMAGE_BASE):
            _, r, c = patch_of(int(ids[i]))  # a video's frames pooled: the map is over (row, col)
            image_counts[(r, c)] = image_counts.get((r, c), 0.0) + counts[i]
        # stability of the argmax key (rank 0)
        k0 = keys[..., 0]
        v0 = k0 >= 0
        same_step = (k0[:, 1:] == k0[:, :-1]) & v0[:, 1:] & v0[:, :-1]
        both = v0[:, 1:] & v0[:, :-1]
        across_steps = same_step.sum() / both.sum() if both.sum() else np.nan
        across_heads = np.nanmean(modal_share(k0, v0, axis=4)) if k0.shape[4] > 1 else np.nan
        id0 = ident[..., 0]
        across_prompts = np.nanmean(modal_share(id0, id0 >= 0, axis=0)) if id0.shape[0] > 1 else np.nan
        row: dict[str, Any] = {"layer": site_label(ds, site), "site": site, "n_dominant": int(allc.size)}
        for name, s in zip(kc.classes, shares, strict=True):
            row[f"share {name}"] = float(s)
        for j, i in enumerate(order[:3]):
            row[f"identity_{j + 1}"] = kc.identity_name(int(ids[i]))
            row[f"identity_{j + 1}_share"] = float(counts[i] / allc.size)
        row.update(
            stable_steps=float(across_steps), stable_heads=float(across_heads), stable_prompts=float(across_prompts)
        )
        rows.append(row)
        for st in np.flatnonzero(ran):
            for name, s in zip(kc.classes, per_step[st], strict=True):
                step_rows.append(
                    {
                        "layer": row["layer"],
                        "site": site,
                        "step": int(st),
                        "t_over_T": float(t[st]),
                        "class": name,
                        "share": float(s),
                    }
                )
    if not used_sites:
        raise StoreLacks("layer", ["any layer with recorded dominant keys"], analysis=NAME, have=sites)
    present = [c for c in kc.classes if any(r[f"share {c}"] > 0 for r in rows)]
    columns = [Column("layer", "layer")]
    columns += [Column(f"{c} share", f"share {c}", digits=3) for c in present]
    columns.append(Column("top identity (share)", fmt=lambda r: f"{r['identity_1']} ({num(r['identity_1_share'], 3)})"))
    columns.append(
        Column(
            "2nd (share)",
            fmt=lambda r: f"{r['identity_2']} ({num(r['identity_2_share'], 3)})" if "identity_2" in r else "–",
        )
    )
    columns += [
        Column("stable across steps", "stable_steps", digits=3),
        Column("across heads", "stable_heads", digits=3),
        Column("across prompts", "stable_prompts", digits=3),
    ]
    dom = "argmax key" if top == 1 else f"top-{top} keys"
    notes = [
        f"Dominant keys: each head's {dom} by incoming mass, baseline samples (n={ds.sizes['sample']}, "
        f"{steps_text(steps_run(ds))}); shares over "
        "samples x steps x calls x branches x heads. Classes: image patches; text by encoder (CLIP = CLIP-L/G, T5) and "
        "role (BOS, EOS = the first end-of-text token, pad = later padding, content).",
        "Stability of the argmax key: across steps = same key at consecutive steps; across heads = share of heads "
        "agreeing with the modal key; across prompts = share of samples whose argmax key has the modal identity "
        "(class for text, (row, col) for image patches).",
        "Per layer and step shares: sink_identity_steps.csv.",
    ]
    res = Result(NAME)
    res.add_table(Table("sink_identity", f"Token identity of the dominant keys ({dom})", columns, rows, notes), ctx.out)
    steps_table = Table("sink_identity_steps", "Token class shares of dominant keys per layer and step", [], step_rows)
    df = steps_table.to_frame()
    ctx.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(ctx.out / "sink_identity_steps.csv", index=False)
    res.files.append(ctx.out / "sink_identity_steps.csv")
    grid = np.stack(share_grid)[:, ran]  # steps no baseline sample ran (a longer condition's) are left out
    res.files.append(_figure(ctx, ds, kc, used_sites, rows, grid, t[ran], present, image_counts, dom))
    return res


def _schedule(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """t/T per step of the store's step axis and whether any sample of ``ds`` ran that step.

    The axis is as long as the store's longest condition; a shorter condition's samples are padded
    with NaN there, which must not reach a table row or a tick label."""
    t = np.atleast_2d(np.asarray(ds["t_over_T"].values, dtype=np.float64))
    ran = np.isfinite(t).any(axis=0)
    first = np.argmax(np.isfinite(t), axis=0)  # per step, a sample that ran it
    return t[first, np.arange(t.shape[1])], ran


def _figure(ctx, ds, kc, sites, rows, grid, t, present, image_counts, dom):
    fig, axes = style.figure(2, 2, width=4.4, height=max(2.6, 0.22 * len(sites) + 1.4))
    (ax_a, ax_b), (ax_c, ax_d) = axes
    labels = [r["layer"] for r in rows]
    y = np.arange(len(sites))
    colors = {c: style.category_color(i) for i, c in enumerate(kc.classes)}
    left = np.zeros(len(sites))
    for c in present:
        w = np.array([r[f"share {c}"] for r in rows])
        ax_a.barh(y, w, left=left, color=colors[c], label=c, height=0.8)
        left += w
    ax_a.set_yticks(y, labels)
    ax_a.invert_yaxis()
    ax_a.set_xlabel("share of dominant keys")
    ax_a.set_xlim(0, 1)
    ax_a.set_title("(a) token class of dominant keys", loc="left")
    # (b) modal class per layer and step, faded by its share
    n_site, n_step, _ = grid.shape
    img = np.ones((n_site, n_step, 3))
    for i in range(n_site):
        for j in range(n_step):
            if grid[i, j].sum() == 0:
                continue
            c = int(np.argmax(grid[i, j]))
            rgb = np.array(matplotlib_rgb(colors[kc.classes[c]]))
            img[i, j] = 1.0 - grid[i, j, c] * (1.0 - rgb)
    ax_b.imshow(img, aspect="auto", interpolation="nearest", extent=(-0.5, n_step - 0.5, n_site - 0.5, -0.5))
    ticks = np.unique(np.linspace(0, n_step - 1, min(n_step, 6)).round().astype(int))
    ax_b.set_xticks(ticks, [f"{t[k]:.2f}" for k in ticks])
    ax_b.set_yticks(y, labels)
    ax_b.set_xlabel("t/T (0 = noisiest step)")
    ax_b.set_title("(b) modal class per step (pale = low share)", loc="left")
    # (c) stability
    width = 0.27
    for j, (key, lab) in enumerate(
        (("stable_steps", "across steps"), ("stable_heads", "across heads"), ("stable_prompts", "across prompts"))
    ):
        vals = np.array([r[key] for r in rows], dtype=float)
        ax_c.barh(
            y + (j - 1) * width, np.nan_to_num(vals), height=width, color=("0.15", "0.5", "0.8")[j], label=f"(c) {lab}"
        )
    ax_c.set_yticks(y, labels)
    ax_c.invert_yaxis()
    ax_c.set_xlim(0, 1)
    ax_c.set_xlabel("agreement of the argmax key (share)")
    ax_c.set_title("(c) stability of the argmax key", loc="left")
    # (d) image positions of dominant image keys
    if image_counts:
        rr = max(r for r, _ in image_counts) + 1
        cc = max(c for _, c in image_counts) + 1
        if "key_image_row" in ds:
            rows_all = np.asarray(ds["key_image_row"].values)
            cols_all = np.asarray(ds["key_image_col"].values)
            rr, cc = max(rr, int(rows_all.max()) + 1), max(cc, int(cols_all.max()) + 1)
        heat = np.zeros((rr, cc))
        for (r, c), n in image_counts.items():
            heat[r, c] = n
        heat /= heat.sum()
        im = ax_d.imshow(heat, cmap="magma", interpolation="nearest")
        cb = fig.colorbar(im, ax=ax_d, shrink=0.85)
        cb.set_label("share")
        ax_d.set_xlabel("patch column")
        ax_d.set_ylabel("patch row")
        ax_d.set_title("(d) image sink positions", loc="left")
    else:
        ax_d.set_visible(False)
    handles, names = ax_a.get_legend_handles_labels()
    h_c, n_c = ax_c.get_legend_handles_labels()
    fig.legend(
        handles + h_c,
        names + n_c,
        loc="outside lower center",
        ncol=min(len(names) + len(n_c), 5),
        frameon=False,
        title="token class (a, b)  ·  stability (c)",
    )
    fig.suptitle(
        f"Token identity of sinks ({dom}, {ctx.cfg.baseline}, n={ds.sizes['sample']}, {steps_text(steps_run(ds))})"
    )
    return style.save(fig, ctx.out / "figure_sink_identity.png")


def matplotlib_rgb(color: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def run_index0(ctx: Context) -> Result:
    """Index-0 overlap: argmax key (and top-K set) = key 0, image patch (0,0), CLIP BOS, per layer."""
    ds = baseline_samples(ctx.ds, ctx.cfg.baseline, analysis=NAME_INDEX0)
    kc = key_classes(ds, analysis=NAME_INDEX0)
    bos = kc.code_of("CLIP BOS")
    rows = []
    for site in [str(s) for s in ds["site"].values]:
        keys = _dominant(ds, site, ds.sizes.get("rank", 1) if "topk_keys" in ds else 1, analysis=NAME_INDEX0)
        if not (keys >= 0).any():
            continue
        li = _layout_index(ds, kc, site)
        ident = _gather(kc.identity[:, li], keys, fill=-1)
        cls = _gather(kc.class_code[:, li].astype(np.int64), keys, fill=-1)
        valid0 = keys[..., 0] >= 0
        n = valid0.sum()
        key0_names = sorted(
            {
                kc.identity_name(int(kc.identity[s, li, b, 0]))
                for s in range(ds.sizes["sample"])
                for b in range(kc.identity.shape[2])
            }
        )
        row = {
            "layer": site_label(ds, site),
            "site": site,
            "key0_is": " / ".join(key0_names),
            "argmax_index0": float(((keys[..., 0] == 0) & valid0).sum() / n),
            "argmax_image_0_0": float(((ident[..., 0] == IMAGE_BASE) & valid0).sum() / n),
            "argmax_clip_bos": float(((cls[..., 0] == bos) & valid0).sum() / n) if bos is not None else np.nan,
            "topK": int(keys.shape[-1]),
            "topK_has_index0": float(((keys == 0).any(-1) & valid0).sum() / n),
            "topK_has_image_0_0": float(((ident == IMAGE_BASE).any(-1) & valid0).sum() / n),
            "topK_has_clip_bos": float(((cls == bos).any(-1) & valid0).sum() / n) if bos is not None else np.nan,
            "n": int(n),
        }
        rows.append(row)
    if not rows:
        raise StoreLacks("layer", ["any layer with recorded dominant keys"], analysis=NAME_INDEX0)
    k = rows[0]["topK"]
    columns = [
        Column("layer", "layer"),
        Column("key 0 is", "key0_is"),
        Column("argmax = key 0", "argmax_index0", digits=3),
        Column("argmax = image (0,0)", "argmax_image_0_0", digits=3),
        Column("argmax = CLIP BOS", "argmax_clip_bos", digits=3),
        Column(f"top-{k} ∋ key 0", "topK_has_index0", digits=3),
        Column(f"top-{k} ∋ image (0,0)", "topK_has_image_0_0", digits=3),
        Column(f"top-{k} ∋ CLIP BOS", "topK_has_clip_bos", digits=3),
    ]
    notes = [
        "Share of (sample, step, call, branch, head) whose argmax key / stored top-K set is the given key, "
        "baseline samples.",
        "The paper's code treated key index 0 as CLIP BOS; in SD3's joint layout [image, CLIP, T5] key 0 is image "
        "patch (0,0) and CLIP BOS is the first text key, so both are measured.",
    ]
    if bos is None:
        notes.append("This store's layout has no CLIP keys (no CLIP BOS).")
    res = Result(NAME_INDEX0)
    res.add_table(Table("index0_overlap", "Index-0 overlap: image patch 0 vs CLIP BOS", columns, rows, notes), ctx.out)
    return res
