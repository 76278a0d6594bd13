"""Tables: one object, written as markdown (for reading) and CSV (every raw number, for reuse).

Design
------
A :class:`Table` holds rows as dicts of raw values (floats at full precision, strings) and a list of
:class:`Column` s that say which cells the markdown shows and how (an estimate with its CI in one
cell, a p-value with its adjusted value). The CSV gets every key of every row, unformatted, so nothing
shown is lost and nothing is rounded twice. Notes (the reference condition, the CI method, the noise
floor, the margins) are printed under the markdown table; the CSV's first lines do not carry them, so
it stays a plain table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


def num(x: Any, digits: int = 4) -> str:
    """A number for a table cell: fixed point, scientific when tiny or huge, '–' when missing."""
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "–"
    if v == 0:
        return "0"
    if isinstance(x, int) or (float(v).is_integer() and abs(v) < 1e6 and digits == 0):
        return str(int(v))
    if abs(v) >= 1e5 or abs(v) < 10 ** (-digits + 1):
        return f"{v:.{max(digits - 2, 1)}e}"
    return f"{v:.{digits}f}"


def pval(p: Any) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    p = float(p)
    if p < 1e-4:
        return "<1e-4"
    return f"{p:.4f}"


def ci_cell(row: Mapping[str, Any], prefix: str, digits: int = 4) -> str:
    """``estimate [low, high]`` from ``{prefix}``, ``{prefix}_low``, ``{prefix}_high``."""
    est = row.get(prefix)
    lo, hi = row.get(f"{prefix}_low"), row.get(f"{prefix}_high")
    if est is None or (isinstance(est, float) and math.isnan(est)):
        return "–"
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return num(est, digits)
    return f"{num(est, digits)} [{num(lo, digits)}, {num(hi, digits)}]"


def stars(p: Any, alpha: float = 0.05) -> str:
    """Significance marks on an adjusted p: * < alpha, ** < alpha/10, *** < alpha/100."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    p = float(p)
    return "***" if p < alpha / 100 else "**" if p < alpha / 10 else "*" if p < alpha else ""


@dataclass(frozen=True)
class Column:
    """A markdown column: ``key`` of the row (raw value) or ``fmt(row)`` for composite cells."""

    header: str
    key: str | None = None
    fmt: Callable[[Mapping[str, Any]], str] | None = None
    digits: int = 4

    def cell(self, row: Mapping[str, Any]) -> str:
        if self.fmt is not None:
            return self.fmt(row)
        value = row.get(self.key) if self.key else None
        return num(value, self.digits) if not isinstance(value, str) else value


@dataclass
class Table:
    """A result table: ``name`` (file stem), ``title``, markdown ``columns``, raw ``rows``, ``notes``."""

    name: str
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        head = [c.header.replace("|", "\\|") for c in self.columns]
        lines = [f"## {self.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [c.cell(row).replace("|", "\\|") for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        if not self.rows:
            lines.append("| " + " | ".join(["(no rows)"] + [""] * (len(head) - 1)) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def to_frame(self) -> pd.DataFrame:
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row if k not in keys)
        return pd.DataFrame(self.rows, columns=keys)

    def write(self, out: str | Path) -> list[Path]:
        """Write ``{name}.md`` and ``{name}.csv`` into ``out``; returns both paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        md, csv = out / f"{self.name}.md", out / f"{self.name}.csv"
        md.write_text(self.to_markdown())
        self.to_frame().to_csv(csv, index=False)
        return [md, csv]
