"""Overview: what a store is (model, plan, conditions, samples done and pending, steps, provenance).

Design
------
Everything here comes from the store's attributes and per-sample coordinates, read as the store
recorded them (nothing is inferred): the model attributes, each condition's plan (``sweep_conditions``
or the trace store's ``conditions``), samples done / pending per condition, the step axis and the
provenance (package versions, git commit). The store's path is shown relative to the current folder
when the store is below it (absolute otherwise), so a page or a screenshot names no temporary folder.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from interp.view.payload import Payload, empty, message, table
from interp.view.source import StoreSource

MODEL_ATTRS = ("model_id", "sweep_model_id", "model_family", "pipeline_class", "schema_version", "sweep_name")
PROVENANCE_PREFIXES = ("version_", "interp_")


def payload(src: StoreSource, params: dict[str, str]) -> Payload:
    p = empty()
    ds = src.ds
    attrs = ds.attrs
    parts = [f"<h3>{html.escape(src.name)}</h3>", f"<p class='interp-path'>{html.escape(shown_path(src.path))}</p>"]
    if str(attrs.get("synthetic", "")) == "true":
        parts.append(message(f"SYNTHETIC store: {attrs.get('synthetic_note', 'not data')}", "warning"))
    model_rows = [(k, attrs[k]) for k in MODEL_ATTRS if attrs.get(k) not in (None, "")]
    parts.append("<h4>Model</h4>" + table(["attribute", "value"], model_rows, cls="overview-model"))
    pending = src.n_total - src.n_done
    counts = src.samples.groupby("condition", sort=False).size()
    done_text = f"{src.n_done} samples done, {pending} pending" + (" (half-finished store)" if pending else "")
    parts.append(f"<h4>Samples</h4><p class='overview-samples'>{done_text}</p>")
    rows = []
    for cond in src.conditions:
        entry = src.condition_entries.get(cond, {})
        plan = entry.get("plan", []) if isinstance(entry, dict) else []
        if isinstance(plan, str):
            plan = json.loads(plan)
        edits = [i.get("name", "edit") for i in plan if isinstance(i, dict) and i.get("type") == "Edit"]
        records = sorted(
            {s for i in plan if isinstance(i, dict) and i.get("type") == "Record" for s in i.get("stats", [])}
        )
        rows.append((cond, int(counts.get(cond, 0)), ", ".join(edits) or "-", ", ".join(records) or "-"))
    parts.append(
        "<h4>Conditions</h4>" + table(["condition", "done", "edits", "records"], rows, cls="overview-conditions")
    )
    axes = [(d, int(n)) for d, n in ds.sizes.items() if d in ("step", "call", "site", "branch", "head", "key")]
    recorded = ", ".join(sorted(v for v in ds.data_vars if v != "done"))
    parts.append("<h4>Axes</h4>" + table(["axis", "size"], axes) + f"<p>variables: {recorded}</p>")
    if "timestep" in ds.variables and ds["timestep"].ndim == 1:
        steps = [(int(s), float(t)) for s, t in zip(ds["step"].values, ds["timestep"].values, strict=True)]
        parts.append(table(["step", "timestep"], steps, cls="overview-steps"))
    prov = [(k, v) for k, v in attrs.items() if k.startswith(PROVENANCE_PREFIXES)]
    parts.append("<h4>Provenance</h4>" + table(["attribute", "value"], prov, cls="overview-provenance"))
    p["divs"]["overview_html"] = "".join(parts)
    return p


def shown_path(path: Path, cwd: Path | None = None) -> str:
    """The store's path relative to the current folder when it is below it, else absolute."""
    absolute = Path(os.path.abspath(path))
    here = Path(os.path.abspath(cwd if cwd is not None else Path.cwd()))
    return str(absolute.relative_to(here)) if absolute.is_relative_to(here) else str(absolute)
