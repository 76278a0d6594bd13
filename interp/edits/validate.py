"""Checks of a plan's edits that need the pipeline, run before any generation.

- heads named by a scope exist at every site of the edit (``module.heads``);
- budgets fit the token layout the call will have (k no larger than the keys that can be chosen, of
  the chosen modality, and never every key), when the adapter can predict the layout from the call
  arguments (``Adapter.planned_layout``); otherwise the same check runs at the site's first call;
- replay sources exist, match this trace's prompt and seed, and recorded enough keys at the sites;
- patch sources are held by the plan, ran, and captured the sites (returned with the replay sources,
  per edit index: the observer hands each edit its source).

The sites of each edit are the ones the engine resolved once (``SiteRequest.edits``); nothing is
resolved again here. The call is described by its texts and keyword arguments, not by a trace
(``interp.engine.prepare.CallSpec``), so a sweep checks its conditions with the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from interp.edits.patching import check_source, lookup
from interp.edits.replay import ReplaySource
from interp.edits.select import check_budget
from interp.plan import Plan, PlanError

if TYPE_CHECKING:
    from interp.adapters.base import Adapter, SiteInfo
    from interp.edits.spec import Edit


class SiteRequest(Protocol):
    """What the checks read of the engine's resolved site requests (``interp.engine.SiteRequest``),
    declared here so that edits never import the engine."""

    @property
    def site(self) -> SiteInfo: ...

    @property
    def edits(self) -> tuple[tuple[int, Edit], ...]: ...


def edit_sites(plan: Plan, requests: Sequence[SiteRequest]) -> dict[int, list[SiteInfo]]:
    """Per edit index, the sites it acts on, in model order (from the resolved requests)."""
    out: dict[int, list[SiteInfo]] = {ei: [] for ei in range(len(plan.edits))}
    for req in requests:
        for ei, _ in req.edits:
            out[ei].append(req.site)
    return out


def validate_edits(
    plan: Plan,
    requests: Sequence[SiteRequest],
    denoiser: Any,
    adapter: Adapter,
    pipe: Any,
    *,
    texts: Mapping[str, str | None],
    call_kwargs: Mapping[str, Any],
    prompt: str | None,
    seed: int | None,
) -> dict[int, Any]:
    """Raise ``PlanError`` for an edit that cannot run; return each edit's replay or patch source."""
    sources: dict[int, Any] = {}
    for ei, chosen in edit_sites(plan, requests).items():
        e = plan.edits[ei]
        for site in chosen:
            heads = getattr(denoiser.get_submodule(site.path), "heads", None)
            if e.scope.heads is not None and heads is not None and max(e.scope.heads) >= heads:
                raise PlanError(
                    f"edit {e.name!r}: site {site.path} has {heads} heads; the scope names head {max(e.scope.heads)}"
                )
            for branch, text in texts.items():
                if e.scope.branch not in ("both", branch):
                    continue
                layout = adapter.planned_layout(pipe, site.key_layout, text, dict(call_kwargs), branch=branch)
                if layout is not None:
                    check_budget(e.selector, layout, f"edit {e.name!r} at {site.path}")
        if e.operation.path == "patch":
            check_source(plan.sources, e.operation.source, [s.path for s in chosen])
            sources[ei] = lookup(plan.sources, e.operation.source)  # the per-edit source the kernel reads
        if e.selector.kind == "replay":
            sources[ei] = ReplaySource(
                e.selector.source,
                e.selector.source_sample,
                prompt=prompt,
                seed=seed,
                k=e.selector.k,
                sites=[s.path for s in chosen],
            )
    return sources
