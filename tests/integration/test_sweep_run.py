"""Sweeps on the built-in SD3 pipeline: the store holds what direct traces give, pairing is checked,
embeddings are reused bit-identically, bad configs fail before any generation, resume refuses another
config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from interp import pipelines, tracer
from interp.sweep import ConfigError, SweepError, embeddings, load_config, parse_config, run
from interp.sweep.plan_functions import build_plan
from interp.sweep.runner import generate, load_prompts, prepare
from interp.sweep.samples import sample_table
from tests.integration._sweep_helpers import CONFIG, N_SAMPLES, open_raw, reference, tiny_sd3, write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd3()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    config, store, result = reference(tmp_path_factory)
    return load_config(config), store, result


def _first_input_hook(pipe):
    """Independent probe: the latents the denoiser receives at its first call."""
    seen = []

    def hook(module, args, kwargs):
        if not seen:
            seen.append(kwargs["hidden_states"].detach().clone())

    return seen, pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)


def test_every_sample_done_with_index_coordinates(swept):
    cfg, store, result = swept
    ds = open_raw(store)
    assert result.generated == N_SAMPLES == ds.sizes["sample"] and ds["done"].values.all()
    prompts, n_source = load_prompts(cfg)
    table = sample_table(cfg, prompts, n_source)
    assert [str(c) for c in ds["condition"].values] == [s.condition.name for s in table]
    assert [str(p) for p in ds["prompt"].values] == [s.prompt.text for s in table]
    assert [str(t) for t in ds["tag"].values] == [s.prompt.tag for s in table]
    assert list(ds["seed"].values) == [s.prompt.index for s in table]  # seed = base 0 + GenEval index
    assert list(ds["num_inference_steps"].values) == [3 if s.condition.name == "steps_3" else 2 for s in table]
    assert ds["image"].dtype == np.uint8 and ds.sizes["y"] == ds.sizes["x"] == 32
    assert set(result.conditions) == {"baseline", "top1_mid", "steps_3"}
    assert all(c.done == c.total == 8 for c in result.conditions.values())


def test_the_sweep_store_holds_the_received_timestep(swept):
    """fp32 SD3 receives the scheduler's timestep exactly: ``timestep_received`` equals ``timestep`` where a
    step ran (one call per step: CFG is batched) and is NaN on the steps a 2-step condition did not run."""
    _, store, _ = swept
    ds = open_raw(store)
    got = ds["timestep_received"]
    assert got.dims == ("sample", "step", "call") and got.dtype == np.float64 and ds.sizes["call"] == 1
    assert got.attrs["received_dtype"] == "torch.float32"
    ran = np.isfinite(ds["timestep"].values)
    assert (~ran).any() and ran.any()  # the 3-step condition pads the 2-step ones
    np.testing.assert_array_equal(got.isel(call=0).values, ds["timestep"].values)


@pytest.mark.parametrize("index", [0, 4, 23])
def test_store_equals_a_direct_trace_of_the_prompt_text(swept, pipe, index):
    """A plain ``tracer.trace`` with the prompt text (no precomputed embeddings) gives the stored sample."""
    cfg, store, _ = swept
    prompts, n_source = load_prompts(cfg)
    spec = sample_table(cfg, prompts, n_source)[index]
    sampler = cfg.sampler_for(spec.condition)
    plan = build_plan(cfg.plan_calls(spec.condition))
    with tracer.trace(
        pipe,
        spec.prompt.text,
        seed=spec.seed,
        plan=plan,
        num_inference_steps=sampler.steps,
        guidance_scale=sampler.guidance_scale,
        height=32,
        width=32,
        max_sequence_length=8,
        negative_prompt="",
    ) as t:
        pass
    row = open_raw(store).isel(sample=index)
    for name in list(t.stats.data_vars) + [c for c in t.stats.coords if c not in t.stats.dims]:
        want = np.asarray(t.stats[name].values)
        got = np.asarray(row[name].values)[tuple(slice(0, n) for n in want.shape)]
        if want.dtype.kind == "T":
            assert (got == want).all(), name
        else:
            assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), name
    steps = t.stats.sizes["step"]
    if row.sizes["step"] > steps:  # padded steps of a shorter condition are missing values
        assert np.isnan(row["max_mass"].values[steps:]).all()


def test_conditions_of_a_prompt_start_from_the_same_noise(swept, pipe):
    cfg, store, _ = swept
    ds = open_raw(store)
    sha = np.asarray([str(s) for s in ds["noise_sha"].values]).reshape(8, 3)
    assert (sha == sha[:, :1]).all() and len(set(sha[:, 0])) == 8
    prompts, n_source = load_prompts(cfg)
    specs = sample_table(cfg, prompts, n_source)[:3]
    prep = prepare(cfg, pipe, probe=specs[0])
    embeds = embeddings.encode(pipe, specs[0].prompt.text, "", prep.call_kwargs["baseline"])
    firsts = []
    for spec in specs:
        seen, handle = _first_input_hook(pipe)
        try:
            generate(pipe, cfg, prep, spec, embeds)
        finally:
            handle.remove()
        firsts.append(seen[0])
    assert all(torch.equal(firsts[0], f) for f in firsts[1:])


def test_a_seed_offset_condition_draws_other_noise_and_broken_pairing_stops_the_sweep(tmp_path, pipe):
    text = CONFIG.replace('name = "steps_3"', 'name = "steps_3"\nseed_offset = 1000').replace("n = 8", "n = 2")
    cfg = load_config(write_config(tmp_path, text))
    run(cfg, store=tmp_path / "a.zarr", pipe=pipe, progress=False, log=lambda s: None)
    ds = open_raw(tmp_path / "a.zarr")
    sha = np.asarray([str(s) for s in ds["noise_sha"].values]).reshape(2, 3)
    assert (sha[:, 0] == sha[:, 1]).all() and (sha[:, 0] != sha[:, 2]).all()
    assert (ds["seed"].values.reshape(2, 3)[:, 2] == ds["seed"].values.reshape(2, 3)[:, 0] + 1000).all()

    original = pipe.prepare_latents
    calls = []

    def drifting(*args, **kwargs):  # a pipeline whose later generations ignore the seed
        out = original(*args, **kwargs)
        calls.append(1)
        return out + 1e-3 if len(calls) > 1 else out

    pipe.prepare_latents = drifting
    try:
        with pytest.raises(SweepError, match="pairing is broken"):
            run(cfg, store=tmp_path / "b.zarr", pipe=pipe, progress=False, log=lambda s: None)
    finally:
        del pipe.prepare_latents
    assert "prepare_latents" not in vars(pipe)


@pytest.mark.parametrize("family", ["sd3", "sdxl"])
def test_precomputed_embeddings_are_bit_identical_to_the_prompt(family):
    p = pipelines.tiny(family)
    kwargs = {**pipelines.tiny_call_kwargs(family), "num_inference_steps": 2, "negative_prompt": ""}
    from interp import record

    def traced(**extra):
        with tracer.trace(p, "a red cube on a blue ball", seed=3, **kwargs, **extra) as t:
            record("mass", "entropy", layers="all")
        return t

    embeds = embeddings.encode(p, "a red cube on a blue ball", "", kwargs)
    assert embeds is not None
    a, b = traced(), traced(**embeds)
    assert a.stats.identical(b.stats)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


@pytest.mark.parametrize("family", ["flux", "pixart"])
def test_families_without_an_encoder_fall_back_to_the_text(family):
    p = pipelines.tiny(family)
    assert embeddings.encode(p, "a cat", "", {}) is None


def _count_denoiser_calls(pipe):
    calls = []
    return calls, pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            'stats = ["mass", "entropy"]\nlayers = "all"',
            'stats = ["mass", "entropy"]\nlayers = 99',
            "records[0].layers",
        ),
        ("layer = 0.5\nk = 1", "layer = 7\nk = 1", "conditions[1].plan[0].layer"),
        ("layer = 0.5\nk = 1", "layer = 0.5\nk = 100000", "conditions[1].plan[0]"),
        (
            "sampler = { steps = 3 }",
            'sampler = { steps = 3, scheduler = "DDIMScheduler" }',
            "conditions[2].sampler.scheduler",
        ),
        (
            "max_sequence_length = 8",
            "max_sequence_length = 8\ncall_kwargs = { not_an_arg = 1 }",
            "sampler.call_kwargs.not_an_arg",
        ),
    ],
)
def test_bad_configs_fail_before_generation_naming_the_field(tmp_path, pipe, old, new, field):
    assert old in CONFIG
    cfg = load_config(write_config(tmp_path, CONFIG.replace(old, new)))
    calls, handle = _count_denoiser_calls(pipe)
    try:
        with pytest.raises(ConfigError) as info:
            run(cfg, store=tmp_path / "s.zarr", pipe=pipe, progress=False, log=lambda s: None)
    finally:
        handle.remove()
    assert info.value.field == field, str(info.value)
    assert calls == [] and not (tmp_path / "s.zarr").exists()


def test_resume_with_another_config_is_refused(swept, tmp_path, pipe):
    _, store, _ = swept
    cfg = load_config(write_config(tmp_path, CONFIG.replace("steps = 2", "steps = 4")))
    calls, handle = _count_denoiser_calls(pipe)
    try:
        with pytest.raises(ConfigError, match="sampler.steps") as info:
            run(cfg, store=store, pipe=pipe, progress=False, log=lambda s: None)
    finally:
        handle.remove()
    assert info.value.field == "store" and calls == []


def test_finished_sweep_is_not_recomputed(swept, pipe):
    cfg, store, _ = swept
    before = open_raw(store)["gen_seconds"].values.copy()
    calls, handle = _count_denoiser_calls(pipe)
    try:
        result = run(cfg, store=store, pipe=pipe, progress=False, log=lambda s: None)
    finally:
        handle.remove()
    assert calls == [] and result.generated == 0 and result.skipped == N_SAMPLES
    assert np.array_equal(open_raw(store)["gen_seconds"].values, before)


def test_the_h2_config_resolves_on_the_builtin_sd3(pipe, tmp_path):
    """The SD3-medium H2 sweep, with the built-in model swapped in: every plan, site and budget checks out."""
    data = tomllib.loads((ROOT / "traces" / "sweeps" / "h2_sd3_medium.toml").read_text())
    data["model"] = {"id": "tiny:sd3"}
    data["sampler"].update(height=64, width=64, max_sequence_length=32)
    cfg = parse_config(data, base_dir=tmp_path)
    prompts, n_source = load_prompts(cfg)
    table = sample_table(cfg, prompts, n_source)
    assert len(prompts) == n_source == 553 and len(table) == 553 * len(cfg.conditions)
    prep = prepare(cfg, pipe, probe=table[0])
    assert set(prep.plans) == {c.name for c in cfg.conditions}
