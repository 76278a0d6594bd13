"""How much of a store is done, per condition, and what an analysis of an incomplete store must say.

Design
------
A sweep store is created with every row and fills them one sample at a time (its ``done`` flag is set
last); a trace store may hold a row whose append was interrupted. ``interp.open_store`` shows done
samples only, so an analysis of a store that is still running (or was stopped) would silently use a
fraction of the design. :func:`completeness` reads the ``done`` flags and the ``condition`` coordinate
(two small arrays, nothing else) and returns done/total per condition; :func:`require_complete` turns
it into the rule of ``interp analyze``:

- no done sample at all: refused (:class:`IncompleteStore`), even with ``--partial``: nothing to
  analyse, and the message says how far the store is (rather than "the store lacks condition ...");
- some samples pending: refused unless ``partial=True``; then every table gets a ``PARTIAL`` title and
  note and every figure a ``PARTIAL`` banner (:func:`mark_table`, :func:`mark_figure`), and
  ``index.md`` says it at the top, so a partial result is never mistaken for the full one;
- complete: nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.analysis.tables import Table


class IncompleteStore(ValueError):
    """A store with pending samples analysed without ``--partial``, or with no done sample at all."""


@dataclass(frozen=True)
class ConditionProgress:
    name: str
    done: int
    total: int

    @property
    def pending(self) -> int:
        return self.total - self.done


@dataclass(frozen=True)
class Completeness:
    """Done and total samples of a store, per condition (in store order)."""

    store: str
    conditions: tuple[ConditionProgress, ...]

    @property
    def done(self) -> int:
        return sum(c.done for c in self.conditions)

    @property
    def total(self) -> int:
        return sum(c.total for c in self.conditions)

    @property
    def pending(self) -> int:
        return self.total - self.done

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def per_condition(self) -> str:
        """``baseline 16/32 done, top1 0/32 done``."""
        return ", ".join(f"{c.name} {c.done}/{c.total} done" for c in self.conditions)

    def report(self) -> str:
        """One line: done of total, pending, per condition."""
        return (
            f"store {self.store}: {self.done} of {self.total} samples done, {self.pending} pending "
            f"({self.per_condition()})"
        )

    def partial_note(self) -> str:
        """The note a table or figure of a partial analysis carries."""
        return (
            f"PARTIAL: only {self.done} of {self.total} samples of the store were done ({self.per_condition()}); "
            "this result uses the done samples only"
        )


def completeness(path: str | os.PathLike) -> Completeness:
    """Done/total per condition of the store at ``path`` (a store without ``done`` counts as all done)."""
    import zarr  # lazily: the CLI's start-up stays light

    group = zarr.open_group(str(path), mode="r", use_consolidated=False)  # two arrays: their own metadata
    if "done" in group:
        done = np.asarray(group["done"][:], dtype=bool)
    else:
        n = next((int(group[d].shape[0]) for d in ("sample", "prompt", "seed") if d in group), 0)
        done = np.ones(n, dtype=bool)
    if "condition" in group and group["condition"].shape == done.shape:
        names = np.array([str(v) for v in np.asarray(group["condition"][:]).ravel()], dtype=object)
    else:
        names = np.array(["(all)"] * done.size, dtype=object)
    progress = tuple(
        ConditionProgress(str(name), int(done[names == name].sum()), int((names == name).sum()))
        for name in dict.fromkeys(names.tolist())
    )
    return Completeness(str(path), progress)


def require_complete(state: Completeness, *, partial: bool) -> None:
    """Refuse a store with no done sample; refuse one with pending samples unless ``partial``."""
    if state.total == 0:
        raise IncompleteStore(f"store {state.store} holds no samples; nothing to analyse")
    if state.done == 0:
        raise IncompleteStore(
            f"store {state.store} has no done sample yet (0 of {state.total}: {state.per_condition()}); "
            "run or resume its sweep first (interp sweep CONFIG)"
        )
    if state.pending and not partial:
        raise IncompleteStore(
            f"{state.report()}; resume the sweep to finish it (interp sweep CONFIG), or pass --partial to analyse "
            "the done samples (tables and figures are then marked PARTIAL)"
        )


def mark_table(table: Table, state: Completeness, out: Path) -> list[Path]:
    """Title and first note of ``table`` say PARTIAL; the table is written again."""
    if not table.title.startswith("PARTIAL"):
        table.title = f"PARTIAL ({state.done} of {state.total} samples done): {table.title}"
        table.notes.insert(0, state.partial_note())
    return table.write(out)


def mark_figure(path: Path, state: Completeness) -> Path:
    """Add a banner above the PNG at ``path`` saying it shows a partial store (in place)."""
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(path) as img:
        figure = img.convert("RGB")
    text = f"PARTIAL: {state.done} of {state.total} samples done ({state.per_condition()})"
    font = ImageFont.load_default(size=max(12, figure.width // 60))
    draw = ImageDraw.Draw(figure)
    box = draw.textbbox((0, 0), text, font=font)
    band = box[3] - box[1] + 12
    out = Image.new("RGB", (figure.width, figure.height + band), "white")
    out.paste(figure, (0, band))
    ImageDraw.Draw(out).text((6, 6 - box[1]), text, fill=(190, 0, 0), font=font)
    out.save(path, pnginfo=_partial_info(text))
    return path


def _partial_info(text: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("interp_partial", text)
    return info
