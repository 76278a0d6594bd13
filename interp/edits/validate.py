"""Checks of a plan's edits that need the pipeline, run before any generation.

- heads named by a scope exist at every site of the edit (``module.heads``);
- budgets fit the token layout the call will have (k no larger than the keys that can be chosen, of
  the chosen modality, and never every key), when the adapter can predict the layout from the call
  arguments (``Adapter.planned_layout``); otherwise the same check runs at the site's first call;
- replay sources exist, match this trace's prompt and seed, and recorded enough keys at the sites;
- patch sources are held by the plan, ran, and captured the sites (returned with the replay sources,
  per edit index: the observer's ``replay`` holds each edit's source).
"""

from __future__ import annotations

from typing import Any

from interp.edits.patching import check_source, lookup
from interp.edits.replay import ReplaySource
from interp.edits.select import check_budget
from interp.plan import Plan, PlanError
from interp.sites.select import resolve_sites


def validate_edits(plan: Plan, requests: list, denoiser: Any, adapter: Any, pipe: Any, trace: Any) -> dict[int, Any]:
    replay: dict[int, ReplaySource] = {}
    sites = adapter.sites(pipe)
    texts = trace._texts()
    for ei, e in enumerate(plan.edits):
        chosen = resolve_sites(e.scope.layers, sites, adapter)
        for site in chosen:
            heads = getattr(denoiser.get_submodule(site.path), "heads", None)
            if e.scope.heads is not None and heads is not None and max(e.scope.heads) >= heads:
                raise PlanError(
                    f"edit {e.name!r}: site {site.path} has {heads} heads; the scope names head {max(e.scope.heads)}"
                )
            for branch, text in texts.items():
                if e.scope.branch not in ("both", branch):
                    continue
                layout = adapter.planned_layout(pipe, site.key_layout, text, trace.pipeline_kwargs, branch=branch)
                if layout is not None:
                    check_budget(e.selector, layout, f"edit {e.name!r} at {site.path}")
        if e.operation.path == "patch":
            check_source(plan.sources, e.operation.source, [s.path for s in chosen])
            replay[ei] = lookup(plan.sources, e.operation.source)  # the per-edit source the kernel reads
        if e.selector.kind == "replay":
            replay[ei] = ReplaySource(
                e.selector.source,
                e.selector.source_sample,
                prompt=trace.prompt,
                seed=trace.seed,
                k=e.selector.k,
                sites=[s.path for s in chosen],
            )
    return replay
