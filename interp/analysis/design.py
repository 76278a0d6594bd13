"""What each condition of a store is: its edits, sampler settings and seed offset, and how to pair it.

Design
------
H2 analyses select conditions by what they *are* (sink removal at equal budget to that random control,
the eta series of one edit, a phase window, text-only sinks), never by parsing names. The description
comes from the store: ``interp sweep`` writes the attribute ``sweep_conditions`` (a JSON list, one entry
per condition: ``name``, ``plan`` (the plan JSON: records and edits, each edit a selector, an operation
and a scope, see ``interp.edits.spec``), ``sampler`` (the condition's full sampler settings) and
``seed_offset``). For a store made otherwise, ``--design FILE`` (JSON or TOML, the same list under the
key ``conditions``) supplies or overrides the descriptions.

From each description :class:`ConditionInfo` derives:

- ``family``: ``plain`` (no edit: the baseline or a sampling variation), ``noop`` (every edit is a
  zero-bias edit forced through the edit kernel: the noise floor), ``sink`` (top-k or replayed sinks),
  ``random`` / ``bottomk`` (controls), ``fixed`` (keys given by index or identity), ``value`` (value
  path), ``mixed``;
- the edit parameters analyses group by: layers, k, eta, selection, key modality, window, control match.

Pairing: the *reference* of a condition is the plain condition with the same sampler settings and seed
offset (the baseline when the condition changes only the plan), so an edit run at guidance 2 is compared
with the unedited run at guidance 2. Two edit conditions are *at equal budget* when their edits agree in
everything (sites, k, eta, operation, scope) except the selector kind, its match and its seed.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import xarray as xr

from interp.analysis.data import conditions as store_conditions
from interp.analysis.errors import StoreLacks
from interp.edits.spec import Edit, Operation, Scope, Selector

SINK_SELECTORS = ("topk", "replay")


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


_FIELDS = {
    "selector": {f.name for f in fields(Selector)} - {"kind"},
    "operation": {f.name for f in fields(Operation)},
    "scope": {f.name for f in fields(Scope)},
}


@dataclass(frozen=True)
class EditInfo:
    """One edit of a condition: the plan's own :class:`~interp.edits.spec.Edit`, parsed by the plan's
    parser (so its parameters and defaults are the plan's, never re-declared here), read through flat
    names: ``selector`` is the selector's kind, and every other field of its selector, operation and
    scope by its own name (``k``, ``eta``, ``layers``, ``phase``, ...)."""

    edit: Edit

    @classmethod
    def from_plan_item(cls, item: Mapping[str, Any]) -> EditInfo:
        sel = dict(item.get("selector") or {})
        entry = {
            "selector": sel,
            "operation": dict(item.get("operation") or {}),
            "scope": dict(item.get("scope") or {}),
            "name": str(item.get("name", sel.get("kind", "edit"))),
        }
        return cls(Edit.from_dict(entry))

    @property
    def name(self) -> str:
        return self.edit.name

    @property
    def selector(self) -> str:
        return self.edit.selector.kind

    def __getattr__(self, field: str) -> Any:
        if field.startswith("__") or field == "edit":  # copy / pickle probe before ``edit`` is set
            raise AttributeError(field)
        for part in ("selector", "operation", "scope"):
            item = getattr(self.edit, part)
            if field in _FIELDS[part]:
                return getattr(item, field)
        raise AttributeError(f"EditInfo has no parameter {field!r}")

    @property
    def is_noop(self) -> bool:
        """A zero-bias score edit (eta = 1): the edit kernel's numerical floor when forced."""
        return self.path == "score" and self.eta == 1.0

    @property
    def window(self) -> tuple[str, tuple[float, float]] | None:
        for kind in ("phase", "steps", "sigma"):
            w = getattr(self, kind)
            if w is not None:
                return (kind, w)
        return None

    @property
    def key_modality(self) -> str | None:
        """The modality the edited keys are restricted to (selector modality, or fixed keys' kind)."""
        if self.modality is not None:
            return self.modality
        if self.selector == "keys" and self.keys:
            kinds = {"image" if str(k).startswith("image") else "text" for k in self.keys if isinstance(k, str)}
            if len(kinds) == 1 and all(isinstance(k, str) for k in self.keys):
                return kinds.pop()
        return None

    @property
    def layer_list(self) -> tuple[Any, ...]:
        return self.layers if isinstance(self.layers, tuple) else (self.layers,)

    def budget(self) -> tuple[Any, ...]:
        """Everything but the choice of keys: equal budgets compare equal."""
        return (
            self.k,
            self.select,
            self.by,
            self.modality,
            self.path,
            self.eta,
            self.mode,
            self.alpha,
            self.mean_over,
            self.layers,
            self.steps,
            self.phase,
            self.sigma,
            self.calls,
            self.branch,
            self.queries,
            self.heads,
        )

    def describe(self) -> str:
        who = {
            "topk": f"top-{self.k}",
            "bottomk": f"bottom-{self.k}",
            "random": f"random {self.k}" + (f" ({self.match}-matched)" if self.match else ""),
            "replay": f"replayed top-{self.k}",
            "keys": "keys " + ",".join(str(k) for k in self.keys),
            "none": "no keys",
        }.get(self.selector, self.selector)
        if self.modality:
            who += f" {self.modality}"
        if self.select == "union" and self.selector in ("topk", "random", "bottomk", "replay"):
            who += " union"
        if self.path == "score":
            op = "noop (forced kernel)" if self.is_noop and self.force_kernel else f"eta={self.eta:g}"
        else:
            op = f"values {self.mode}" + (f" alpha={self.alpha:g}" if self.mode == "lerp" else "")
        where = "L" + "+".join(str(x) for x in self.layer_list)
        parts = [who, op, where]
        if self.window:
            kind, (a, b) = self.window
            parts.append(f"{kind} [{a:g}, {b:g}]")
        if self.branch != "both":
            parts.append(f"{self.branch} branch")
        if self.queries not in ("all", "used"):
            parts.append(f"{self.queries} rows")
        return ", ".join(parts)


@dataclass(frozen=True)
class ConditionInfo:
    """One condition: its edits, sampler settings (frozen items) and seed offset."""

    name: str
    edits: tuple[EditInfo, ...] = ()
    sampler: tuple[tuple[str, Any], ...] = ()
    seed_offset: int = 0
    described: bool = True

    @property
    def family(self) -> str:
        if not self.described:
            return "unknown"
        if not self.edits:
            return "plain"
        if all(e.is_noop for e in self.edits):
            return "noop"
        kinds = {
            "value" if e.path == "value" else "sink" if e.selector in SINK_SELECTORS else e.selector for e in self.edits
        }
        if len(kinds) > 1:
            return "mixed"
        kind = kinds.pop()
        return {"keys": "fixed"}.get(kind, kind)

    def _one(self, attr: str) -> Any:
        values = {getattr(e, attr) for e in self.edits}
        return values.pop() if len(values) == 1 else None

    @property
    def k(self) -> int | None:
        return self._one("k")

    @property
    def eta(self) -> float | None:
        return self._one("eta")

    @property
    def match(self) -> str | None:
        return self._one("match")

    @property
    def window(self) -> tuple[str, tuple[float, float]] | None:
        return self._one("window")

    @property
    def key_modality(self) -> str | None:
        return self._one("key_modality")

    @property
    def layers(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for e in self.edits:
            out.extend(x for x in e.layer_list if x not in out)
        return tuple(out)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def budget(self) -> tuple[Any, ...]:
        return (tuple(sorted((e.budget() for e in self.edits), key=repr)), self.sampler, self.seed_offset)

    def differs_only_in(self, other: ConditionInfo, attr: str) -> bool:
        """Same edits except ``attr`` (e.g. ``eta``), same sampler and seed offset."""
        if len(self.edits) != len(other.edits) or self.sampler != other.sampler:
            return False
        if self.seed_offset != other.seed_offset:
            return False
        mine = sorted((_without(e, attr) for e in self.edits), key=repr)
        theirs = sorted((_without(e, attr) for e in other.edits), key=repr)
        return mine == theirs

    def describe(self) -> str:
        if not self.described:
            return "(no description)"
        if not self.edits:
            return "no edit" + (f", seed offset {self.seed_offset}" if self.seed_offset else "")
        return "; ".join(e.describe() for e in self.edits)

    def sampler_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.sampler}


def _without(e: EditInfo, attr: str) -> tuple[Any, ...]:
    """Every parameter of the edit but ``attr`` (and its name), as sorted (name, value) pairs."""
    d = {"selector": e.selector, **{f: getattr(e, f) for names in _FIELDS.values() for f in names}}
    d.pop(attr, None)
    return tuple(sorted(d.items(), key=lambda kv: kv[0]))


def _edits_of(plan: Any) -> tuple[EditInfo, ...]:
    items = json.loads(plan) if isinstance(plan, str) else (plan or [])
    return tuple(EditInfo.from_plan_item(i) for i in items if isinstance(i, Mapping) and i.get("type") == "Edit")


def _info(entry: Mapping[str, Any]) -> ConditionInfo:
    if "edits" in entry and "plan" not in entry:
        edits = tuple(EditInfo.from_plan_item({"type": "Edit", **e}) for e in entry["edits"])
    else:
        edits = _edits_of(entry.get("plan"))
    return ConditionInfo(
        name=str(entry["name"]),
        edits=edits,
        sampler=_freeze(entry.get("sampler") or {}),
        seed_offset=int(entry.get("seed_offset", 0) or 0),
    )


def read_design_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Condition descriptions from a JSON or TOML file (a list, or a table with key ``conditions``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"design file {p} does not exist")
    text = p.read_text()
    data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    entries = data.get("conditions") if isinstance(data, Mapping) else data
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) and "name" in e for e in entries):
        raise ValueError(f"design file {p}: expected a list of conditions, each with a 'name'")
    return [dict(e) for e in entries]


@dataclass(frozen=True)
class Design:
    """The conditions of a store, described, with their references and families."""

    baseline: str
    infos: tuple[ConditionInfo, ...] = field(default_factory=tuple)
    source: str = "none"

    @classmethod
    def from_store(cls, ds: xr.Dataset, baseline: str = "baseline", design_file: str | None = None) -> Design:
        names = store_conditions(ds)
        entries: dict[str, dict[str, Any]] = {}
        source = "none"
        raw = ds.attrs.get("sweep_conditions")
        if raw:
            for e in json.loads(raw) if isinstance(raw, str) else raw:
                entries[str(e["name"])] = dict(e)
            source = "store attribute sweep_conditions"
        if design_file is not None:
            for e in read_design_file(design_file):
                entries[str(e["name"])] = e
            source = f"design file {design_file}" + (" + store" if raw else "")
        baseline = str(ds.attrs.get("sweep_baseline", baseline)) if baseline == "baseline" else baseline
        infos = []
        for name in names:
            infos.append(_info(entries[name]) if name in entries else ConditionInfo(name, described=False))
        return cls(baseline=baseline, infos=tuple(infos), source=source)

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    def info(self, name: str) -> ConditionInfo:
        for i in self.infos:
            if i.name == name:
                return i
        raise StoreLacks("condition", [name], have=self.names)

    def require_described(self, names: Sequence[str], *, analysis: str) -> None:
        bad = [n for n in names if not self.info(n).described]
        if bad:
            raise StoreLacks(
                "condition description",
                bad,
                analysis=analysis,
                hint="the store has no `sweep_conditions` attribute for them (stores made by `interp sweep` "
                "have it); pass --design FILE describing each condition's edits",
            )

    def reference(self, name: str) -> str:
        """The unedited condition ``name`` is paired with: same sampler settings and seed offset."""
        me = self.info(name)
        if not me.described or name == self.baseline:
            return self.baseline
        base = self.info(self.baseline) if self.baseline in self.names else None
        if base is not None and base.sampler == me.sampler and base.seed_offset == me.seed_offset:
            return self.baseline
        for other in self.infos:
            if other.family == "plain" and other.sampler == me.sampler and other.seed_offset == me.seed_offset:
                return other.name
        raise StoreLacks(
            "condition",
            [f"an unedited condition with the sampler settings of {name!r}"],
            have=self.names,
            hint=f"add a plan-free condition with the same sampler settings (and seed offset) as {name!r}",
        )

    def edited(self, *, families: Sequence[str] | None = None, only: Sequence[str] | None = None) -> list[str]:
        """Edited conditions (not plain, not noop), optionally of some families / among ``only``."""
        out = []
        for i in self.infos:
            if i.family in ("plain", "noop") or i.name == self.baseline:
                continue
            if families is not None and i.family not in families:
                continue
            if only is not None and i.name not in only:
                continue
            out.append(i.name)
        return out

    def noop(self, reference: str | None = None) -> str | None:
        """The no-op (noise floor) condition paired with ``reference`` (default: the baseline)."""
        ref = reference or self.baseline
        for i in self.infos:
            if i.family == "noop" and self.reference(i.name) == ref:
                return i.name
        return None

    def controls(self, sink: str, *, kinds: Sequence[str] = ("random", "bottomk")) -> list[str]:
        """Conditions at the same budget as ``sink`` whose keys are chosen otherwise (controls)."""
        me = self.info(sink)
        out = []
        for i in self.infos:
            if i.name == sink or i.family not in kinds:
                continue
            if i.budget() == me.budget():
                out.append(i.name)
        return out

    def plain_variations(self) -> list[str]:
        """Unedited conditions other than the baseline (sampler or seed variations)."""
        return [i.name for i in self.infos if i.family == "plain" and i.name != self.baseline]
