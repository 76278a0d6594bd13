"""The plan: what a trace records and edits, declared in the body of ``tracer.trace``.

Design
------
The body of a ``with tracer.trace(...)`` block is ordinary Python. Calls such as ``record(...)`` do
not touch the model: each builds a frozen dataclass (a *plan item*) and appends it to the plan that
is open in the current context (a :class:`contextvars.ContextVar`, so nested or concurrent traces in
other threads never mix). The pipeline runs when the block exits, with the finished, immutable
:class:`Plan`. Nothing is deferred-executed or source-parsed, and a plan is plain data: it serialises
to JSON (stored with every trace) and can be rebuilt from it.

Validation that needs the pipeline (does layer 30 exist? which modality is key 80?) happens in
``interp.sites.select`` when sites are resolved, before any generation starts. Validation that needs
nothing (unknown statistic name, bad ``k``) happens here, at the call.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from interp.plan_terms import (  # noqa: F401  (re-exported: the plan's public vocabulary)
    MAP_KEY_SETS,
    NORM_ORDS,
    NORM_SITES,
    QUERY_SETS,
    MapKeys,
    NormOrd,
    NormSite,
    PlanError,
    QuerySet,
    SiteSpec,
    View,
)
from interp.statistics import CATALOGUE, StatisticName

STATISTICS: dict[str, str] = {name: stat.summary for name, stat in CATALOGUE.items()}
"""Statistic name -> one-line summary, from the catalogue (``interp.statistics``)."""


@dataclass(frozen=True)
class Record:
    """Observation request: which statistics, at which sites, over which query rows.

    ``top`` is the number K of top keys stored per head (ranks); ``k`` the budget of the
    ``mass_topk`` / ``query_topk`` concentration statistics. ``where`` and ``ord`` configure
    ``act_norms``. ``steps`` optionally restricts recording to some step indices (None: all).
    """

    stats: tuple[StatisticName, ...]
    layers: SiteSpec = "all"
    queries: QuerySet = "used"
    top: int = 8
    k: int = 5
    where: tuple[NormSite, ...] = ("pre_out", "post_out")
    ord: tuple[NormOrd, ...] = ("2", "inf")
    steps: tuple[int, ...] | None = None
    view: View = "after"
    heads: tuple[int, ...] | None = None
    keys: MapKeys | tuple[int, ...] = "all"
    max_mb: float = 256.0

    def __post_init__(self) -> None:
        if "maps" in self.stats:
            if not (isinstance(self.keys, str) and self.keys in MAP_KEY_SETS) and not (
                isinstance(self.keys, tuple)
                and self.keys
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.keys)
            ):
                raise PlanError(f"maps keys= must be one of {MAP_KEY_SETS} or a list of key indices, got {self.keys!r}")
            if self.heads is not None and (
                not self.heads or any(isinstance(h, bool) or not isinstance(h, int) or h < 0 for h in self.heads)
            ):
                raise PlanError(f"maps heads= must be a non-empty list of head indices, got {self.heads!r}")
            if not self.max_mb > 0:
                raise PlanError(f"max_mb must be positive, got {self.max_mb!r}")
        if self.view not in get_args(View):
            raise PlanError(f"view must be one of {get_args(View)}, got {self.view!r}")
        if not self.stats:
            raise PlanError("record() needs at least one statistic; known: " + ", ".join(STATISTICS))
        for name in self.stats:
            if name not in STATISTICS:
                raise PlanError(f"unknown statistic {name!r}; known: {', '.join(STATISTICS)}")
        if len(set(self.stats)) != len(self.stats):
            raise PlanError(f"statistic listed twice in {self.stats}")
        if self.queries not in QUERY_SETS:
            raise PlanError(f"unknown query set {self.queries!r}; known: {', '.join(QUERY_SETS)}")
        for name, value in (("top", self.top), ("k", self.k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PlanError(f"record({name}=...) must be a positive integer, got {value!r}")
        for w in self.where:
            if w not in NORM_SITES:
                raise PlanError(f"unknown norm site {w!r}; known: {', '.join(NORM_SITES)}")
        for o in self.ord:
            if o not in NORM_ORDS:
                raise PlanError(f"unknown norm order {o!r}; known: {', '.join(NORM_ORDS)}")
        if self.steps is not None and any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.steps):
            raise PlanError(f"record(steps=...) must be non-negative step indices, got {self.steps!r}")


@dataclass(frozen=True)
class Plan:
    """An immutable, JSON-serialisable list of plan items (records now; edits join them later)."""

    items: tuple[Any, ...] = field(default_factory=tuple)
    sources: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Live objects the plan's items name by id (``patch(source=trace)``: the source ``Trace``); held
    by the plan, so a source lives as long as a plan that patches from it. Not serialised."""

    @property
    def records(self) -> tuple[Record, ...]:
        return tuple(i for i in self.items if isinstance(i, Record))

    @property
    def edits(self) -> tuple[Any, ...]:
        from interp.edits.spec import Edit

        return tuple(i for i in self.items if isinstance(i, Edit))

    def to_json(self) -> str:
        return json.dumps(
            [{"type": type(i).__name__, **_jsonable(dataclasses.asdict(i))} for i in self.items],
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        from interp.edits.spec import Edit

        items: list[Any] = []
        for entry in json.loads(text):
            entry = dict(entry)
            kind = entry.pop("type")
            if kind == "Record":
                items.append(Record(**_tuplify(entry)))
            elif kind == "Edit":
                items.append(Edit.from_dict(entry))
            else:
                raise PlanError(f"unknown plan item type in JSON: {kind!r}")
        return cls(tuple(items))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _tuplify(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}


# --- collection through a context variable -------------------------------------------------------

_OPEN_PLAN: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("interp_open_plan", default=None)
_OPEN_SOURCES: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "interp_open_plan_sources", default=None
)


def _append(item: Any, caller: str) -> Any:
    items = _OPEN_PLAN.get()
    if items is None:
        raise RuntimeError(
            f"{caller}() declares part of a plan and must be called inside `with tracer.trace(pipe, ...):`"
        )
    items.append(item)
    return item


def open_plan(initial: Plan | None = None) -> contextvars.Token:
    """Start collecting plan items in this context (used by the tracer), seeded with ``initial``."""
    _OPEN_SOURCES.set(dict(initial.sources) if initial is not None else {})
    return _OPEN_PLAN.set(list(initial.items) if initial is not None else [])


def close_plan(token: contextvars.Token) -> Plan:
    """Stop collecting and return the finished plan (used by the tracer)."""
    items = _OPEN_PLAN.get() or []
    sources = _OPEN_SOURCES.get() or {}
    _OPEN_PLAN.reset(token)
    _OPEN_SOURCES.set(None)
    return Plan(tuple(items), sources=dict(sources))


def add_source(key: str, obj: Any, caller: str) -> None:
    """Hold ``obj`` (named ``key`` by a plan item) in the open plan (``patch(source=trace)``)."""
    sources = _OPEN_SOURCES.get()
    if sources is None:
        raise RuntimeError(
            f"{caller}() declares part of a plan and must be called inside `with tracer.trace(pipe, ...):`"
        )
    sources[key] = obj


def _as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def record(
    *stats: StatisticName,
    layers: SiteSpec = "all",
    queries: QuerySet = "used",
    top: int = 8,
    k: int = 5,
    where: NormSite | Sequence[NormSite] = ("pre_out", "post_out"),
    ord: str | int | float | Sequence[str | int | float] = ("2", "inf"),
    steps: Sequence[int] | None = None,
    view: View = "after",
    heads: Sequence[int] | None = None,
    keys: MapKeys | Sequence[int] = "all",
    max_mb: float = 256.0,
) -> Record:
    """Declare statistics to record in the open trace.

    >>> with tracer.trace(pipe, "a photo of a cat", seed=0) as t:   # doctest: +SKIP
    ...     record("mass", "entropy", "mass_topk", layers="all")

    ``view``: at an edited call, whether the statistics describe the attention ``"after"`` the edit
    (the standard variables), ``"before"`` it (variables suffixed ``_before``), or ``"both"``.

    ``"maps"`` stores attention probabilities (variable ``attn_map``) of the sites and ``steps``
    chosen, for ``heads`` (default all), the ``queries`` rows and the ``keys`` columns (``"all"``,
    ``"image"``, ``"text"`` or key indices); a request larger than ``max_mb`` megabytes is refused
    before generation with its size in the message.
    """
    ords = ord if isinstance(ord, Sequence) and not isinstance(ord, str) else (ord,)
    norm_ords = tuple("inf" if str(o) in ("inf", "float('inf')") or o == float("inf") else str(o) for o in ords)
    layer_spec = tuple(layers) if isinstance(layers, list) else layers
    item = Record(
        stats=tuple(stats),
        layers=layer_spec,
        queries=queries,
        top=top,
        k=k,
        where=_as_tuple(where),
        ord=norm_ords,
        steps=None if steps is None else tuple(steps),
        view=view,
        heads=None if heads is None else tuple(heads),
        keys=keys if isinstance(keys, str) else tuple(keys),
        max_mb=max_mb,
    )
    return _append(item, "record")
