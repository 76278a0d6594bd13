"""Pairing samples across conditions by prompt and seed.

Design
------
Every H2 comparison is paired: the edited run and its reference share prompt and seed (docs/design.md,
Statistics and their identities).
Samples of a sweep store are rows in any order (several workers fill them), so pairing is a
join on the pairing coordinates (``AnalysisConfig.pair_by``, prompt and seed by default), never on row
position. :func:`aligned` joins any number of conditions at once (inner join: a unit enters only when
every condition has it) and returns one column per condition, plus the unit's prompt and tag; a
duplicated unit within a condition is an error (two rows for one prompt, seed and condition cannot be
paired one-to-one). :class:`Aligned` also tells whether prompts repeat (several seeds per prompt), in
which case statistics resample prompts (``clusters``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from interp.analysis.data import same_prompt_repeats
from interp.analysis.errors import StoreLacks


@dataclass(frozen=True)
class Aligned:
    """Values of one variable for paired units (rows) x conditions (columns)."""

    values: np.ndarray  # (n_units, n_conditions) float64
    conditions: tuple[str, ...]
    prompts: np.ndarray  # (n_units,) object
    tags: np.ndarray
    samples: np.ndarray  # (n_units, n_conditions) int: sample positions in the store
    n_dropped: int  # units of the first condition without a partner in every other one

    def column(self, condition: str) -> np.ndarray:
        return self.values[:, self.conditions.index(condition)]

    @property
    def clusters(self) -> np.ndarray | None:
        """Prompt labels when a prompt has several seeds (then CIs resample prompts), else None."""
        return self.prompts if same_prompt_repeats(self.prompts) else None

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    def subset(self, mask: np.ndarray) -> Aligned:
        return Aligned(
            self.values[mask], self.conditions, self.prompts[mask], self.tags[mask], self.samples[mask], self.n_dropped
        )


def aligned(
    table: pd.DataFrame,
    variable: str,
    conditions: Sequence[str],
    *,
    by: Sequence[str] = ("prompt", "seed"),
    analysis: str | None = None,
    min_units: int = 2,
) -> Aligned:
    """Join ``variable`` of ``conditions`` on the pairing coordinates ``by``.

    ``table`` is :func:`interp.analysis.data.sample_table` with ``variable`` loaded. Raises
    ``StoreLacks`` when a condition is absent or fewer than ``min_units`` units pair up, and
    ``ValueError`` when a condition has two samples for one unit.
    """
    missing_cols = [c for c in by if c not in table.columns]
    if missing_cols:
        raise StoreLacks(
            "sample coordinate", missing_cols, analysis=analysis, hint="pairing needs prompt and seed per sample"
        )
    have = list(dict.fromkeys(table["condition"]))
    absent = [c for c in conditions if c not in have]
    if absent:
        raise StoreLacks("condition", absent, analysis=analysis, have=have)
    keys = list(by)
    frames = []
    for cond in conditions:
        sub = table.loc[table["condition"] == cond, [*keys, "sample", "tag", variable]]
        dup = sub.duplicated(keys, keep=False)
        if dup.any():
            first = sub.loc[dup, keys].iloc[0].to_dict()
            raise ValueError(
                f"condition {cond!r} has {int(dup.sum())} samples sharing pairing keys (e.g. {first}); "
                f"pairing by {keys} needs one sample per key and condition"
            )
        frames.append(sub.set_index(keys))
    joined = frames[0][["sample", "tag", variable]].rename(columns={"sample": "s0", variable: "v0"})
    n_first = len(joined)
    for i, f in enumerate(frames[1:], start=1):
        joined = joined.join(
            f[["sample", variable]].rename(columns={"sample": f"s{i}", variable: f"v{i}"}), how="inner"
        )
    joined = joined.sort_index()
    if len(joined) < min_units:
        raise StoreLacks(
            "pairs",
            [f"{variable} of {list(conditions)}"],
            analysis=analysis,
            hint=f"only {len(joined)} unit(s) pair up by {keys} (need {min_units}); "
            "conditions must share prompts and seeds",
        )
    n = len(conditions)
    values = np.column_stack([joined[f"v{i}"].to_numpy(np.float64) for i in range(n)])
    samples = np.column_stack([joined[f"s{i}"].to_numpy(np.int64) for i in range(n)])
    index = joined.index.to_frame(index=False)
    prompts = (
        index["prompt"].astype(str).to_numpy(object) if "prompt" in index else np.arange(len(joined)).astype(object)
    )
    tags = joined["tag"].astype(str).to_numpy(object)
    return Aligned(values, tuple(conditions), prompts, tags, samples, n_first - len(joined))
