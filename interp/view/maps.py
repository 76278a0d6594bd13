"""Attention maps (when recorded): from a text token over the generated image, or from an image position
over the prompt's tokens, per step and layer, for one head or the mean over the recorded heads.

Design
------
``attn_map`` holds the probabilities of the recorded heads, query rows and key columns
(``map_head_index`` / ``map_query_index`` / ``map_key_index`` name them). "text → image" reads the
column of the chosen text key over the image query rows and lays it on the image-token grid
(``key_image_row`` / ``key_image_col`` of the sample's layout), drawn over the sample's image;
"image → text" reads the row of the chosen image position over the text keys, as bars. The head mean is
the NaN-skipping mean over the recorded heads. A store without maps, or a sample and layer without
them, gets a message that says how to record them.

Queries and keys are read in the site's own layouts (``site_query_layout`` / ``site_key_layout``). A
video store's image tokens carry their latent frame (``key_image_frame``): the frame select picks one,
and the map shows that frame's (row, col) grid, over the sample's stored image (the video's first
frame); an image store has no frame select.
"""

from __future__ import annotations

import warnings

import numpy as np

from interp.view.payload import Payload, empty, floats, image_source, image_uri, message, select
from interp.view.source import StoreSource

DIRECTIONS = (("text2image", "text token -> image"), ("image2text", "image position -> prompt tokens"))


def _clear(p: Payload) -> None:
    p["sources"]["map_rect_src"] = {"x": [], "y": [], "w": [], "h": [], "value": []}
    p["sources"]["map_bar_src"] = {"token": [], "value": []}
    p["sources"]["map_marks_src"] = {"x": [], "y": []}
    p["factors"]["map_bar_x"] = []


def payload(src: StoreSource, params: dict[str, str]) -> Payload:
    p = empty()
    _clear(p)
    ds = src.ds
    if "attn_map" not in ds.data_vars:
        for name in ("map_sample", "map_site", "map_step", "map_frame", "map_head", "map_dir", "map_token"):
            select(p, name, [], "")
        p["divs"]["map_html"] = message(
            f"{src.name} has no attention maps: record them with record('maps', layers=..., steps=..., heads=...)",
            "warning",
        )
        return p
    samples = src.samples
    sample = int(
        select(
            p, "map_sample", [(str(i), src.sample_label(i)) for i in samples["position"]], (params.get("sample") or "")
        )
    )
    heads_idx = src.sample_values("map_head_index", sample)

    with_maps = [j for j in range(len(src.sites)) if (heads_idx[j] >= 0).any()]
    site_opts = [(src.sites[j], src.site_labels[j]) for j in with_maps]
    site = select(p, "map_site", site_opts, (params.get("site") or ""))
    steps = [str(int(s)) for s in ds["step"].values]
    step = int(select(p, "map_step", [(s, f"step {s}") for s in steps], (params.get("step") or "")))
    if not site_opts:
        select(p, "map_head", [], "")
        select(p, "map_frame", [], "")
        p["divs"]["map_html"] = message(f"sample {sample} has no recorded maps")
        return p
    si = src.sites.index(site)
    heads = [int(h) for h in heads_idx[si] if h >= 0]
    head = select(
        p,
        "map_head",
        [("mean", "mean over recorded heads"), *((str(i), f"head {h}") for i, h in enumerate(heads))],
        (params.get("head") or "mean"),
    )
    direction = select(p, "map_dir", list(DIRECTIONS), (params.get("dir") or "text2image"))
    branch = "cond" if "cond" in src.branches else src.branches[0]
    layout = src.key_table(sample, branch, src.layout_of(si, "key"))
    queries_layout = src.key_table(sample, branch, src.layout_of(si, "query"))
    q_index = src.sample_values("map_query_index", sample)[si]
    k_index = src.sample_values("map_key_index", sample)[si]
    block = _block(src, sample, si, step, branch, q_index, k_index)  # (map_head, query, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arr = np.nanmean(block[: len(heads)], axis=0) if head == "mean" else block[int(head)]
    queries, keys = q_index[q_index >= 0], k_index[k_index >= 0]
    all_image_rows = queries_layout[queries_layout["modality"] == "image"]
    frames = sorted({int(f) for f in all_image_rows["image_frame"] if f >= 0})
    frame = select(p, "map_frame", [(str(f), f"frame {f}") for f in frames], (params.get("frame") or ""))
    image_rows = all_image_rows[all_image_rows["image_frame"] == int(frame)] if frames else all_image_rows
    if not np.isfinite(arr).any():
        p["divs"]["map_html"] = message(f"no map at step {step} of {src.site_labels[si]} (recorded steps only)")
        return p
    img = src.sample_values("image", sample) if "image" in ds.data_vars else None
    grid = (int(image_rows["image_row"].max()) + 1, int(image_rows["image_col"].max()) + 1) if len(image_rows) else None
    hh, ww = (img.shape[0], img.shape[1]) if img is not None else (grid or (1, 1))
    if img is not None:
        p["sources"]["map_img_src"] = image_source(image_uri(img), hh, ww)
        p["ranges"]["map_img_x"] = [0, ww]
        p["ranges"]["map_img_y"] = [0, hh]
    text_keys = [int(k) for k in keys if k in layout.index and layout.loc[k, "modality"] == "text"]
    if direction == "text2image":
        opts = [(str(k), f"{k}: {layout.loc[k, 'token_str']}") for k in text_keys]
        nouns = [k for k in text_keys if layout.loc[k, "class"] == "noun"]
        default = str(nouns[0]) if nouns else ""
        token = int(select(p, "map_token", opts, (params.get("token") or default)) or -1)
        col = np.flatnonzero(keys == token)
        qs = [(i, int(q)) for i, q in enumerate(queries) if q in image_rows.index]
        if grid is None or col.size == 0 or not qs:
            p["divs"]["map_html"] = message("this map holds no text key column over image query rows")
            return p
        vals = np.array([arr[i, col[0]] for i, _ in qs])
        r = np.array([int(image_rows.loc[q, "image_row"]) for _, q in qs])
        c = np.array([int(image_rows.loc[q, "image_col"]) for _, q in qs])
        cw, ch = ww / grid[1], hh / grid[0]
        p["sources"]["map_rect_src"] = {
            "x": floats((c + 0.5) * cw),
            "y": floats(hh - (r + 0.5) * ch),
            "w": [cw] * len(vals),
            "h": [ch] * len(vals),
            "value": floats(vals),
        }
        finite = vals[np.isfinite(vals)]
        p["mappers"]["map_mapper"] = [float(finite.min()), float(max(finite.max(), finite.min() + 1e-12))]
        what = f"attention from image positions to text key {token} ({layout.loc[token, 'token_str']})"
    else:
        image_queries = [int(q) for q in queries if q in image_rows.index]
        opts = [
            (str(q), f"{q}: row {image_rows.loc[q, 'image_row']}, col {image_rows.loc[q, 'image_col']}")
            for q in image_queries
        ]
        position = int(select(p, "map_token", opts, (params.get("token") or "")) or -1)
        row = np.flatnonzero(queries == position)
        cols = [int(np.flatnonzero(keys == k)[0]) for k in text_keys]
        if row.size == 0 or not cols:
            p["divs"]["map_html"] = message("this map holds no image query row over text keys")
            return p
        labels = [f"{k}: {layout.loc[k, 'token_str']}" for k in text_keys]
        p["sources"]["map_bar_src"] = {"token": labels, "value": floats(arr[row[0], cols])}
        p["factors"]["map_bar_x"] = labels
        if grid is not None:
            p["sources"]["map_marks_src"] = {
                "x": [(int(image_rows.loc[position, "image_col"]) + 0.5) * ww / grid[1]],
                "y": [hh - (int(image_rows.loc[position, "image_row"]) + 0.5) * hh / grid[0]],
            }
        what = f"attention from image position {position} to the prompt's tokens"
    head_text = "mean over recorded heads" if head == "mean" else f"head {heads[int(head)]}"
    frame_text = f", frame {frame} of {len(frames)}" if frames else ""
    p["divs"]["map_html"] = (
        f"<p class='map-note'>{what}: {src.site_labels[si]}, step {step}{frame_text}, branch {branch}, {head_text}; "
        f"{src.sample_label(sample)}</p>"
    )
    return p


def _block(
    src: StoreSource, sample: int, si: int, step: int, branch: str, q_index: np.ndarray, k_index: np.ndarray
) -> np.ndarray:
    """The recorded map of one sample, site, step and branch, kept until another is asked for (choosing
    another token or head of the same map reads nothing again; one block is kept, so memory stays bounded)."""
    key = ("attn_map", sample, si, step, branch)
    if key not in src.cache:
        for old in [k for k in src.cache if isinstance(k, tuple) and k[0] == "attn_map"]:
            del src.cache[old]
        one = src.ds["attn_map"].isel(sample=sample, site=si, call=0).sel(step=step, branch=branch)
        one = one.isel(map_query=np.flatnonzero(q_index >= 0), map_key=np.flatnonzero(k_index >= 0))
        src.cache[key] = np.asarray(one.values, dtype=np.float64)
    return src.cache[key]
