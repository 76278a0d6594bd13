"""A study's samples as paired units, scored exactly, and the one statistical method its findings use.

Design
------
:func:`load_study` reads the tables of ``interp.analysis.study_tables`` (one ``.npz`` per store: a
study run by several independent workers has one per worker), refuses parts that are not one study
(different sweep identity) or that hold the same sample twice, and scores every image with the
organism's exact scorer (``interp.organism.score``: 1 if the image satisfies its caption under
GenEval's rules). A *unit* is one (caption line, replicate) of the prompt file: the sweep gives it one
seed, shared by all its conditions, so a condition's sample and the baseline's are a pair.
:func:`complete_units` keeps the units where the baseline and every analysed condition are done, so
all conditions of a table are compared on the same units (a run stopped by a time limit leaves some
units half done).

:class:`Method` is the statistical method, the same for every number of the findings page (the
conventions of ``interp.analysis.config``):

* effects are paired differences ``condition - baseline`` per unit; captions recur (several seeds,
  and single_object has four captions), so captions are the resampled clusters;
* every interval is a prompt-clustered BCa bootstrap CI (``interp.stats``, 9999 resamples, seed 0);
* every p-value is a paired t-test on per-caption mean differences, Holm-adjusted over the rows of
  its table (one family per table);
* "no effect" is claimed only by TOST equivalence on the same per-caption differences, with a margin
  stated before the data (default 0.05 accuracy, 5 percentage points);
* distances to the baseline image (mean absolute pixel difference) are means with the same CI;
  "x times the control's shift" is the bootstrap CI of the ratio of per-caption mean shifts.

A statistic that the data cannot support (fewer than two captions, say) is NaN, never an error, so a
tiny study still renders its page.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from interp import stats

NAN = float("nan")


class StudyError(ValueError):
    """Study tables that cannot be analysed together (missing, of several studies, a sample twice)."""


@dataclass(frozen=True)
class Study:
    """Per done sample (one row each) of one study, plus the store's site and branch labels."""

    condition: np.ndarray
    tag: np.ndarray
    prompt: np.ndarray
    prompt_index: np.ndarray
    replicate: np.ndarray
    seed: np.ndarray
    correct: np.ndarray  # exact scorer, 1.0 / 0.0
    image: np.ndarray  # (sample, H, W, 3) uint8
    gen_seconds: np.ndarray
    mass_before: np.ndarray  # mean edited-key mass before / after the edit over its scope (NaN: no edit)
    mass_after: np.ndarray
    n_keys: np.ndarray  # mean edited keys per (step, site, branch, head) in scope
    edited: np.ndarray  # (sample, branch, site, step, class) edited keys by word class
    dominant: np.ndarray  # same shape: heads whose most-attended key is of each class (baseline rows)
    site: np.ndarray
    branch: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.condition.size)

    @property
    def conditions(self) -> list[str]:
        """Condition names in the sweep config's order (those with samples)."""
        names = [c["name"] for c in self.meta.get("sweep_config", {}).get("conditions", [])]
        have = set(self.condition.tolist())
        return [c for c in names if c in have] + sorted(have - set(names))

    def plan_of(self, condition: str) -> list[dict]:
        """The condition's plan calls as ``{"fn": name, **kwargs}`` (from the sweep config in the tables)."""
        for c in self.meta.get("sweep_config", {}).get("conditions", []):
            if c["name"] == condition:
                return [{"fn": call["fn"], **dict(call.get("kwargs", []))} for call in c.get("plan", [])]
        return []


_FIELDS = {
    "condition": "condition",
    "tag": "tag",
    "prompt": "prompt",
    "prompt_index": "prompt_index",
    "replicate": "replicate",
    "seed": "seed",
    "image": "image",
    "gen_seconds": "gen_seconds",
    "mass_before": "edit_mass_before",
    "mass_after": "edit_mass_after",
    "n_keys": "edit_n_keys",
    "edited": "edited_classes",
    "dominant": "dominant_classes",
}


def _identity(meta: dict) -> str:
    cfg = dict(meta.get("sweep_config", {}))
    for key in ("store", "run"):
        cfg.pop(key, None)
    return json.dumps(cfg, sort_keys=True, default=str)


def load_study(paths: Sequence[str | Path], *, score: bool = True) -> Study:
    """The study of the table files ``paths`` (parts of one study), scored with the exact scorer."""
    if not paths:
        raise StudyError("no study tables given")
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise StudyError(f"no study tables at {', '.join(missing)} (give .npz tables or a .zarr study store)")
    parts = []
    for p in paths:
        try:
            with np.load(p, allow_pickle=False) as z:
                parts.append({k: z[k] for k in z.files})
        except (OSError, ValueError) as exc:
            raise StudyError(f"{p} is not a numpy .npz file ({exc})") from None
        lacking = sorted({"meta", "site", "branch", *_FIELDS.values()} - set(parts[-1]))
        if lacking:
            raise StudyError(f"{p} is not study tables (lacks {', '.join(lacking)}); make them with study_tables")
    metas = [json.loads(str(p["meta"])) for p in parts]
    if len({_identity(m) for m in metas}) != 1:
        raise StudyError(
            "the tables are not one study: their sweep configs differ (conditions, prompts, seeds or sampler); "
            "analyse them separately"
        )
    for name in ("site", "branch"):
        if any(not np.array_equal(parts[0][name], p[name]) for p in parts[1:]):
            raise StudyError(f"the tables are not one study: their {name} labels differ")
    cols = {f: np.concatenate([p[src] for p in parts]) for f, src in _FIELDS.items()}
    key = np.char.add(
        np.char.add(cols["condition"].astype(str), "|"), np.char.add(cols["prompt_index"].astype(str), "|")
    )
    key = np.char.add(key, cols["replicate"].astype(str))
    uniq, counts = np.unique(key, return_counts=True)
    if (counts > 1).any():
        raise StudyError(
            f"{int((counts > 1).sum())} samples appear in several table files (e.g. {uniq[counts > 1][0]!r}): "
            "a sample must be counted once; give each worker's tables once"
        )
    meta = metas[0] | {"parts": [str(p) for p in paths], "stores": [m.get("store") for m in metas]}
    costs = [json.loads(str(p["cost"])) for p in parts if "cost" in p]  # written by run_study.sh
    if costs:
        meta["cost"] = costs[0] if len(costs) == 1 else {"parts": costs}
    correct = _score(cols["image"], cols["prompt"]) if score else np.full(key.size, NAN)
    return Study(**cols, correct=correct, site=parts[0]["site"], branch=parts[0]["branch"], meta=meta)


def _score(images: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    from interp.organism import score

    if images.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(score(list(images), [str(p) for p in prompts]).correct, dtype=np.float64)


def pixel_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute pixel difference per image pair, in [0, 1] (images uint8, (n, H, W, 3))."""
    return np.abs(a.astype(np.float64) - b.astype(np.float64)).mean(axis=(1, 2, 3)) / 255.0


@dataclass(frozen=True)
class Units:
    """Complete units: ``rows[c][u]`` is the row of condition ``c`` of unit ``u``."""

    rows: dict[str, np.ndarray]
    prompt: np.ndarray  # caption of each unit (the bootstrap's cluster)
    tag: np.ndarray
    prompt_index: np.ndarray
    replicate: np.ndarray

    def __len__(self) -> int:
        return int(self.prompt.size)

    def subset(self, mask: np.ndarray) -> Units:
        return Units(
            {c: r[mask] for c, r in self.rows.items()},
            self.prompt[mask],
            self.tag[mask],
            self.prompt_index[mask],
            self.replicate[mask],
        )


def complete_units(study: Study, conditions: Sequence[str], baseline: str = "baseline") -> Units:
    """Units (prompt line, replicate) where ``baseline`` and every condition of ``conditions`` are done."""
    names = [baseline, *[c for c in conditions if c != baseline]]
    unit = study.prompt_index.astype(np.int64) * 1_000_003 + study.replicate.astype(np.int64)
    common: np.ndarray | None = None
    where: dict[str, dict[int, int]] = {}
    for c in names:
        rows = np.flatnonzero(study.condition == c)
        where[c] = dict(zip(unit[rows].tolist(), rows.tolist(), strict=True))
        keys = np.fromiter(where[c], dtype=np.int64)
        common = keys if common is None else np.intersect1d(common, keys)
    common = np.sort(common if common is not None else np.zeros(0, np.int64))
    rows = {c: np.array([where[c][u] for u in common.tolist()], dtype=np.int64) for c in names}
    base = rows[baseline]
    return Units(rows, study.prompt[base], study.tag[base], study.prompt_index[base], study.replicate[base])


@dataclass(frozen=True)
class Estimate:
    """One number of the page: estimate with CI, p-value (raw and adjusted), TOST, sample sizes."""

    estimate: float = NAN
    low: float = NAN
    high: float = NAN
    p: float = NAN
    p_adj: float = NAN
    tost_p: float = NAN
    equivalent: bool | None = None
    n: int = 0
    n_captions: int = 0
    unchanged: bool = False  # every unit's difference is 0 (no test is defined)

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Method:
    """The statistical method of the findings (see the module docstring)."""

    level: float = 0.95
    ci_method: str = "bca"
    n_resamples: int = 9999
    seed: int = 0
    margin: float = 0.05  # TOST margin of accuracy differences (fraction of images correct)
    alpha: float = 0.05

    @property
    def boot(self) -> dict:
        return {"method": self.ci_method, "level": self.level, "n_resamples": self.n_resamples, "seed": self.seed}

    def describe(self) -> str:
        return (
            f"Paired by caption line and seed; {int(self.level * 100)}% prompt-clustered {self.ci_method.upper()} "
            f"bootstrap CIs ({self.n_resamples} resamples, seed {self.seed}; captions are the resampled units); "
            "p: paired t-test on per-caption mean differences, Holm-adjusted over the rows of each table; "
            f"'equivalent' = TOST on the same differences with margin ±{self.margin:g} accuracy at alpha "
            f"{self.alpha:g} "
            "(a 'no effect' claim needs it: a CI that contains 0 is not one)."
        )

    def difference(self, edited: np.ndarray, base: np.ndarray, clusters: np.ndarray, *, tost: bool = True) -> Estimate:
        """Mean paired difference ``edited - base`` with CI, t-test p and (``tost``) equivalence."""
        n, k = int(edited.size), int(np.unique(clusters).size)
        if k < 2:
            return Estimate(float(np.mean(edited - base)) if n else NAN, n=n, n_captions=k)
        if np.all(edited == base):  # no unit changed: the tests are undefined (zero variance), the CI is [0, 0]
            return Estimate(0.0, 0.0, 0.0, n=n, n_captions=k, unchanged=True)
        ci = _safe(lambda: stats.paired_bootstrap_ci(edited, base, clusters=clusters, **self.boot))
        p = _safe(lambda: stats.paired_ttest(edited, base, clusters=clusters).pvalue)
        eq = None
        if tost:
            eq = _safe(lambda: stats.tost_paired(edited, base, self.margin, alpha=self.alpha, clusters=clusters))
        return Estimate(
            float(np.mean(edited - base)),
            ci.low if ci is not None else NAN,
            ci.high if ci is not None else NAN,
            _finite(p),
            NAN,
            eq.pvalue if eq is not None else NAN,
            eq.equivalent if eq is not None else None,
            n,
            k,
        )

    def mean(self, values: np.ndarray, clusters: np.ndarray) -> Estimate:
        """Mean of a distance (no test: a distance to the baseline is never below 0)."""
        n, k = int(values.size), int(np.unique(clusters).size)
        if k < 2:
            return Estimate(float(np.mean(values)) if n else NAN, n=n, n_captions=k)
        ci = _safe(lambda: stats.bootstrap_ci(values, clusters=clusters, **self.boot))
        return Estimate(float(np.mean(values)), ci.low if ci else NAN, ci.high if ci else NAN, n=n, n_captions=k)

    def ratio(self, sink: np.ndarray, control: np.ndarray, clusters: np.ndarray) -> Estimate:
        """Ratio of mean effects (sink / control) with the CI of the ratio of per-caption means."""
        n, k = int(sink.size), int(np.unique(clusters).size)
        est = float(np.mean(sink) / np.mean(control)) if n and np.mean(control) != 0 else NAN
        if k < 2 or not math.isfinite(est):
            return Estimate(est, n=n, n_captions=k)
        res = _safe(
            lambda: stats.difference_of_differences(
                sink, control, alternative="two-sided", ratio=True, clusters=clusters, **self.boot
            )
        )
        r = res.ratio if res is not None else None
        return Estimate(est, r.low if r else NAN, r.high if r else NAN, n=n, n_captions=k)


def holm(estimates: Sequence[Estimate]) -> list[Estimate]:
    """The estimates with ``p_adj``: Holm over those with a finite p (one family)."""
    ps = [e.p for e in estimates]
    idx = [i for i, p in enumerate(ps) if math.isfinite(p)]
    adj = stats.holm([ps[i] for i in idx]) if idx else []
    out = list(estimates)
    for i, a in zip(idx, adj, strict=True):
        out[i] = replace(out[i], p_adj=float(a))
    return out


def _finite(x: float | None) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else NAN


def _safe(fn):  # noqa: ANN001, ANN202
    """``fn()``, or None where the data cannot support the statistic (too few units, constant data)."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's "degenerate data" warnings: the result is NaN-checked
            return fn()
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return None
