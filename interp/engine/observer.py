"""The observer: turns a plan's records into per-site work and collects results in a trace buffer.

Design
------
The engine's third stage (``interp.engine``: prepare, session, observer; see docs/design.md, The
trace lifecycle).
``site_requests`` merges the plan's records into one request per site (a statistic is declared once
per plan, with one option set, so every stored variable has one meaning; declaring it twice is a
``PlanError``). At run time the ``Observer`` is the SDPA handler of every site: it runs the original
kernel call (so the output is the model's own, bit for bit; where a record can use it, through the
very op public SDPA runs, which also returns the row log-sum-exp: ``kernels.gpu.sdpa_with_lse`` on
CUDA, ``kernels.lse_path.cpu_sdpa_with_lse`` on CPU, each verified bit-identical once per shape), and,
when the step is in scope, hands the captured q, k, that log-sum-exp and the output to the statistics
kernels (``interp.kernels``: fused passes where they apply, the exact reference path otherwise) with
the query rows of the record's query set. The records of a site that share a query set share one
statistics call (``merged_requests``); what a call needs that does not change between steps (query
rows, the activation norms' ``NormIndex``, each record's ``StatRequest``) is built once per trace.
Results stay on the device in a ``TraceBuffer`` keyed by (variable, step, call, site, rows) until the
trace ends; ``TraceBuffer.arrays`` then lays them out densely with NaN (or -1) where nothing was
recorded. Token layouts are built lazily, once per (layout, branch), from the adapter, and checked
against the key counts the site actually sees.

Edits active at a call are applied by ``interp.edits.runtime.apply_edits``, which sees only a
``SiteContext`` (``interp.edits.context``) the observer builds for that call and returns what it did
(``EditResult``, with each edit's verification); the observer stores the verification. The per-trace
caches (``KernelCache``, the candidate keys of edit selectors) are the session's, handed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.adapters.base import IMAGE, STREAMS, TEXT, Adapter, SiteInfo, TokenLayout
from interp.clock import StepClock
from interp.edits.context import SiteContext
from interp.edits.runtime import EditResult, apply_edits
from interp.edits.select import candidates_of
from interp.edits.spec import Edit, in_window
from interp.kernels.cache import KernelCache
from interp.kernels.linear import linear_attention_map, linear_attention_stats
from interp.kernels.lse_path import LSE_NEEDS, compute_stats, cpu_sdpa_with_lse
from interp.kernels.norms import NormIndex, activation_norms
from interp.kernels.reference import StatRequest, attention_map, mask_to_bias
from interp.kernels.transfer import to_host
from interp.plan import Plan, PlanError, Record
from interp.sites.intercept import LinearCall, SDPACall
from interp.sites.select import resolve_sites
from interp.statistics import CATALOGUE, KERNEL_STATISTICS


def _prefix_related(a: tuple[Tensor, Tensor, Tensor], b: tuple[Tensor, Tensor, Tensor]) -> bool:
    """Whether two map selections (heads, rows, cols) agree on every index they share."""
    for x, y in zip(a, b, strict=True):
        n = min(x.numel(), y.numel())
        if not torch.equal(x[:n].cpu(), y[:n].cpu()):
            return False
    return True


@dataclass(frozen=True)
class SiteRequest:
    """Everything one site must compute: its statistics' records and their merged options."""

    site: SiteInfo
    index: int
    records: tuple[Record, ...]
    edits: tuple[tuple[int, Edit], ...] = ()

    def request_for(self, record: Record) -> StatRequest:
        """The kernel statistics of ``record`` (those the catalogue says the kernels compute), built
        once per request: a site call does no per-call host work for it."""
        for rec, sreq in zip(self.records, self._stat_requests, strict=True):
            if rec is record:
                return sreq
        return StatRequest(set(record.stats) & set(KERNEL_STATISTICS), top=record.top, k=record.k)

    @cached_property
    def _stat_requests(self) -> tuple[StatRequest, ...]:
        return tuple(StatRequest(set(r.stats) & set(KERNEL_STATISTICS), top=r.top, k=r.k) for r in self.records)

    @cached_property
    def lse_requests(self) -> tuple[tuple[Record, bool], ...]:
        """Per record: whether its statistics include one the forward's log-sum-exp serves."""
        return tuple((r, q.only(LSE_NEEDS).any) for r, q in zip(self.records, self._stat_requests, strict=True))

    @property
    def norm_record(self) -> Record | None:
        return next((r for r in self.records if "act_norms" in r.stats), None)


def site_requests(plan: Plan, sites: Sequence[SiteInfo], adapter: Adapter) -> list[SiteRequest]:
    """Resolve every record's sites; one request per site that any record touches, in model order."""
    owner: dict[str, Record] = {}
    per_site: dict[str, list[Record]] = defaultdict(list)
    for rec in plan.records:
        for stat in rec.stats:
            if stat in owner and owner[stat] != rec:
                raise PlanError(
                    f"statistic {stat!r} is recorded by two record() calls; declare each statistic once "
                    "per trace (one record() may list many sites)"
                )
            owner[stat] = rec
        for site in resolve_sites(rec.layers, sites, adapter):
            per_site[site.path].append(rec)
    names = [e.name for e in plan.edits]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PlanError(f"edit names must be unique within a plan (they label stored variables): {dupes}")
    per_site_edits: dict[str, list[tuple[int, Edit]]] = defaultdict(list)
    for ei, e in enumerate(plan.edits):
        for site in resolve_sites(e.scope.layers, sites, adapter):
            per_site_edits[site.path].append((ei, e))
    for site in sites:
        if not site.linear:
            continue
        if per_site_edits.get(site.path):
            names = ", ".join(e.name for _, e in per_site_edits[site.path])
            raise PlanError(
                f"edit {names} at {site.path}: edits of linear-attention sites are not supported by the trace "
                "engine (interp.kernels.linear.linear_attention_output computes an edited output exactly); "
                "edit the softmax sites (group 'cross') or leave the linear ones out of layers="
            )
        if any("capture" in r.stats for r in per_site.get(site.path, ())):
            raise PlanError(f"'capture' at {site.path}: a linear-attention site has no softmax call to capture")
    chosen = [s for s in sites if s.path in per_site or s.path in per_site_edits]
    return [
        SiteRequest(s, i, tuple(per_site.get(s.path, ())), tuple(per_site_edits.get(s.path, ())))
        for i, s in enumerate(chosen)
    ]


@dataclass
class TraceBuffer:
    """Results keyed by variable; each entry (step, call, site, branch indices, tensor on device)."""

    entries: dict[str, list[tuple[int, int, int, list[int], Tensor]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, var: str, step: int, call: int, site: int, branches: list[int], value: Tensor) -> None:
        self.entries[var].append((step, call, site, branches, value.detach()))

    def arrays(
        self,
        n_steps: int,
        n_calls: int,
        n_sites: int,
        n_branches: int,
    ) -> dict[str, np.ndarray]:
        """Dense (step, call, site, branch, ...) arrays; trailing axes padded to their largest size."""
        out: dict[str, np.ndarray] = {}
        flat = iter(to_host([v for items in self.entries.values() for *_, v in items]))  # one sync per device
        for var, items in self.entries.items():
            host = [(s, c, i, br, next(flat)) for s, c, i, br, _ in items]
            trailing = tuple(max(v.shape[d] for *_, v in host) for d in range(1, host[0][4].ndim))
            dtype = host[0][4].dtype
            fill = -1 if np.issubdtype(dtype, np.integer) else np.nan
            arr = np.full((n_steps, n_calls, n_sites, n_branches, *trailing), fill, dtype=dtype)
            for s, c, i, br, v in host:
                for row, b in enumerate(br):
                    idx = (s, c, i, b, *(slice(0, n) for n in v.shape[1:]))
                    arr[idx] = v[row]
            out[var] = arr
        return out


def merged_requests(
    req: SiteRequest, in_scope: Sequence[tuple[Record, Sequence[str]]]
) -> list[tuple[str, list[Record], StatRequest]]:
    """The kernel statistics of a site call's records grouped into as few ``compute_stats`` calls as
    possible: records with the same query set and views share one call (their statistics are disjoint,
    each is declared once per plan) unless their options conflict (two ranks counts for ``top`` or two
    budgets for ``k``), which keeps them apart. (query set, records, merged request) per call."""
    groups: dict[tuple[str, tuple[str, ...]], list[Record]] = defaultdict(list)
    for rec, wanted in in_scope:
        if req.request_for(rec).any:
            groups[(rec.queries, tuple(wanted))].append(rec)
    out: list[tuple[str, list[Record], StatRequest]] = []
    for (queries, _), recs in groups.items():
        sreqs = [req.request_for(r) for r in recs]
        tops = {q.top for q in sreqs if q.wants("mass")}
        ks = {q.k for q in sreqs if q.wants("mass_topk") or q.wants("query_topk")}
        if len(recs) > 1 and len(tops) <= 1 and len(ks) <= 1:
            stats = set().union(*(q.stats for q in sreqs))
            merged = StatRequest(stats, top=tops.pop() if tops else sreqs[0].top, k=ks.pop() if ks else sreqs[0].k)
            out.append((queries, recs, merged))
        else:
            out.extend((queries, [r], q) for r, q in zip(recs, sreqs, strict=True))
    return out


class Observer:
    """SDPA handler and output hook for every site of one trace."""

    def __init__(
        self,
        pipe: Any,
        adapter: Adapter,
        clock: StepClock,
        requests: Sequence[SiteRequest],
        texts: dict[str, str | None],
        call_kwargs: dict[str, Any],
        branch_names: Sequence[str],
        kernel: str = "auto",
        seed: int = 0,
        replay: dict[int, Any] | None = None,
        kernel_cache: KernelCache | None = None,
        candidates: dict[tuple, Tensor] | None = None,
    ) -> None:
        self.kernel = kernel
        self.seed = seed
        self.replay = replay or {}  # per edit index: its replay or patch source
        self.pipe = pipe
        self.adapter = adapter
        self.clock = clock
        self.requests = {r.site.path: r for r in requests}
        self.texts = texts
        self.call_kwargs = call_kwargs
        self.branch_names = list(branch_names)
        self.buffer = TraceBuffer()
        self.layouts: dict[tuple[str, str], TokenLayout] = {}
        self._rows: dict[tuple[str, str, str, str, int], Tensor] = {}
        self._streams: dict[tuple, NormIndex] = {}  # built once: no host sync per call
        # edit selectors' candidate keys, built once likewise (the session's cache when given)
        self._candidates: dict[tuple, Tensor] = {} if candidates is None else candidates
        self.site_shapes: dict[str, tuple[int, int]] = {}
        self.map_index: dict[tuple[str, str, int], tuple[Tensor, Tensor, Tensor]] = {}
        self._map_bytes: dict[Record, int] = {}
        self.captured: dict[tuple[str, int, int], dict[str, Any]] = {}  # (site, step, call) -> v, out
        # what the kernels learn once per shape, for this trace only (the session's when given)
        self.kernel_cache = KernelCache() if kernel_cache is None else kernel_cache

    # --- token layouts and query sets ----------------------------------------------------------
    def layout(self, name: str, branch: str, n_keys: int) -> TokenLayout:
        key = (name, branch)
        if key not in self.layouts:
            lay = self.adapter.layout(
                self.pipe, name, self.texts.get(branch), self.call_kwargs, self.clock.current, n_keys, branch=branch
            )
            if len(lay) != n_keys:
                raise RuntimeError(
                    f"token layout {name!r} has {len(lay)} positions but the site saw {n_keys} keys; "
                    "the adapter does not describe this pipeline call"
                )
            self.layouts[key] = lay
        return self.layouts[key]

    def _call_branch(self) -> str:
        """The branch whose layout gives this call's query rows: the call's own (the branches of one call
        may differ in length, Qwen-Image's cond and uncond texts; rows of one batch share a length)."""
        branches = getattr(self.clock, "branches", None)
        return branches[-1] if branches else self.branch_names[-1]

    def query_rows(self, site: SiteInfo, queries: str, n_query: int, device: torch.device) -> Tensor:
        branch = self._call_branch()
        key = (site.path, queries, str(device), branch, n_query)
        if key not in self._rows:
            lay = self.layout(site.query_layout, branch, n_query)
            modality = lay.modality
            if queries == "all":
                keep = np.ones(n_query, bool)
            elif queries in (IMAGE, TEXT):
                keep = modality == queries
            else:  # "used": drop streams whose outputs the model discards
                keep = ~np.isin(modality, list(site.unused_query_streams))
            if self.adapter.masked_queries:  # rows the mask blocks attend to nothing: no distribution
                keep = keep & lay.valid
            rows = np.flatnonzero(keep)
            if len(rows) == 0:
                raise PlanError(f"site {site.path} has no {queries!r} query rows")
            self._rows[key] = torch.as_tensor(rows, device=device)
        return self._rows[key]

    def candidate_mask(self, name: str, branches: list[str], modality: str | None, device: torch.device) -> Tensor:
        """(B, Nk) bool keys an edit selector may choose per batch row (``edits.select.candidates_of``),
        built once per (layout, branches, modality) for the trace: rebuilding it would copy it from
        the host at every step, and a pageable host-to-device copy synchronises with the device."""
        key = (name, tuple(branches), modality, str(device))
        if key not in self._candidates:
            lays = [self.layouts[(name, br)] for br in branches]
            self._candidates[key] = candidates_of(lays, modality).to(device)
        return self._candidates[key]

    def map_selection(self, site: SiteInfo, rec: Record, call: SDPACall) -> tuple[Tensor, Tensor, Tensor]:
        """Heads, query rows and key columns of a ``maps`` record at this site (kept for the store)."""
        key = (site.path, self._call_branch(), int(call.k.shape[-2]))
        if key not in self.map_index:
            dev = call.q.device
            n_heads, nq, nk = call.q.shape[1], call.q.shape[-2], call.k.shape[-2]
            heads = list(range(n_heads)) if rec.heads is None else list(rec.heads)
            if max(heads) >= n_heads:
                raise PlanError(f"maps at {site.path}: head {max(heads)} requested, the site has {n_heads}")
            rows = self.query_rows(site, rec.queries, nq, dev)
            if isinstance(rec.keys, str):
                modality = self.layout(site.key_layout, self._call_branch(), nk).modality
                cols = np.arange(nk) if rec.keys == "all" else np.flatnonzero(modality == rec.keys)
            else:
                cols = np.asarray(rec.keys)
                if cols.max() >= nk:
                    raise PlanError(f"maps at {site.path}: key {cols.max()} requested, the site has {nk} keys")
            entry = (torch.as_tensor(heads, device=dev), rows, torch.as_tensor(cols, device=dev))
            for (path, _, _), other in self.map_index.items():
                if path == site.path and not _prefix_related(other, entry):
                    raise PlanError(
                        f"maps at {site.path}: this call's branch has {nk} keys and another's a different key "
                        "count, so the map rows or columns would name different tokens; record maps over every "
                        "query and key (queries='all', keys='all') or only in calls of one branch (this "
                        "pipeline's CFG branches differ in text length)"
                    )
            self._guard_unplanned_maps(site, rec, call, entry)
            self.map_index[key] = entry
        return self.map_index[key]

    def _guard_unplanned_maps(self, site: SiteInfo, rec: Record, call: SDPACall, entry: tuple) -> None:
        """The maps size guard at the first call, for sites whose layout could not be planned (the
        check before generation, ``interp.maps_budget``, skips them): refuse before anything is stored."""
        planned = self.adapter.planned_layout(self.pipe, site.key_layout, self.texts.get("cond"), self.call_kwargs)
        if planned is not None:
            return
        heads, rows, cols = entry
        steps = len(rec.steps) if rec.steps is not None else max(int(getattr(self.clock, "n_steps", 1) or 1), 1)
        size = steps * int(call.q.shape[0]) * heads.numel() * rows.numel() * cols.numel() * 4
        self._map_bytes[rec] = self._map_bytes.get(rec, 0) + size
        if self._map_bytes[rec] > rec.max_mb * 2**20:
            raise PlanError(
                f"the attention maps requested need at least {self._map_bytes[rec] / 2**20:.1f} MiB (known at "
                f"{site.path}'s first call: this adapter cannot predict its layouts), over the budget of "
                f"{rec.max_mb:.1f} MiB: choose fewer sites, steps, heads, queries or keys, or raise max_mb="
            )

    def map_index_by_site(self) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """The map selection of each site for the store: the longest one where branches differ in key count
        (their columns are then prefixes of one another, checked in ``map_selection``)."""
        out: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
        for (path, _, _), entry in self.map_index.items():
            if path not in out or sum(t.numel() for t in entry) > sum(t.numel() for t in out[path]):
                out[path] = entry
        return out

    def stream_rows(self, site: SiteInfo, n_query: int, device: torch.device) -> NormIndex:
        """The pre_out norms' streams (image and text rows of the used queries) as a ``NormIndex``,
        built once per (site, device, branch) for the trace: a call then needs no host work for them."""
        key = (site.path, str(device), self._call_branch(), n_query)
        if key not in self._streams:
            used = self.query_rows(site, "used", n_query, device).cpu().numpy()
            image = self.layout(site.query_layout, self._call_branch(), n_query).modality[used] == IMAGE
            self._streams[key] = NormIndex.build({IMAGE: used[image], TEXT: used[~image]}, n_query, device)
        return self._streams[key]

    def output_rows(self, site: SiteInfo, stream: str, n: int, device: torch.device) -> NormIndex:
        """Every token of one post_out stream tensor as a one-stream ``NormIndex`` (built once)."""
        key = (site.path, stream, n, str(device))
        if key not in self._streams:
            self._streams[key] = NormIndex.build({stream: np.arange(n)}, n, device)
        return self._streams[key]

    # --- hooks -----------------------------------------------------------------------------------
    def _in_scope(self, rec: Record) -> bool:
        return rec.steps is None or self.clock.step in rec.steps

    def branch_index(self) -> list[int]:
        return [self.branch_names.index(b) for b in self.clock.branches]

    def _edit_active(self, e: Edit) -> bool:
        sc, clock = e.scope, self.clock
        return (
            in_window(clock.step, sc.steps)
            and in_window(clock.t_over_T(clock.step), sc.phase)
            and in_window(clock.sigmas.get(clock.step, float("nan")), sc.sigma)
            and (sc.calls is None or clock.call in sc.calls)
        )

    def site_context(self, req: SiteRequest) -> SiteContext:
        """What the edits of this call see: the site, the clock's position, sources and lookups."""
        site = req.site
        return SiteContext(
            site=site,
            site_index=req.index,
            step=self.clock.step,
            call=self.clock.call,
            branches=tuple(self.clock.branches),
            seed=self.seed,
            kernel=self.kernel,
            sources=self.replay,
            kernel_cache=self.kernel_cache,
            layout=self.layout,
            query_rows=partial(self.query_rows, site),
            candidates=self.candidate_mask,
        )

    def on_sdpa(self, path: str, call: SDPACall) -> Tensor:
        req = self.requests[path]
        site = req.site
        self.site_shapes[path] = (int(call.q.shape[1]), int(call.k.shape[-2]))
        for branch in set(self.clock.branches):
            self.layout(site.key_layout, branch, call.k.shape[-2])
        active = [(i, e) for i, e in req.edits if self._edit_active(e) and not e.operation.is_noop]
        with torch.no_grad():
            if not active:
                out, lse = self._forward(req, call)
                self._records(req, call, out, None, views=("before", "after"), lse=lse)
                return out
            edited = apply_edits(self.site_context(req), call, active)
            step, ccall, br = self.clock.step, self.clock.call, self.branch_index()
            for verification in edited.verifications:
                for var, value in verification.variables().items():
                    self.buffer.add(var, step, ccall, req.index, br, value)
            if not edited.changed:
                self._records(req, call, edited.output, None, views=("before", "after"))
                return edited.output
            if any(r.view in ("before", "both") for r in req.records):
                needs_norms = any("act_norms" in r.stats and r.view != "after" for r in req.records)
                original = call.run_original() if needs_norms else None
                self._records(req, call, original, None, views=("before",))
            self._records(req, call, edited.output, edited, views=("after",))
            return edited.output

    def on_linear(self, path: str, call: LinearCall) -> None:
        """A linear-attention call (``interp.kernels.linear``): its statistics and maps over the exact
        matrix A_ij = relu(q_i).relu(k_j) / (sum_j' relu(q_i).relu(k_j') + eps); it cannot be edited."""
        req = self.requests[path]
        site = req.site
        self.site_shapes[path] = (int(call.q.shape[1]), int(call.k.shape[-2]))
        for branch in set(self.clock.branches):
            self.layout(site.key_layout, branch, call.k.shape[-2])
        step, ccall, br = self.clock.step, self.clock.call, self.branch_index()
        with torch.no_grad():
            for rec in req.records:
                if not self._in_scope(rec):
                    continue
                wanted = [v for v in ("before", "after") if rec.view in (v, "both")]
                results: dict[str, Tensor] = {}
                sreq = req.request_for(rec)
                if sreq.any:
                    rows = self.query_rows(site, rec.queries, call.q.shape[-2], call.q.device)
                    results = linear_attention_stats(call.q, call.k, query_rows=rows, request=sreq)
                if "maps" in rec.stats:
                    heads, rows, cols = self.map_selection(site, rec, call)
                    results["attn_map"] = linear_attention_map(
                        call.q, call.k, query_rows=rows, key_cols=cols, heads=heads
                    )
                if "act_norms" in rec.stats and "pre_out" in rec.where:
                    streams = self.stream_rows(site, call.q.shape[-2], call.q.device)
                    results["act_pre_max"], results["act_pre_p95"] = activation_norms(call.out, streams, rec.ord)
                for view in wanted:
                    suffix = "" if view == "after" else "_before"
                    for var, val in results.items():
                        self.buffer.add(var + suffix, step, ccall, req.index, br, val)

    def _forward(self, req: SiteRequest, call: SDPACall) -> tuple[Tensor, Tensor | None]:
        """The unedited kernel call, bit for bit, and its log-sum-exp when a record can use it
        (``kernels.gpu.sdpa_with_lse`` on CUDA, ``kernels.lse_path.cpu_sdpa_with_lse`` on CPU: the op
        public SDPA would run, checked bit-identical once per shape, the original call otherwise)."""
        cpu = call.q.device.type == "cpu"
        wants = (
            (call.q.is_cuda or cpu)
            and (self.kernel == "auto" or (cpu and self.kernel == "lse"))
            and call.attn_mask is None
            and call.dropout_p == 0.0
            and not call.is_causal
            and any(uses for r, uses in req.lse_requests if uses and self._in_scope(r))
        )
        if not wants:
            return call.run_original(), None
        if cpu:
            return cpu_sdpa_with_lse(call.q, call.k, call.v, scale=call.scale_arg, cache=self.kernel_cache)
        from interp.kernels.gpu import sdpa_with_lse

        return sdpa_with_lse(
            call.q,
            call.k,
            call.v,
            scale=call.scale_arg,
            dropout_p=call.dropout_p,
            is_causal=call.is_causal,
            cache=self.kernel_cache,
        )

    def _records(
        self,
        req: SiteRequest,
        call: SDPACall,
        out: Tensor | None,
        edited: EditResult | None,
        views: tuple[str, ...],
        lse: Tensor | None = None,
    ) -> None:
        """Statistics of the records in scope, for the given views of this call's attention.

        ``lse``: the forward's row log-sum-exp when the kernel call returned it (unedited calls on
        CUDA), so the fused statistics need one extra pass instead of two."""
        site = req.site
        step, ccall, br = self.clock.step, self.clock.call, self.branch_index()
        bias, bias_rows, kernel = mask_to_bias(call.attn_mask), None, self.kernel
        if edited is not None and edited.key_bias is not None:
            key_bias = edited.key_bias[:, :, None, :]
            bias = key_bias if bias is None else key_bias + bias
            bias_rows = edited.row_mask  # per-key bias on all rows: the fast path takes it on CUDA
            kernel = "reference" if self.kernel == "reference" else "auto"
        in_scope: list[tuple[Record, list[str]]] = []
        for rec in req.records:
            wanted = [v for v in views if rec.view in (v, "both")] if self._in_scope(rec) else []
            if wanted:
                in_scope.append((rec, wanted))
        by_record: dict[int, dict[str, Tensor]] = {}
        for queries, recs, sreq in merged_requests(req, in_scope):  # the records of a site: one call per query set
            rows = self.query_rows(site, queries, call.q.shape[-2], call.q.device)
            computed = compute_stats(
                call.q,
                call.k,
                scale=call.scale,
                query_rows=rows,
                request=sreq,
                bias=bias,
                kernel=kernel,
                lse=lse if edited is None else edited.lse,  # a kernel's own, for these very logits
                bias_rows=bias_rows,
                cache=self.kernel_cache,
            )
            for rec in recs:
                names = {v for stat in req.request_for(rec).stats for v in CATALOGUE[stat].variable_names}
                by_record[id(rec)] = {n: val for n, val in computed.items() if n in names}
        for rec, wanted in in_scope:
            results = by_record.get(id(rec), {})
            if "capture" in rec.stats and out is not None and "after" in wanted:
                self.captured[(site.path, step, ccall)] = {
                    "v": call.v.detach().clone(),
                    "out": out.detach().clone(),
                    "branches": list(self.clock.branches),
                }
            if "maps" in rec.stats:
                heads, rows, cols = self.map_selection(site, rec, call)
                results["attn_map"] = attention_map(
                    call.q,
                    call.k,
                    scale=call.scale,
                    query_rows=rows,
                    key_cols=cols,
                    heads=heads,
                    bias=bias,
                    bias_rows=bias_rows,
                )
            if "act_norms" in rec.stats and "pre_out" in rec.where and out is not None:
                streams = self.stream_rows(site, call.q.shape[-2], call.q.device)
                results["act_pre_max"], results["act_pre_p95"] = activation_norms(out, streams, rec.ord)
            for view in wanted:
                suffix = "" if view == "after" else "_before"
                for var, val in results.items():
                    self.buffer.add(var + suffix, step, ccall, req.index, br, val)

    def on_output(self, path: str, output: Any) -> None:
        req = self.requests[path]
        rec = req.norm_record
        if rec is None or "post_out" not in rec.where or not self._in_scope(rec):
            return
        streams = self.adapter.split_output(req.site, output)
        with torch.no_grad():
            parts = []
            for name in STREAMS:
                x = streams.get(name)
                if x is None:
                    parts.append(None)
                    continue
                parts.append(activation_norms(x, self.output_rows(req.site, name, x.shape[1], x.device), rec.ord))
            ref = next(p for p in parts if p is not None)
            mx = torch.cat([p[0] if p is not None else torch.full_like(ref[0], float("nan")) for p in parts], dim=-2)
            p95 = torch.cat([p[1] if p is not None else torch.full_like(ref[1], float("nan")) for p in parts], dim=-2)
        br = self.branch_index()
        self.buffer.add("act_post_max", self.clock.step, self.clock.call, req.index, br, mx)
        self.buffer.add("act_post_p95", self.clock.step, self.clock.call, req.index, br, p95)
