"""Prepare: resolve a plan's sites once and run every check that can run before generation.

Design
------
The first stage of the engine (``interp.engine``; docs/design.md, The trace lifecycle). ``prepare``
takes a closed plan, the pipeline and the call (:class:`CallSpec`: prompt, seed, call keyword
arguments) and returns a :class:`Prepared`, or raises before anything is generated. In order:

1. with a store (:class:`StoreTarget`): the trace keeps the store's meaning (model, records, this
   condition's edits and call options) and does not repeat a finished sample
   (``interp.store.meaning``);
2. the sites of every record and edit are resolved once against the adapter's sites
   (``site_requests``: one request per site, in model order), and each chosen site's attention
   backend is checked (``sites.intercept.check_backend``);
3. the edits are checked against the planned token layout, the heads and their sources
   (``edits.validate``), which returns each edit's replay or patch source;
4. the attention maps fit their memory budget (``maps_budget``);
5. a compiled denoiser's regions are found, and what its route cannot trace is refused
   (``sites.compiled``; the session then installs ``sites.routed`` instead of per-trace hooks).

Everything later stages need is on the ``Prepared``: the requests, the edits' sources, the call's
texts and the provenance (computed here, once, before generation). Nothing is installed and the
pipeline is not touched: the tracer, the sweep (which checks its conditions' plans with it, one edit
at a time) and the module-tree interop all prepare through this function.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from interp.adapters import adapter_for
from interp.adapters.base import Adapter
from interp.edits.validate import validate_edits
from interp.engine.observer import SiteRequest, site_requests
from interp.kernels.lse_path import KernelName
from interp.maps_budget import check_map_budget
from interp.plan import Plan
from interp.provenance import provenance
from interp.sites.compiled import check_compiled
from interp.sites.intercept import check_backend
from interp.sites.select import resolve_sites
from interp.store.meaning import check_trace_fits, condition_entry, trace_identity
from interp.store.zarr_io import TraceMeaning

KERNELS: tuple[str, ...] = ("auto", "lse", "reference")


def check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; use 'auto', 'lse' or 'reference'")


@dataclass(frozen=True)
class CallSpec:
    """The pipeline call a plan will observe: its prompt, seed and keyword arguments.

    With precomputed embeddings (``prompt_embeds`` in ``kwargs``) the texts only label the layout."""

    prompt: str | None
    seed: int | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    negative_prompt: str | None = None  # labels the uncond branch when the call is not ours (interop)

    @property
    def texts(self) -> dict[str, str | None]:
        """The text of each CFG branch, as the token layouts label it (None: unknown tokens)."""
        if self.prompt is None:
            return {"cond": None, "uncond": None}
        neg = self.negative_prompt if self.negative_prompt is not None else self.kwargs.get("negative_prompt")
        if isinstance(neg, str):
            neg_text: str | None = neg
        else:
            neg_text = None if "negative_prompt_embeds" in self.kwargs else ""
        return {"cond": self.prompt, "uncond": neg_text}


@dataclass(frozen=True)
class StoreTarget:
    """Where a trace's sample goes: the store path (checked) and the sample's labels."""

    path: os.PathLike
    condition: str = "baseline"
    tag: str = ""
    allow_duplicate: bool = False

    def sample_coords(self, call: CallSpec) -> dict[str, object]:
        neg = call.kwargs.get("negative_prompt")
        return {
            "prompt": call.prompt or "",
            "negative_prompt": neg if isinstance(neg, str) else "",
            "seed": -1 if call.seed is None else int(call.seed),
            "condition": self.condition,
            "tag": self.tag,
        }


@dataclass(frozen=True)
class Prepared:
    """A plan checked against a pipeline and a call: what the session installs and the observer runs."""

    pipe: Any
    adapter: Adapter
    denoiser: Any
    plan: Plan
    call: CallSpec
    kernel: str
    requests: tuple[SiteRequest, ...]
    sources: Mapping[int, Any]  # per edit index: its replay source or patch source trace
    provenance: Mapping[str, str]
    meaning: TraceMeaning | None = None  # with a store: what the sample adds to its meaning
    compiled: tuple[tuple[str, str], ...] = ()  # (path, how) of the denoiser's compiled regions

    @property
    def texts(self) -> dict[str, str | None]:
        return self.call.texts


def resolve_requests(plan: Plan, pipe: Any, adapter: Adapter | None = None) -> list[SiteRequest]:
    """The plan's site requests (records and edits resolved once), each site's backend checked."""
    adapter = adapter or adapter_for(pipe)
    denoiser = adapter.denoiser(pipe)
    requests = site_requests(plan, adapter.sites(pipe), adapter)
    for req in requests:
        check_backend(req.site.path, denoiser.get_submodule(req.site.path))
    return requests


def check_store(
    store: StoreTarget, plan: Plan, call: CallSpec, pipe: Any, adapter: Adapter, prov: Mapping[str, str]
) -> TraceMeaning:
    """Before generation: the store's meaning (model, records, this condition) fits this trace."""
    plan_json = plan.to_json()
    dtype = str(getattr(adapter.denoiser(pipe), "dtype", ""))
    sites = adapter.sites(pipe)
    record_sites = [[site.path for site in resolve_sites(rec.layers, sites, adapter)] for rec in plan.records]
    meaning = TraceMeaning(
        identity=trace_identity(plan_json, prov, dtype, record_sites),
        condition=store.condition,
        entry=condition_entry(plan_json, dict(call.kwargs)),
        allow_duplicate=store.allow_duplicate,
    )
    check_trace_fits(
        store.path,
        meaning.identity,
        store.condition,
        meaning.entry,
        store.sample_coords(call),
        allow_duplicate=store.allow_duplicate,
    )
    return meaning


def prepare(
    pipe: Any,
    plan: Plan,
    call: CallSpec,
    *,
    kernel: KernelName | str = "auto",
    store: StoreTarget | None = None,
    adapter: Adapter | None = None,
    requests: Sequence[SiteRequest] | None = None,
) -> Prepared:
    """Resolve ``plan`` against ``pipe`` once and run every pre-generation check (module docstring).

    ``requests``: sites the caller resolved itself (the module-tree interop installs a site module
    on sites that record nothing); their backends are checked like the plan's."""
    check_kernel(kernel)
    adapter = adapter or adapter_for(pipe)
    denoiser = adapter.denoiser(pipe)
    prov = provenance(pipe, adapter.name, denoiser)
    meaning = check_store(store, plan, call, pipe, adapter, prov) if store is not None else None
    if requests is None:
        requests = resolve_requests(plan, pipe, adapter)
    else:
        for req in requests:
            check_backend(req.site.path, denoiser.get_submodule(req.site.path))
    sources = validate_edits(
        plan,
        requests,
        denoiser,
        adapter,
        pipe,
        texts=call.texts,
        call_kwargs=call.kwargs,
        prompt=call.prompt,
        seed=call.seed,
    )
    check_map_budget(plan, requests, denoiser, adapter, pipe, dict(call.kwargs), call.texts)
    # the pipeline's own attribute: a torch.compile wrapper around the denoiser counts as compiled
    compiled = check_compiled(getattr(pipe, adapter.denoiser_attr, denoiser), requests)
    return Prepared(pipe, adapter, denoiser, plan, call, kernel, tuple(requests), sources, prov, meaning, compiled)
