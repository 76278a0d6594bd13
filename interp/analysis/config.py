"""Settings shared by every analysis: which condition is the baseline, how CIs and tests are made.

Design
------
One frozen dataclass, :class:`AnalysisConfig`, passed to every analysis (the CLI builds it from its
options). Statistical conventions follow ``interp.stats``: seeded bootstrap CIs (BCa by default),
two-sided tests, Holm correction within each table's family of tests. Equivalence (TOST) margins are
stated per metric in the metric's own units; a metric without a margin is not equivalence-tested
("the CI contains 0" is not evidence of no effect). The default margins are this project's choice, not
the paper's; they are printed under every table that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MARGINS: tuple[tuple[str, float], ...] = (
    ("clip_t", 0.01),  # cosine units; CLIP-T of SD3 images varies by ~0.03 across prompts of one tag
    ("hps", 0.005),  # HPS-v2 cosine units
    ("image_reward", 0.1),  # normalised ImageReward units
    ("imagereward", 0.1),
)


@dataclass(frozen=True)
class AnalysisConfig:
    """How analyses read a store and compute statistics.

    ``baseline``: the unedited condition. ``pair_by``: sample coordinates that pair an edited sample
    with its reference (prompt and seed). ``level``, ``ci_method`` (``"bca"`` or ``"percentile"``),
    ``n_resamples``, ``seed``: bootstrap CIs. ``adjust``: multiplicity correction within a table
    (``"holm"`` or ``"bh"``). ``alpha``: test level (TOST, significance marks). ``margins``: TOST
    margins by metric (matched on the metric name without its ``score_`` prefix; the longest matching
    key wins). ``fid_resamples``: bootstrap resamples of FID CIs (0: no CI). ``n_qualitative``:
    prompts per qualitative panel. ``identity_top``: how many top keys count as "dominant" in the
    token-identity analysis (1: the argmax key). ``conditions``: restrict H2 analyses to these
    conditions (None: all). ``design``: a JSON/TOML file describing conditions for stores without the
    ``sweep_conditions`` attribute. ``max_rows_annotated``: heatmap cells are annotated up to this
    many rows.
    """

    baseline: str = "baseline"
    pair_by: tuple[str, ...] = ("prompt", "seed")
    level: float = 0.95
    ci_method: str = "bca"
    n_resamples: int = 9999
    seed: int = 0
    adjust: str = "holm"
    alpha: float = 0.05
    margins: tuple[tuple[str, float], ...] = field(default=DEFAULT_MARGINS)
    fid_resamples: int = 100
    n_qualitative: int = 4
    identity_top: int = 1
    conditions: tuple[str, ...] | None = None
    design: str | None = None
    max_rows_annotated: int = 30

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {self.level}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.ci_method not in ("bca", "percentile"):
            raise ValueError(f"ci_method must be 'bca' or 'percentile', got {self.ci_method!r}")
        if self.adjust not in ("holm", "bh"):
            raise ValueError(f"adjust must be 'holm' or 'bh', got {self.adjust!r}")
        if self.n_resamples < 1:
            raise ValueError(f"n_resamples must be positive, got {self.n_resamples}")
        if self.fid_resamples < 0:
            raise ValueError(f"fid_resamples must be >= 0, got {self.fid_resamples}")
        if self.n_qualitative < 1:
            raise ValueError(f"n_qualitative must be positive, got {self.n_qualitative}")
        if self.identity_top < 1:
            raise ValueError(f"identity_top must be positive, got {self.identity_top}")
        if not self.pair_by:
            raise ValueError("pair_by needs at least one sample coordinate (prompt, seed)")
        for name, m in self.margins:
            if not m > 0:
                raise ValueError(f"equivalence margin of {name!r} must be positive, got {m}")

    def margin(self, metric: str) -> float | None:
        """The TOST margin of ``metric`` (a store variable name), or None if none is stated."""
        bare = metric.removeprefix("score_").lower()
        hits = [(len(k), m) for k, m in self.margins if k in bare]
        return max(hits)[1] if hits else None

    @property
    def boot(self) -> dict[str, object]:
        """Keyword arguments of ``interp.stats`` bootstrap functions."""
        return {"method": self.ci_method, "level": self.level, "n_resamples": self.n_resamples, "seed": self.seed}
