"""Reproduce Table 2 (dynamic sink suppression) at toy scale, from the paper's recipe.

Run from anywhere: ``python tutorials/reproduce_table2.py`` (tens of seconds on CPU, no download). It
reads ``traces/paper/table2_dynamic_sinks.toml``, shrinks it (4 prompts, 4 steps), runs the sweep
into ``tutorial_out/table2.zarr`` under the current folder, then reads the edit bookkeeping (the mass
each edit removed, measured) and a paired effect per condition. Shown in docs/howto/table2.md.
"""

import shutil
import tomllib
from pathlib import Path

import numpy as np

import interp
from interp.stats import paired_bootstrap_ci
from interp.sweep import load_config, run

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "traces" / "paper" / "table2_dynamic_sinks.toml"
STORE = Path("tutorial_out/table2.zarr").resolve()
shutil.rmtree(STORE, ignore_errors=True)

# 1. The recipe, shrunk: the same conditions (baseline, the no-op floor, A1, A2, A3, the random
#    control), fewer prompts and steps. Everything else (sites as fractions of depth, by="image",
#    eta=0, per-head k) is the recipe's.
config = tomllib.loads(RECIPE.read_text())
config["prompts"]["n"] = 4
config["sampler"]["steps"] = 4
config["store"] = str(STORE)
cfg = load_config(config, base_dir=RECIPE.parent)  # validated before anything runs
print(f"{cfg.name}: conditions {[c.name for c in cfg.conditions]}")

# 2. The sweep: every condition of a prompt shares its seed (checked: same initial noise).
result = run(cfg, progress=False)
print(f"{result.generated} samples written to {result.store}")

# 3. Read the store back. One row per (prompt, seed, condition); pair rows by prompt and seed.
ds = interp.open_store(STORE)
conditions = [str(c) for c in ds.condition.values]
prompts = [str(p) for p in ds.prompt.values]


def rows(name: str) -> list[int]:
    """Sample positions of a condition, in prompt order (so conditions pair row by row)."""
    by_prompt = {prompts[i]: i for i, c in enumerate(conditions) if c == name}
    return [by_prompt[p] for p in sorted(by_prompt)]


base = rows("baseline")
images = ds.image.values.astype(np.float64) / 255.0  # (sample, y, x, rgb)

print(f"\n{'condition':<20}{'mass before':>12}{'mass after':>12}{'pixel change vs baseline [95% CI]':>38}")
for name in [c.name for c in cfg.conditions if c.name != "baseline"]:
    idx = rows(name)
    # Verification (Table 4): incoming mass of the edited keys before and after the edit, measured
    # over the scope's query rows, per step, call, site, branch and head; NaN where no edit acted.
    before = float(np.nanmean(ds.edit_mass_before.isel(sample=idx).values))
    after = float(np.nanmean(ds.edit_mass_after.isel(sample=idx).values))
    # A paired effect: mean absolute pixel change from the baseline image of the same prompt and seed.
    # The paper's metrics (CLIP-T, ImageReward, HPS, LPIPS) come from interp.metrics with local weights.
    change = np.abs(images[idx] - images[base]).mean(axis=(1, 2, 3))
    ci = paired_bootstrap_ci(change, np.zeros_like(change), n_resamples=999, seed=0)
    print(f"{name:<20}{before:>12.4f}{after:>12.2e}   {ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]")
    if name == "noop_kernel":  # eta = 1 through the edit kernel: nothing is removed
        assert np.isclose(after, before, rtol=1e-4)
    else:  # eta = 0: the edited keys get probability exactly 0
        assert after == 0.0 and before > 0.0
