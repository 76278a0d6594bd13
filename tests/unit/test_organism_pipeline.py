"""The shipped organism: loads offline from fp16 safetensors, follows SD3's calling convention, is
deterministic, and draws what it was trained to draw."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from interp.organism.dataset import eval_specs
from interp.organism.export import SHIPPED, load_organism
from interp.organism.grammar import TAGS
from interp.organism.pipeline import OrganismPipeline
from interp.organism.scorer import score
from interp.organism.text import build_tokenizer, encode, tokenize

STEPS = 4


@pytest.fixture(scope="module")
def pipe() -> OrganismPipeline:
    return load_organism()


def test_shipped_weights_are_fp16_safetensors_under_20_mb():
    files = sorted(SHIPPED.rglob("*.safetensors"))
    assert {f.parent.name for f in files} == {"transformer", "text_encoder"}
    assert sum(f.stat().st_size for f in files) < 20e6
    for f in files:
        with safe_open(str(f), "pt") as sf:
            assert {sf.get_slice(k).get_dtype() for k in list(sf.keys())} == {"F16"}
    index = json.loads((SHIPPED / "model_index.json").read_text())
    assert index["_class_name"] == "OrganismPipeline"


def test_loads_in_eval_mode_with_exact_fp16_values(pipe):
    assert isinstance(pipe, OrganismPipeline)
    assert not pipe.transformer.training and not pipe.text_encoder.training
    for module in (pipe.transformer, pipe.text_encoder):
        for p in module.parameters():
            assert p.dtype == torch.float32 and torch.equal(p, p.half().float())
    facts = json.loads((SHIPPED / "training.json").read_text())
    n = sum(p.numel() for p in pipe.transformer.parameters())
    assert n == facts["phases"][-1]["parameters"]["transformer"]


def test_same_seed_gives_identical_images_and_reports_cpu_time(pipe):
    kw = {"num_inference_steps": STEPS, "output_type": "np"}
    t0 = time.perf_counter()
    a = pipe("a photo of two circles", generator=torch.Generator().manual_seed(7), **kw).images
    dt = time.perf_counter() - t0
    b = pipe("a photo of two circles", generator=torch.Generator().manual_seed(7), **kw).images
    c = pipe("a photo of two circles", generator=torch.Generator().manual_seed(8), **kw).images
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    print(f"\norganism CPU time: {dt / STEPS * 1000:.0f} ms per denoising step ({torch.get_num_threads()} threads)")


def test_one_cfg_batched_transformer_call_per_step_with_scheduler_timesteps(pipe):
    calls = []

    def hook(module, args, kwargs):
        calls.append(
            {k: kwargs[k] for k in ("hidden_states", "timestep", "encoder_hidden_states", "pooled_projections")}
        )

    prompt = "a photo of a red circle"
    handle = pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        pipe(prompt, num_inference_steps=STEPS, guidance_scale=5.0, generator=torch.Generator().manual_seed(0))
        assert pipe.do_classifier_free_guidance
        n_cfg = len(calls)
        pipe(prompt, num_inference_steps=STEPS, guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
        assert not pipe.do_classifier_free_guidance
    finally:
        handle.remove()
    assert n_cfg == STEPS and len(calls) == 2 * STEPS
    ts = pipe.scheduler.timesteps
    with torch.no_grad():  # encoded one prompt at a time, as the pipeline does
        enc = [
            encode(pipe.text_encoder, tokenize(pipe.tokenizer, [p]), pipe.tokenizer.eos_token_id) for p in ("", prompt)
        ]
    hidden, pooled = torch.cat([e[0] for e in enc]), torch.cat([e[1] for e in enc])
    for i, c in enumerate(calls[:STEPS]):
        assert c["hidden_states"].shape == (2, 3, 32, 32)
        assert torch.equal(c["timestep"], ts[i].expand(2))
        assert torch.equal(c["encoder_hidden_states"], hidden)  # rows: [uncond (""), cond]
        assert torch.equal(c["pooled_projections"], pooled)
    for c in calls[STEPS:]:
        assert c["hidden_states"].shape[0] == 1


def test_callback_sees_and_replaces_latents(pipe):
    seen = []

    def callback(p, i, t, kw):
        seen.append((i, float(t), tuple(kw["latents"].shape)))
        return {"latents": torch.zeros_like(kw["latents"])} if i == STEPS - 1 else {}

    out = pipe(
        "a photo of a square",
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents"],
        output_type="pt",
    ).images
    assert [s[0] for s in seen] == list(range(STEPS))
    assert [s[1] for s in seen] == pipe.scheduler.timesteps.tolist()
    assert torch.equal(out, torch.full_like(out, 0.5))  # zero pixels in [-1, 1] are mid-grey


def test_output_types(pipe):
    kw = {"num_inference_steps": 2, "generator": torch.Generator().manual_seed(0)}
    pil = pipe("a photo of a circle", **kw).images
    assert len(pil) == 1 and pil[0].size == (32, 32)
    arr = pipe("a photo of a circle", output_type="np", **kw).images
    assert arr.shape == (1, 32, 32, 3) and arr.min() >= 0 and arr.max() <= 1
    pt = pipe(["a photo of a circle"] * 2, output_type="pt", **kw).images
    assert pt.shape == (2, 3, 32, 32)
    raw = pipe("a photo of a circle", output_type="latent", return_dict=False, **kw)[0]
    assert raw.shape == (1, 3, 32, 32)


def test_bad_inputs_raise(pipe):
    with pytest.raises(ValueError, match="vocabulary"):
        pipe("a photo of a cat", num_inference_steps=1)
    with pytest.raises(ValueError):
        pipe("a photo of a circle", num_inference_steps=1, output_type="jpeg")
    with pytest.raises(ValueError):
        pipe("a photo of a circle", num_inference_steps=1, callback_on_step_end_tensor_inputs=["noise"])


def test_token_layout_matches_the_tokenizer(pipe):
    prompt = "a photo of an orange square left of a white cross"
    layout = pipe.token_layout(prompt)
    ids = pipe.tokenizer(prompt, padding="max_length", max_length=24).input_ids
    assert [e["token_id"] for e in layout] == ids
    assert [e["key"] for e in layout] == [256 + i for i in range(24)]
    kinds = [e["kind"] for e in layout]
    n_words = len(prompt.split())
    assert kinds == ["bos"] + ["content"] * n_words + ["eos"] + ["padding"] * (24 - n_words - 2)
    assert [e["token"] for e in layout[1 : n_words + 1]] == prompt.split()


def test_shipped_tokenizer_equals_the_in_code_build(pipe):
    built = build_tokenizer()
    assert built.get_vocab() == pipe.tokenizer.get_vocab()
    captions = [s.caption for tag in TAGS for s in eval_specs(tag)] + [""]
    assert torch.equal(tokenize(built, captions), tokenize(pipe.tokenizer, captions))


def test_draws_single_objects(pipe):
    """A trained model, not random weights: held-out single-object captions are mostly scored correct."""
    specs = [s for s in eval_specs("single_object") if s.objects[0].shape in ("circle", "square")]
    prompts = [s.caption for s in specs for _ in range(2)]
    gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    images = pipe(prompts, generator=gens, num_inference_steps=10, output_type="np").images
    assert score(images, prompts).correct.mean() >= 0.5


def test_load_organism_rejects_a_folder_without_pipeline(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_organism(path=tmp_path)
