"""The sample table (prompt-major rows, baseline first), the seed policy, and scheduler fit checks."""

import itertools

import pytest
from diffusers import (
    DDIMScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
)

from interp.sweep.config import parse_config
from interp.sweep.prompts import Prompt
from interp.sweep.samples import sample_table
from interp.sweep.schedulers import SchedulerMismatch, build_scheduler


def _cfg(tmp_path, seeds, offset=7):
    return parse_config(
        {
            "version": 1,
            "store": "s.zarr",
            "model": {"id": "tiny:sd3"},
            "sampler": {"steps": 2},
            "seeds": seeds,
            "conditions": [
                {"name": "edit_like", "sampler": {"guidance_scale": 2.0}},
                {"name": "baseline"},
                {"name": "shifted", "seed_offset": offset},
            ],
        },
        base_dir=tmp_path,
    )


PROMPTS = [Prompt(index=i, text=f"p{i}") for i in (3, 10, 41)]  # a subset: source indices, not positions


@pytest.mark.parametrize("per_prompt", [1, 3])
def test_rows_are_prompt_major_with_the_baseline_first(tmp_path, per_prompt):
    cfg = _cfg(tmp_path, {"per_prompt": per_prompt})
    table = sample_table(cfg, PROMPTS, n_source=50)
    names = [c.name for c in cfg.conditions]
    expected = list(itertools.product(range(len(PROMPTS)), range(per_prompt), names))
    assert [(s.position, s.replicate, s.condition.name) for s in table] == expected
    assert [s.index for s in table] == list(range(len(expected)))
    assert names[0] == "baseline"


def test_seed_policy_prompt_index(tmp_path):
    cfg = _cfg(tmp_path, {"base": 100, "per_prompt": 2})
    table = sample_table(cfg, PROMPTS, n_source=50)
    for s in table:
        offset = 7 if s.condition.name == "shifted" else 0
        assert s.seed == 100 + s.prompt.index + 50 * s.replicate + offset
    by_pair = {}
    for s in table:
        by_pair.setdefault((s.position, s.replicate), {})[s.condition.name] = s.seed
    for seeds in by_pair.values():  # plan-only and sampler-only conditions share the baseline's seed
        assert seeds["baseline"] == seeds["edit_like"] != seeds["shifted"]
    baselines = [s.seed for s in table if s.condition.name == "baseline"]
    assert len(set(baselines)) == len(baselines)


def test_seed_policy_same(tmp_path):
    cfg = _cfg(tmp_path, {"base": 5, "per_prompt": 2, "policy": "same"})
    table = sample_table(cfg, PROMPTS, n_source=50)
    for s in table:
        assert s.seed == 5 + s.replicate + (7 if s.condition.name == "shifted" else 0)


def test_negative_seeds_are_refused(tmp_path):
    cfg = _cfg(tmp_path, {"base": 0}, offset=-100)
    with pytest.raises(ValueError, match="negative seed"):
        sample_table(cfg, PROMPTS, n_source=50)


def test_scheduler_fit_follows_the_models_prediction_kind():
    flow = FlowMatchEulerDiscreteScheduler(shift=3.0)
    eps = EulerDiscreteScheduler()
    heun = build_scheduler(flow, "FlowMatchHeunDiscreteScheduler", {})
    assert type(heun).__name__ == "FlowMatchHeunDiscreteScheduler" and heun.config.shift == 3.0
    unipc = build_scheduler(
        flow, "UniPCMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}
    )
    assert unipc.config.use_flow_sigmas
    with pytest.raises(SchedulerMismatch, match="epsilon-prediction.*flow-matching"):
        build_scheduler(flow, "DDIMScheduler", {})
    with pytest.raises(SchedulerMismatch, match="flow-matching.*epsilon-prediction"):
        build_scheduler(eps, "FlowMatchEulerDiscreteScheduler", {})
    assert isinstance(build_scheduler(eps, "DDIMScheduler", {}), DDIMScheduler)
    v = EulerDiscreteScheduler(prediction_type="v_prediction")
    assert build_scheduler(v, "DDIMScheduler", {}).config.prediction_type == "v_prediction"
    with pytest.raises(SchedulerMismatch, match="no config field"):
        build_scheduler(flow, "FlowMatchEulerDiscreteScheduler", {"shfit": 2.0})
