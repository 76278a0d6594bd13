"""Reduce a study's sweep store to the per-sample tables its findings page is computed from.

    python -m interp.analysis.study_tables STORE OUT.npz [--block 256]

Design
------
A study store of thousands of samples is mostly per-head edit bookkeeping (``edit_keys`` alone is
hundreds of KB per sample) and small chunk files; the findings need, per *done* sample: its labels
(condition, tag, prompt, seed, replicate), its image (the exact scorer and the pixel shifts run on
it), the measured verification of its edit (mass of the edited keys before and after, averaged over
every (step, site, branch, head) in scope, and how many keys), and the token classes of what it
removed per (branch, site, step) (``interp.analysis.token_identity``, each site's keys in its own key
layout), plus, for baseline samples, the
classes of every head's most-attended key. One compressed ``.npz`` holds them; it is what the study
commits and what ``interp.analysis.findings`` reads, so the page regenerates without the store.
Samples are read in blocks, so memory stays bounded.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from interp.analysis.token_identity import as_str, blocks, class_counts, dominant_counts, layout_classes, site_layouts

LABELS = ("condition", "tag", "prompt", "prompt_index", "replicate", "seed")


def reduce_store(
    store: str | Path, out: str | Path, *, block: int = 256, workers: int = 1, progress: bool = True
) -> dict:
    """Write the study tables of ``store``'s done samples to ``out`` (npz); returns a summary."""
    ds = xr.open_zarr(store, consolidated=True)
    done = np.flatnonzero(np.asarray(ds.done.values, bool))
    baseline = ds.attrs.get("sweep_baseline", "baseline")
    jobs = [(str(store), done[sl], baseline) for sl in blocks(len(done), block)]
    with (
        ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) if workers > 1 else _Inline() as pool
    ):
        parts = list(
            tqdm(pool.map(_block, jobs), total=len(jobs), desc="study tables", unit="block", disable=not progress)
        )
    tables = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    tables["sample"] = done
    tables["site"] = as_str(ds.site.values)
    tables["branch"] = as_str(ds.branch.values)
    meta = {
        "store": str(store),
        "baseline": baseline,
        "sweep_config": json.loads(ds.attrs.get("sweep_config", "{}")),
        "n_samples": int(done.size),
        "n_rows": int(xr.open_zarr(store, consolidated=True).sizes["sample"]),
    }
    tables["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(out, **tables)
    return meta


def _block(job: tuple[str, np.ndarray, str]) -> dict[str, np.ndarray]:
    """The tables of one block of store rows (run in a worker process)."""
    store, rows, baseline = job
    part = xr.open_zarr(store, consolidated=True).isel(sample=rows)
    out = {
        name: as_str(part[name].values) if part[name].dtype.kind in "TUSO" else np.asarray(part[name].values)
        for name in LABELS
    }
    out["gen_seconds"] = np.asarray(part.gen_seconds.values, np.float64)
    out["image"] = np.asarray(part.image.values, np.uint8)
    before = np.asarray(part.edit_mass_before.values, np.float64)  # (sample, edit, step, call, site, branch, head)
    after = np.asarray(part.edit_mass_after.values, np.float64)
    n_keys = np.asarray(part.edit_n_keys.values, np.float64)
    in_scope = np.isfinite(before)
    axes = tuple(range(1, before.ndim))
    count = in_scope.sum(axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["edit_mass_before"] = np.nansum(before, axis=axes) / count
        out["edit_mass_after"] = np.nansum(after, axis=axes) / count
        out["edit_n_keys"] = np.where(in_scope, n_keys, 0).sum(axes) / count
    out["edit_in_scope"] = count
    classes = layout_classes(part)  # each site's keys are labelled in its own key layout
    site_layout = site_layouts(part)
    keys = np.asarray(part.edit_keys.isel(edit=0, call=0).values)
    used = keys.max(axis=tuple(range(keys.ndim - 1)))  # drop rank columns no sample of the block uses
    width = int(np.flatnonzero(used >= 0).max()) + 1 if (used >= 0).any() else 1
    out["edited_classes"] = class_counts(keys[..., :width], classes, site_layout).astype(np.uint16)
    dominant = dominant_counts(np.asarray(part.argmax_key.isel(call=0).values), classes, site_layout).astype(np.uint16)
    dominant[out["condition"] != baseline] = 0
    out["dominant_classes"] = dominant
    return out


class _Inline:
    """``map`` in this process (one worker), with the executor's context-manager shape."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, items):  # noqa: ANN001, ANN201
        return map(fn, items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("out")
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1, help="processes reading blocks in parallel")
    args = ap.parse_args(argv)
    meta = reduce_store(args.store, args.out, block=args.block, workers=args.workers)
    print(f"{args.out}: {meta['n_samples']} done samples of {meta['n_rows']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
