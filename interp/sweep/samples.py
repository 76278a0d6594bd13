"""The sample table of a sweep: one row per prompt x seed replicate x condition, and the seed of each.

Design
------
Rows are laid out prompt-major (``index = (position * per_prompt + replicate) * n_conditions +
condition``), so all conditions of a prompt are neighbours and the baseline (condition 0) comes first.
Seeds follow :class:`interp.sweep.config.SeedConfig`: by default ``base + source index of the prompt``
(``+ replicate * n_source`` for further seeds per prompt, so no two samples of a source share a seed
by accident), plus the condition's ``seed_offset``. The baseline and every condition without an offset
share the prompt's seed, which is what pairs them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interp.sweep.config import Condition, SweepConfig
from interp.sweep.prompts import Prompt


@dataclass(frozen=True)
class SampleSpec:
    index: int
    position: int  # the prompt's position in the sweep's prompt list
    prompt: Prompt
    replicate: int
    condition: Condition
    seed: int


def seed_of(cfg: SweepConfig, prompt: Prompt, replicate: int, condition: Condition, n_source: int) -> int:
    s = cfg.seeds
    if s.policy == "prompt_index":
        return s.base + prompt.index + replicate * n_source + condition.seed_offset
    return s.base + replicate + condition.seed_offset


def sample_table(cfg: SweepConfig, prompts: Sequence[Prompt], n_source: int) -> list[SampleSpec]:
    out = []
    for position, prompt in enumerate(prompts):
        for replicate in range(cfg.seeds.per_prompt):
            for condition in cfg.conditions:
                seed = seed_of(cfg, prompt, replicate, condition, n_source)
                if seed < 0:
                    raise ValueError(
                        f"condition {condition.name!r} gives prompt {prompt.index} the negative seed {seed}"
                    )
                out.append(SampleSpec(len(out), position, prompt, replicate, condition, seed))
    return out


def index_coords(cfg: SweepConfig, table: Sequence[SampleSpec]) -> dict[str, np.ndarray]:
    """Per-sample coordinates known before generation (written once, when the store is created)."""
    samplers = {c.name: cfg.sampler_for(c) for c in cfg.conditions}
    return {
        "prompt": np.array([s.prompt.text for s in table], dtype=object),
        "prompt_index": np.array([s.prompt.index for s in table], dtype=np.int64),
        "prompt_position": np.array([s.position for s in table], dtype=np.int64),
        "tag": np.array([s.prompt.tag for s in table], dtype=object),
        "prompt_meta": np.array([s.prompt.meta for s in table], dtype=object),
        "negative_prompt": np.array([cfg.sampler.negative_prompt] * len(table), dtype=object),
        "seed": np.array([s.seed for s in table], dtype=np.int64),
        "replicate": np.array([s.replicate for s in table], dtype=np.int64),
        "condition": np.array([s.condition.name for s in table], dtype=object),
        "num_inference_steps": np.array([samplers[s.condition.name].steps for s in table], dtype=np.int64),
        "guidance_scale": np.array([samplers[s.condition.name].guidance_scale for s in table], dtype=np.float64),
        "scheduler": np.array([samplers[s.condition.name].scheduler or "" for s in table], dtype=object),
    }


def prompts_digest(prompts: Sequence[Prompt]) -> str:
    import hashlib

    text = json.dumps([[p.index, p.text, p.tag, p.meta] for p in prompts])
    return hashlib.sha256(text.encode()).hexdigest()
