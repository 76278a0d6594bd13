"""The one error every analysis raises when a store lacks what it needs.

Design
------
An analysis reads a store written by other parts of the project (traces, sweeps, edits, metrics). When
an input is missing, the user must learn *what* is missing and *how to get it*, not see a ``KeyError``
deep in xarray. :class:`StoreLacks` names the kind of input (``condition``, ``metric``, ``layer``,
``variable``, ``condition description``, ``pairs``), the names that are missing, the analysis that
needed them, what the store has instead, and a hint (which recipe, record or metric produces it). The
CLI prints the message as is; ``interp analyze`` without ``--only`` reports such analyses as skipped.
"""

from __future__ import annotations

from collections.abc import Iterable


class StoreLacks(ValueError):
    """The store lacks an input an analysis needs (a condition, a metric, a layer, a variable...)."""

    def __init__(
        self,
        what: str,
        names: Iterable[str] | str,
        *,
        analysis: str | None = None,
        have: Iterable[str] | None = None,
        hint: str = "",
    ) -> None:
        self.what = what
        self.names = (names,) if isinstance(names, str) else tuple(names)
        self.analysis = analysis
        self.have = None if have is None else tuple(have)
        self.hint = hint
        who = f"{analysis}: " if analysis else ""
        listed = ", ".join(repr(n) for n in self.names)
        msg = f"{who}the store lacks {what} {listed}"
        if self.have is not None:
            shown = ", ".join(repr(h) for h in self.have[:20]) + (" ..." if len(self.have) > 20 else "")
            msg += f" (it has: {shown or 'none'})"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)

    def for_analysis(self, analysis: str) -> StoreLacks:
        """The same error, attributed to ``analysis`` (the name a user asked for)."""
        if self.analysis == analysis:
            return self
        return StoreLacks(self.what, self.names, analysis=analysis, have=self.have, hint=self.hint)
