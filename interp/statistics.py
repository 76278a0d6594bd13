"""The catalogue of statistics: every statistic ``record(...)`` knows, declared once.

Design
------
A statistic is a name the user writes (``record("mass")``), the store variables it fills (with their
dimensions and meaning), what it needs from the attention kernels, and where it can be computed. Each
of these used to live in its own table (the plan's checks, the kernel request, the GPU dispatch, the
store schema, the variable attributes, the interop list, the docs); they are all derived from
:data:`CATALOGUE` now:

- ``interp.plan`` checks ``record()`` names against it (``STATISTICS``: name -> summary);
- ``interp.kernels.reference.StatRequest`` holds the kernel statistics a call needs, and asks the
  catalogue what each needs from the kernels (:data:`KERNEL_NEEDS`);
- ``interp.store.schema.VARIABLES`` is built from the variables declared here (plus their ``_before``
  twins for the views of an edited call), the image and the edit-verification variables;
- ``interp.tracer`` stores the record options that give each variable its meaning as its attributes;
- ``interp.interop`` offers the statistics computed at the kernel call (``at_kernel_call``);
- ``docs/definitions.md`` has a table of exactly these statistics and variables (a test checks it).

Adding a statistic is one :class:`Statistic` entry here, its name in :data:`StatisticName`, its kernel
code (``interp.kernels``: the reference oracle first, a fast path if it matters) and its tests.

What a statistic needs from the kernels (``needs``) is one of the passes the kernels share, so one
call computes each pass once however many statistics use it:

- ``"column_sums"``: sums over the query set of every key's probability (the incoming mass);
- ``"entropy_sums"``: sums over the query set of each row's entropy;
- ``"row_topk"``: each row's k largest probabilities (needs every probability: exact chunked path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

StatisticName = Literal["mass", "mass_full", "entropy", "mass_topk", "query_topk", "act_norms", "capture", "maps"]
"""The statistics ``record(...)`` accepts (the keys of :data:`CATALOGUE`, checked at import)."""

KernelNeed = Literal["column_sums", "entropy_sums", "row_topk"]
"""A pass of the attention-statistics kernels (see the module docstring)."""

KERNEL_NEEDS: tuple[KernelNeed, ...] = get_args(KernelNeed)

CORE = ("step", "call", "site", "branch", "head")
"""Leading dimensions of every per-head statistic: one value per step, call, site, CFG branch and head."""
SITE_CORE = ("step", "call", "site", "branch")
"""Leading dimensions of per-site statistics (no head axis)."""
MAP_DIMS = (*SITE_CORE, "map_head", "map_query", "map_key")
RECORD_OPTIONS = ("queries", "top", "k")
"""``record()`` options stored as every statistic variable's attributes (they give it its meaning)."""


@dataclass(frozen=True)
class Variable:
    """One store variable a statistic fills. ``before``: it also has a ``<name>_before`` twin, the
    same quantity for the attention before an edit (``record(view="before" | "both")``)."""

    name: str
    dims: tuple[str, ...]
    description: str
    before: bool = True


@dataclass(frozen=True)
class Statistic:
    """One statistic of the catalogue.

    ``needs``: the kernel passes it uses (empty: not an attention-statistics kernel output);
    ``at_kernel_call``: computed when the attention kernel is called (so a site module of
    ``interp.interop`` can receive it); ``variables``: what it stores (none: kept in memory only).
    """

    name: StatisticName
    summary: str
    variables: tuple[Variable, ...]
    needs: frozenset[KernelNeed] = frozenset()
    at_kernel_call: bool = True

    @property
    def variable_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)


_NORM = (*CORE, "stream", "norm_ord")
_POST = (*SITE_CORE, "stream", "norm_ord")

_ENTRIES = (
    Statistic(
        "mass",
        "incoming mass summaries per head: max_mass, argmax_key, topk_keys / topk_mass (K ranks)",
        (
            Variable("max_mass", CORE, "max_j m_j: largest incoming mass of any key over the query set"),
            Variable("argmax_key", CORE, "index of the key with the largest incoming mass"),
            Variable("topk_keys", (*CORE, "rank"), "keys with the K largest incoming masses, descending"),
            Variable("topk_mass", (*CORE, "rank"), "incoming masses of topk_keys"),
        ),
        frozenset({"column_sums"}),
    ),
    Statistic(
        "mass_full",
        "the full incoming-mass vector per key (float32), variable mass_per_key",
        (Variable("mass_per_key", (*CORE, "key"), "incoming mass m_j of every key (mean over the query set)"),),
        frozenset({"column_sums"}),
    ),
    Statistic(
        "entropy",
        "mean over the query set of the per-query attention entropy (nats)",
        (Variable("entropy", CORE, "mean over the query set of H_i = -sum_j A_ij ln A_ij (nats)"),),
        frozenset({"entropy_sums"}),
    ),
    Statistic(
        "mass_topk",
        "sum of the k largest incoming masses (concentration of incoming mass)",
        (Variable("mass_topk", CORE, "sum of the k largest incoming masses"),),
        frozenset({"column_sums"}),
    ),
    Statistic(
        "query_topk",
        "mean over queries of the sum of each query's k largest probabilities",
        (Variable("query_topk", CORE, "mean over the query set of the sum of each row's k largest probabilities"),),
        frozenset({"row_topk"}),
    ),
    Statistic(
        "act_norms",
        "norms of attention outputs: pre_out (A V per head) and/or post_out (after projection)",
        (
            Variable("act_pre_max", _NORM, "max over tokens of |A V| per head (pre_out)"),
            Variable("act_pre_p95", _NORM, "95th percentile over tokens of |A V| per head"),
            Variable(
                "act_post_max",
                _POST,
                "max over tokens of the attention output norm after the output projection",
                before=False,
            ),
            Variable(
                "act_post_p95",
                _POST,
                "95th percentile over tokens of the output norm after the output projection",
                before=False,
            ),
        ),
    ),
    Statistic(
        "capture",
        "keep each call's values and attention output in memory (Trace.captured) for patching; not stored",
        (),
        at_kernel_call=False,
    ),
    Statistic(
        "maps",
        "attention probabilities of chosen heads, query rows and keys (size-guarded), variable attn_map",
        (
            Variable(
                "attn_map",
                MAP_DIMS,
                "attention probabilities A_ij of the chosen heads, query rows and keys",
                before=False,
            ),
        ),
        at_kernel_call=False,
    ),
)

CATALOGUE: dict[str, Statistic] = {s.name: s for s in _ENTRIES}
"""Statistic name -> :class:`Statistic`, in the order the docs list them."""

if tuple(CATALOGUE) != get_args(StatisticName):  # the Literal is for type checkers; keep the two equal
    raise ImportError(f"StatisticName {get_args(StatisticName)} differs from the catalogue {tuple(CATALOGUE)}")

KERNEL_STATISTICS: tuple[str, ...] = tuple(n for n, s in CATALOGUE.items() if s.needs)
"""Statistics the attention-statistics kernels compute (``interp.kernels``)."""

SITE_STATISTICS: tuple[str, ...] = tuple(n for n, s in CATALOGUE.items() if s.at_kernel_call)
"""Statistics computed at the attention kernel call (what an ``interp.interop`` site module receives)."""


def variables() -> dict[str, Variable]:
    """Every statistic variable (without the ``_before`` twins), in catalogue order."""
    return {v.name: v for s in CATALOGUE.values() for v in s.variables}


def statistic_of(variable: str) -> Statistic:
    """The statistic that fills ``variable`` (a ``_before`` twin belongs to the same statistic)."""
    for stat in CATALOGUE.values():
        for v in stat.variables:
            if variable == v.name or (v.before and variable == v.name + "_before"):
                return stat
    raise KeyError(f"no statistic stores the variable {variable!r}")


__all__ = [
    "CATALOGUE",
    "CORE",
    "KERNEL_NEEDS",
    "KERNEL_STATISTICS",
    "MAP_DIMS",
    "RECORD_OPTIONS",
    "SITE_CORE",
    "SITE_STATISTICS",
    "KernelNeed",
    "Statistic",
    "StatisticName",
    "Variable",
    "statistic_of",
    "variables",
]
