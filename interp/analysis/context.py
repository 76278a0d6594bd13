"""What every analysis receives: the store, the settings, the output folder, and cached views of them.

Design
------
An analysis is a function of a :class:`Context`. The context opens nothing twice: the condition
design (:class:`~interp.analysis.design.Design`), the metric list and the sample table with all metric
scores are computed on first use and cached, so ``interp analyze`` running twenty analyses on one store
reads each metric once. :class:`Result` is what an analysis returns: the files it wrote and one-line
notes for the console.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from interp.analysis.config import AnalysisConfig
from interp.analysis.data import metric_variables, sample_table
from interp.analysis.design import Design
from interp.analysis.errors import StoreLacks
from interp.analysis.tables import Table


@dataclass
class Result:
    """Files an analysis wrote (tables as .md and .csv, figures as .png) and console notes."""

    name: str
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def add_table(self, table: Table, out: Path) -> Table:
        self.files.extend(table.write(out))
        self.tables.append(table)
        return table

    @classmethod
    def of_table(cls, name: str, table: Table, out: Path) -> Result:
        """The result of an analysis that writes one table."""
        res = cls(name)
        res.add_table(table, out)
        return res


class Context:
    """A store opened for analysis, with ``cfg`` and the output folder ``out``."""

    def __init__(self, ds: xr.Dataset, cfg: AnalysisConfig | None = None, out: str | Path = ".") -> None:
        self.ds = ds
        self.cfg = cfg or AnalysisConfig()
        self.out = Path(out)
        self.cache: dict[tuple, Any] = {}  # effects shared by several analyses of one run

    @functools.cached_property
    def design(self) -> Design:
        return Design.from_store(self.ds, self.cfg.baseline, self.cfg.design)

    @functools.cached_property
    def metrics(self) -> list[str]:
        return metric_variables(self.ds)

    @functools.cached_property
    def samples(self) -> pd.DataFrame:
        """The sample table with every metric variable loaded."""
        return sample_table(self.ds, self.metrics)

    @property
    def baseline(self) -> str:
        return self.design.baseline

    def edited(self, families: tuple[str, ...] | None = None, *, analysis: str) -> list[str]:
        """Edited conditions of ``families`` (restricted to ``cfg.conditions``); StoreLacks if none."""
        names = self.design.edited(families=families, only=self.cfg.conditions)
        undescribed = [i.name for i in self.design.infos if not i.described and i.name != self.baseline]
        if not names:
            if undescribed:
                self.design.require_described(undescribed, analysis=analysis)
            what = "edited condition of family" if families else "edited condition"
            fam = list(families) if families else ["any"]
            raise StoreLacks(
                what,
                fam,
                analysis=analysis,
                have=[f"{i.name} ({i.family})" for i in self.design.infos],
                hint="run the sweep recipe that adds these conditions",
            )
        return names
