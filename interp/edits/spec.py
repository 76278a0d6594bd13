"""An edit is three values: a selector (which keys), an operation (what happens to them) and a scope
(where and when). All three are frozen dataclasses, validated at construction, serialised with the
plan as JSON; the presets in ``interp.edits.presets`` (``mask_topk``, ``replace_values``, controls)
are short functions that fill them in, so the paper's conventions are named presets rather than a
growing list of keyword arguments.

Definitions (docs/design.md, Statistics and their identities):

- score path: s_ij += log(eta) for j in the edited key set, for query rows in scope; eta = 0 removes
  the keys exactly (their probability is exactly 0, the others renormalise);
- value path: v_j replaced by 0 (``zero``), by the mean value over the non-edited keys (``mean``,
  optionally over one modality), or by alpha * v_j + (1 - alpha) * mean (``lerp``; alpha is the weight
  kept on the original, alpha = 0 equals ``mean``);
- windows (steps, t/T, sigma) are closed intervals compared with a tolerance of 1e-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from interp.edits.words import expand_words
from interp.plan_terms import QUERY_SETS, PlanError, SiteSpec

SELECTOR_KINDS = ("topk", "bottomk", "random", "keys", "replay", "none")
MATCHES = (None, "modality", "token_class", "mass")
TOKEN_NAMES = ("clip_bos", "clip_eos", "clip_pad", "t5_eos", "t5_pad", "text", "image")
VALUE_MODES = ("zero", "mean", "lerp")
WINDOW_TOL = 1e-9


def _check_window(name: str, window: tuple[float, float] | None) -> None:
    if window is None:
        return
    if len(window) != 2:
        raise PlanError(f"{name} window must be (start, end), got {window!r}")
    a, b = window
    if any(isinstance(x, bool) or not isinstance(x, int | float) or math.isnan(x) for x in (a, b)):
        raise PlanError(f"{name} window bounds must be numbers, got {window!r}")
    if a > b:
        raise PlanError(f"{name} window {window!r} is inverted (start > end)")


def in_window(value: float, window: tuple[float, float] | None) -> bool:
    """Closed interval membership with the tolerance of docs/design.md, Statistics and their identities."""
    return window is None or (window[0] - WINDOW_TOL <= value <= window[1] + WINDOW_TOL)


@dataclass(frozen=True)
class Selector:
    """Which keys: the top/bottom ``k`` by incoming mass, random keys (controls), fixed keys, replay.

    ``select``: per head (``"head"``) or one set shared by all heads chosen by head-averaged mass
    (``"union"``; budget ``k`` keys). ``by``: the query set whose incoming mass ranks the keys.
    ``modality``: restrict candidates to text or image keys. ``match`` (random only): draw controls
    matched on the modality or token-class composition of the top-k set, or on its total mass.
    ``keys`` (fixed): key indices or token names (``clip_bos``, ``clip_eos``, ``clip_pad``, ``t5_eos``,
    ``t5_pad``, ``image:ROW,COL``, on video ``image:FRAME,ROW,COL``). ``source`` (replay): a store path and
    sample index whose recorded ``topk_keys`` are applied instead of selecting online.
    """

    kind: str = "topk"
    k: int = 1
    select: str = "head"
    by: str = "used"
    modality: str | None = None
    match: str | None = None
    seed: int = 0
    keys: tuple[Any, ...] = ()
    source: str | None = None
    source_sample: int | None = None
    words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.words:
            if self.kind not in ("topk", "random"):
                raise PlanError("words= applies to top-k edits and their random controls only")
            try:
                object.__setattr__(self, "words", expand_words(self.words))
            except ValueError as exc:
                raise PlanError(str(exc)) from None
        if self.kind not in SELECTOR_KINDS:
            raise PlanError(f"unknown selector {self.kind!r}; known: {', '.join(SELECTOR_KINDS)}")
        if self.kind in ("topk", "bottomk", "random", "replay") and (
            isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0
        ):
            raise PlanError(f"k must be a non-negative integer, got {self.k!r}")
        if self.select not in ("head", "union"):
            raise PlanError(f"select must be 'head' or 'union', got {self.select!r}")
        if self.by not in QUERY_SETS:
            raise PlanError(f"unknown query set {self.by!r}; known: {', '.join(QUERY_SETS)}")
        if self.modality not in (None, "text", "image"):
            raise PlanError(f"modality must be None, 'text' or 'image', got {self.modality!r}")
        if self.match not in MATCHES:
            raise PlanError(f"unknown control match {self.match!r}; known: modality, token_class, mass")
        if self.match is not None and self.kind != "random":
            raise PlanError("match= applies to random controls only")
        if self.kind == "keys":
            for key in self.keys:
                if isinstance(key, bool) or not (isinstance(key, int) or _is_token_name(key)):
                    raise PlanError(
                        f"fixed key {key!r}: give a key index or one of {', '.join(TOKEN_NAMES)} or 'image:ROW,COL' "
                        "('image:FRAME,ROW,COL' on video)"
                    )
        if self.kind == "replay" and not self.source:
            raise PlanError("replay needs a source store (replay=PATH, and replay_sample= if it holds several)")


def _is_token_name(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    if key in TOKEN_NAMES:
        return True
    if key.startswith("image:"):
        parts = key[6:].split(",")  # ROW,COL (images) or FRAME,ROW,COL (video)
        return len(parts) in (2, 3) and all(p.strip().isdigit() for p in parts)
    return False


@dataclass(frozen=True)
class Operation:
    """What happens to the selected keys: a logit bias (score path), a value replacement (value path),
    or activation patching (``patch``: the site's values, or its output rows, taken from a source
    trace at the same step, call and branch)."""

    path: str = "score"
    eta: float = 0.0
    mode: str = "zero"
    alpha: float = 0.0
    mean_over: str | None = None
    force_kernel: bool = False
    target: str = "values"
    source: str | None = None

    def __post_init__(self) -> None:
        if self.path not in ("score", "value", "patch"):
            raise PlanError(f"operation path must be 'score', 'value' or 'patch', got {self.path!r}")
        if self.path == "patch":
            if self.target not in ("values", "output"):
                raise PlanError(f"patch target must be 'values' or 'output', got {self.target!r}")
            if not self.source:
                raise PlanError("a patch needs a source trace (patch(source=t) with t traced with record('capture'))")
        if isinstance(self.eta, bool) or not isinstance(self.eta, int | float) or not (0.0 <= self.eta <= 1.0):
            raise PlanError(f"eta must be in [0, 1], got {self.eta!r}")
        if self.mode not in VALUE_MODES:
            raise PlanError(f"unknown value mode {self.mode!r}; known: {', '.join(VALUE_MODES)}")
        if not (0.0 <= float(self.alpha) <= 1.0):
            raise PlanError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if self.mean_over not in (None, "text", "image"):
            raise PlanError(f"mean_over must be None, 'text' or 'image', got {self.mean_over!r}")

    @property
    def is_noop(self) -> bool:
        """Changes nothing: takes the plain kernel unless forced through the edit kernel."""
        return self.path == "score" and self.eta == 1.0 and not self.force_kernel


@dataclass(frozen=True)
class Scope:
    """Where and when: sites, steps (index range, t/T or sigma window), calls, branch, rows, heads."""

    layers: SiteSpec = "all"
    steps: tuple[int, int] | None = None
    phase: tuple[float, float] | None = None
    sigma: tuple[float, float] | None = None
    calls: tuple[int, ...] | None = None
    branch: str = "both"
    queries: str = "all"
    heads: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_window("steps", self.steps)
        _check_window("phase (t/T)", self.phase)
        _check_window("sigma", self.sigma)
        if self.steps is not None and any(isinstance(s, float) and not s.is_integer() for s in self.steps):
            raise PlanError(f"steps window takes step indices, got {self.steps!r}")
        if self.branch not in ("both", "cond", "uncond"):
            raise PlanError(f"branch must be 'both', 'cond' or 'uncond', got {self.branch!r}")
        if self.queries not in ("all", "used", "image", "text"):
            raise PlanError(f"query rows must be 'all', 'used', 'image' or 'text', got {self.queries!r}")
        if self.heads is not None and (
            not self.heads or any(isinstance(h, bool) or not isinstance(h, int) or h < 0 for h in self.heads)
        ):
            raise PlanError(f"heads must be a non-empty list of head indices, got {self.heads!r}")


@dataclass(frozen=True)
class Edit:
    """A plan item: selector + operation + scope, with a name for the store."""

    selector: Selector
    operation: Operation
    scope: Scope
    name: str = "edit"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Edit:
        def tup(x: Any) -> Any:
            return tuple(tup(v) for v in x) if isinstance(x, list) else x

        return cls(
            selector=Selector(**{k: tup(v) for k, v in d["selector"].items()}),
            operation=Operation(**d["operation"]),
            scope=Scope(**{k: tup(v) for k, v in d["scope"].items()}),
            name=d.get("name", "edit"),
        )
