"""The list of analyses: name, the paper results it makes, what it needs, and the function.

Design
------
One :class:`Analysis` per result family; ``interp analyze`` and the scripts in ``analyses/`` run them by
name, and ``--only`` also accepts the paper's labels (``table2``, ``figure4``). :func:`run_analyses`
runs several on one store with one :class:`~interp.analysis.context.Context` (shared caches). An
analysis whose inputs the store lacks raises ``StoreLacks``: when all analyses run, that one is
*skipped* with the message (a store of an observation sweep has no edits); when it was asked for by
name, the caller gets the error.

A store given by path is first checked for completeness (``interp.analysis.completeness``): pending
samples refuse the run unless ``partial=True``, which marks every table and figure PARTIAL.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from interp.analysis import (
    contrasts,
    dose,
    fid,
    h1_dynamics,
    interventions,
    noop,
    qualitative,
    robustness,
    sink_identity,
    summary,
    tags,
    verification,
)
from interp.analysis.completeness import Completeness, completeness, mark_figure, mark_table, require_complete
from interp.analysis.config import AnalysisConfig
from interp.analysis.context import Context, Result
from interp.analysis.data import load
from interp.analysis.errors import StoreLacks


@dataclass(frozen=True)
class Analysis:
    name: str
    outputs: tuple[str, ...]
    title: str
    needs: str
    fn: Callable[[Context], Result]


ANALYSES: tuple[Analysis, ...] = (
    Analysis(
        "h1_dynamics",
        ("Table 1", "Figure 2"),
        "H1 dynamics: concentration and activation norms per layer, against t/T",
        "baseline samples with max_mass, entropy, query_topk (act_pre_max optional)",
        h1_dynamics.run,
    ),
    Analysis(
        "sink_identity",
        ("Sink identity table", "Sink identity figure"),
        "Token identity and stability of the dominant keys",
        "baseline samples with topk_keys or argmax_key and the key_* token coordinates",
        sink_identity.run,
    ),
    Analysis(
        "index0_overlap",
        ("Index-0 overlap",),
        "Argmax key vs key 0, image patch (0,0) and CLIP BOS",
        "baseline samples with topk_keys and the key_* token coordinates",
        sink_identity.run_index0,
    ),
    Analysis(
        "interventions",
        ("Table 2",),
        "Dynamic sink interventions (score path, eta = 0)",
        "mask_topk conditions and metric scores",
        interventions.table2,
    ),
    Analysis(
        "controls",
        ("Table 3",),
        "Sink vs equal-budget random removal",
        "sink conditions with mask_random controls at the same budget, metric scores",
        contrasts.table3,
    ),
    Analysis(
        "verification",
        ("Table 4", "Figure 5"),
        "Intervention verification: measured removed mass",
        "edit bookkeeping (edit_mass_before, edit_mass_after)",
        verification.run,
    ),
    Analysis(
        "value_path",
        ("Table 5",),
        "Value-path interventions",
        "replace_values conditions, metric scores",
        interventions.table5,
    ),
    Analysis(
        "selection",
        ("Table 6",),
        "Sink selection protocol: per head vs union, online vs replayed",
        "union-selected or replayed sink conditions, metric scores",
        interventions.table6,
    ),
    Analysis(
        "dissociation",
        ("Table 7",),
        "Perceptual dissociation: LPIPS of sink vs random removal, score equivalence",
        "sink + random conditions, lpips_vs_baseline and scores",
        contrasts.table7,
    ),
    Analysis(
        "summary",
        ("Table 8", "Figure 3"),
        "Summary of every edit (table and heatmap)",
        "edited conditions, metric scores",
        summary.run,
    ),
    Analysis(
        "fid_calibration",
        ("Table 9",),
        "FID_shift of common variations (calibration)",
        "plan-free variations (seed offset, guidance, steps) and Inception features",
        fid.run_calibration,
    ),
    Analysis(
        "dose",
        ("Table 10", "Table 11", "Figure 4"),
        "Dose-response over eta and its trend test",
        "the same edit at several eta, metric scores (bookkeeping optional)",
        dose.run,
    ),
    Analysis(
        "multilayer",
        ("Table 12",),
        "Multi-layer sink removal",
        "mask_topk over several layers, metric scores",
        interventions.table12,
    ),
    Analysis(
        "phase",
        ("Table 13",),
        "Phase windows",
        "mask_topk with a phase/steps/sigma window, metric scores",
        interventions.table13,
    ),
    Analysis(
        "tags",
        ("Table 14",),
        "Effects by GenEval task type",
        "the main sink condition, the tag coordinate, scores",
        tags.run,
    ),
    Analysis(
        "sampling",
        ("Table 15",),
        "Sampling sensitivity",
        "edits under other sampler settings with plan-free twins",
        interventions.table15,
    ),
    Analysis(
        "modality",
        ("Table 16",),
        "Text vs image sinks",
        "mask_topk(modality='text') and (modality='image')",
        interventions.table16,
    ),
    Analysis(
        "noop", ("Table 17",), "No-op check: the edit kernel's noise floor", "a noop_edit condition, scores", noop.run
    ),
    Analysis(
        "fid", ("Table 18",), "FID_shift of edited conditions", "edited conditions and Inception features", fid.run
    ),
    Analysis(
        "ksweep",
        ("Table 19",),
        "k-sweep: sink vs random across budgets",
        "mask_topk at several k with random controls",
        contrasts.table19,
    ),
    Analysis(
        "specificity",
        ("Table 20",),
        "Sink specificity against every control",
        "sink conditions and their controls",
        contrasts.table20,
    ),
    Analysis(
        "robustness",
        ("Figure 6",),
        "Robustness of the main sink effect across sampler settings and tags",
        "the main sink condition, scores",
        robustness.run,
    ),
    Analysis(
        "qualitative",
        ("Figure 7", "Figure 8"),
        "Qualitative panels: baseline / sink removed / random removed",
        "images, lpips_vs_baseline (clip_t optional), sink + random conditions",
        qualitative.run,
    ),
)


def _label_key(label: str) -> str:
    m = re.fullmatch(r"(table|figure)\s*0*(\d+)", label.strip().lower())
    return f"{m.group(1)}{m.group(2)}" if m else label.strip().lower()


def resolve(name: str) -> Analysis:
    """An analysis by name or by paper label (``table2``, ``Figure 4``)."""
    key = _label_key(name)
    for a in ANALYSES:
        if a.name == name or key in {_label_key(o) for o in a.outputs}:
            return a
    known = ", ".join(a.name for a in ANALYSES)
    raise KeyError(f"unknown analysis {name!r}; known: {known} (or a paper label such as table2, figure4)")


@dataclass
class Outcome:
    analysis: Analysis
    status: str  # "ok" | "skipped" | "error"
    message: str = ""
    result: Result | None = None
    seconds: float = 0.0


def run_analyses(
    store: str | os.PathLike | xr.Dataset,
    out: str | os.PathLike,
    names: Sequence[str] | None = None,
    cfg: AnalysisConfig | None = None,
    *,
    raise_errors: bool = False,
    partial: bool = False,
) -> list[Outcome]:
    """Run analyses (all, or ``names``) on one store, writing into ``out``.

    With ``names`` given, a missing input raises ``StoreLacks``; with all analyses, it is recorded as
    skipped. Other exceptions are recorded as errors (or raised with ``raise_errors``). A store path
    with pending samples raises ``IncompleteStore`` unless ``partial`` (then outputs are marked PARTIAL).
    """
    chosen = list(dict.fromkeys(resolve(n) for n in names)) if names else list(ANALYSES)
    state = None if isinstance(store, xr.Dataset) else completeness(store)
    if state is not None:
        require_complete(state, partial=partial)
    ds = load(store)
    ctx = Context(ds, cfg or AnalysisConfig(), Path(out))
    ctx.out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for a in chosen:
        t0 = time.perf_counter()
        try:
            res = a.fn(ctx)
            if state is not None and not state.complete:
                _mark_partial(res, state, ctx.out)
            outcomes.append(Outcome(a, "ok", "", res, time.perf_counter() - t0))
        except StoreLacks as exc:
            exc = exc.for_analysis(a.name)
            if names:
                raise exc from None
            outcomes.append(Outcome(a, "skipped", str(exc), None, time.perf_counter() - t0))
        except Exception as exc:
            if raise_errors:
                raise
            msg = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
            outcomes.append(Outcome(a, "error", msg, None, time.perf_counter() - t0))
    write_index(ctx, outcomes, state)
    return outcomes


def _mark_partial(res: Result, state: Completeness, out: Path) -> None:
    """Every table and figure of ``res`` says that it uses a partial store."""
    for table in res.tables:
        mark_table(table, state, out)
    for path in res.files:
        if path.suffix == ".png" and path.exists():
            mark_figure(path, state)


def write_index(ctx: Context, outcomes: list[Outcome], state: Completeness | None = None) -> Path:
    """``OUT/index.md``: what ran, what it wrote, what was skipped and why (and whether the store was partial)."""
    lines = ["# interp analyze", ""]
    if state is not None and not state.complete:
        lines += [f"**{state.partial_note()}.**", ""]
    if ctx.ds.attrs.get("synthetic") == "true":
        lines += ["**SYNTHETIC store (test fixture): these numbers are not results.**", ""]
    lines += [f"- store: {ctx.ds.attrs.get('sweep_name', '')} {ctx.ds.attrs.get('model_id', '')}".rstrip(), ""]
    for o in outcomes:
        a = o.analysis
        lines.append(f"## {a.name} ({', '.join(a.outputs)}): {o.status}")
        lines.append(f"{a.title}. Needs: {a.needs}.")
        if o.result is not None:
            lines += [f"- [{p.name}]({p.name})" for p in o.result.files]
        if o.message:
            lines.append("")
            lines.append("    " + o.message.splitlines()[0])
        lines.append("")
    path = ctx.out / "index.md"
    path.write_text("\n".join(lines))
    return path
