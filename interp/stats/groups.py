"""Per-tag breakdowns: apply any statistic of this package per group label, as a tidy table.

Design: :func:`by_group` splits per-observation arrays by a label array (a GenEval tag, a layer,
a condition), calls the given function on each group's slice with the same keyword arguments,
optionally corrects the groups' p-values as one family (Holm or BH), and returns a tuple of
frozen :class:`GroupRow`. :func:`to_records` flattens the rows into a list of flat dicts (one per
group, nested dataclass fields joined with ``.``), ready for ``csv.DictWriter`` or
``pandas.DataFrame``; no pandas dependency here.

Conventions: groups are listed in sorted label order; arrays are split along their first axis
(so 2-D ``values[unit, budget]`` for :func:`interp.stats.dose_trend` works); keyword arguments
that are per-observation (prompt ``clusters``, say) go in ``split`` so they are split too.
The p-value of a result is its ``pvalue`` attribute, else that of its ``test`` or ``ttest``
attribute (the contrast and trend results).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp.stats._checks import check_alpha
from interp.stats.multiple import adjust_pvalues


@dataclass(frozen=True)
class GroupRow:
    """One group of a breakdown.

    ``group`` the label; ``n`` the number of observations (first-axis rows) with that label;
    ``result`` what the function returned (``None`` if it failed under ``skip_errors``);
    ``pvalue_adjusted`` the family-corrected p-value when ``adjust`` was given; ``error`` the
    failure message under ``skip_errors``.
    """

    group: Any
    n: int
    result: Any
    pvalue_adjusted: float | None = None
    error: str | None = None


def result_pvalue(result: Any) -> float:
    """The p-value of a result of this package (see the module docstring)."""
    for path in (("pvalue",), ("test", "pvalue"), ("ttest", "pvalue")):
        obj = result
        for attr in path:
            obj = getattr(obj, attr, None)
        if obj is not None:
            return float(obj)
    raise TypeError(f"cannot find a p-value on a {type(result).__name__}")


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def by_group(
    groups: object,
    fn: Callable[..., Any],
    *arrays: object,
    split: Mapping[str, object] | None = None,
    adjust: str | None = None,
    alpha: float = 0.05,
    overall: bool = False,
    skip_errors: bool = False,
    **kwargs: Any,
) -> tuple[GroupRow, ...]:
    """Apply ``fn(*arrays_of_group, **split_of_group, **kwargs)`` to each group.

    Args:
        groups: 1-D labels, one per first-axis row of every array.
        fn: any function of this package (``paired_ttest``, ``paired_bootstrap_ci``, ...).
        arrays: positional per-observation arrays, split by group.
        split: keyword per-observation arrays, split by group (e.g. ``{"clusters": prompts}``).
        adjust: ``None``, ``"holm"`` or ``"bh"``: correct the groups' p-values as one family
            (the ``overall`` row is not part of the family).
        alpha: level for ``adjust``, default 0.05.
        overall: append a row labelled ``"all"`` computed on all observations.
        skip_errors: record a ``ValueError`` of a group (too few pairs, say) in its row instead
            of raising.
        kwargs: passed unchanged to every call.
    """
    alpha = check_alpha(alpha)
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"groups must be a non-empty 1-D array, got shape {labels.shape}")
    if not arrays and not split:
        raise ValueError("by_group needs at least one per-observation array")
    data = [np.asarray(a) for a in arrays]
    named = {k: np.asarray(v) for k, v in (split or {}).items()}
    for name, a in [(f"array {i}", a) for i, a in enumerate(data)] + list(named.items()):
        if a.ndim == 0 or a.shape[0] != labels.size:
            rows = a.shape[0] if a.ndim else 0
            raise ValueError(f"{name} has {rows} rows but groups has {labels.size} labels")

    def call(mask: np.ndarray, label: Any) -> GroupRow:
        n = int(mask.sum())
        try:
            res = fn(*[a[mask] for a in data], **{k: v[mask] for k, v in named.items()}, **kwargs)
        except ValueError as exc:
            if not skip_errors:
                raise ValueError(f"group {label!r}: {exc}") from exc
            return GroupRow(label, n, None, None, str(exc))
        return GroupRow(label, n, res)

    rows = [call(labels == g, _label(g)) for g in np.unique(labels)]
    if adjust is not None:
        ok = [i for i, r in enumerate(rows) if r.result is not None]
        if ok:
            adj = adjust_pvalues([result_pvalue(rows[i].result) for i in ok], adjust, alpha=alpha)
            for i, q in zip(ok, adj.adjusted, strict=True):
                rows[i] = dataclasses.replace(rows[i], pvalue_adjusted=q)
    if overall:
        rows.append(call(np.ones(labels.size, dtype=bool), "all"))
    return tuple(rows)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _flatten(f"{prefix}.{f.name}" if prefix else f.name, getattr(value, f.name), out)
    else:
        out[prefix or "result"] = value


def to_records(rows: tuple[GroupRow, ...] | list[GroupRow]) -> list[dict[str, Any]]:
    """Flat dicts, one per row: ``group``, ``n_rows`` (the row's ``n``), ``pvalue_adjusted``, ``error``
    and the result's fields (nested ones as ``ttest.pvalue``; a non-dataclass result as ``result``)."""
    records = []
    for r in rows:
        rec: dict[str, Any] = {
            "group": r.group,
            "n_rows": r.n,
            "pvalue_adjusted": r.pvalue_adjusted,
            "error": r.error,
        }
        if r.result is not None:
            _flatten("", r.result, rec)
        records.append(rec)
    return records
