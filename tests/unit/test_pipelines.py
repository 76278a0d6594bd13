"""Built-in offline pipelines: they generate, are identical across constructions, keep the caller's RNG
state, and their in-code tokenizers behave like the real ones (whole GenEval words, CLIP EOS vs padding)."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch
from diffusers import (
    AuraFlowPipeline,
    ChromaPipeline,
    CogVideoXPipeline,
    Flux2KleinPipeline,
    Flux2Pipeline,
    FluxPipeline,
    HunyuanVideo15Pipeline,
    Lumina2Pipeline,
    PixArtSigmaPipeline,
    QwenImagePipeline,
    SanaPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionXLPipeline,
    WanPipeline,
)

import interp.pipelines as pipelines
from interp.pipelines import tokenizers

EXPECTED_CLASS = {
    "sd3": StableDiffusion3Pipeline,
    "sd3.5": StableDiffusion3Pipeline,
    "sdxl": StableDiffusionXLPipeline,
    "flux": FluxPipeline,
    "pixart": PixArtSigmaPipeline,
    "wan": WanPipeline,
    "hunyuanvideo15": HunyuanVideo15Pipeline,
    "cogvideox": CogVideoXPipeline,
    "cogvideox1.5": CogVideoXPipeline,
    "chroma": ChromaPipeline,
    "sana": SanaPipeline,
    "flux2": Flux2Pipeline,
    "flux2-klein": Flux2KleinPipeline,
    "qwenimage": QwenImagePipeline,
    "auraflow": AuraFlowPipeline,
    "lumina2": Lumina2Pipeline,
}
VIDEO = ("wan", "cogvideox", "cogvideox1.5", "hunyuanvideo15")


def geneval_prompts() -> list[str]:
    text = resources.files("interp.data").joinpath("geneval/evaluation_metadata.jsonl").read_text("utf-8")
    return [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]


def modules(pipe) -> dict[str, torch.nn.Module]:
    return {k: v for k, v in pipe.components.items() if isinstance(v, torch.nn.Module)}


def tokenizer_components(pipe) -> dict:
    return {k: v for k, v in pipe.components.items() if k.startswith("tokenizer") and v is not None}


def tokenizer_definition(tok) -> dict:
    """The backend tokenizer's definition, without its padding/truncation state (which calls change); a
    processor (Flux.2 [dev]'s Pixtral) by its tokenizer."""
    tok = getattr(tok, "tokenizer", tok)
    if not hasattr(tok, "backend_tokenizer"):  # a Python tokenizer (ByT5): its class and special tokens
        return {"class": type(tok).__name__, "special": tok.all_special_tokens, "extra": tok.added_tokens_encoder}
    definition = json.loads(tok.backend_tokenizer.to_str())
    return {k: v for k, v in definition.items() if k not in ("padding", "truncation")}


def generate(pipe, name: str, steps: int = 2) -> torch.Tensor:
    kwargs = pipelines.tiny_call_kwargs(name) | {"num_inference_steps": steps}
    out = pipe(prompt="a photo of a cat", generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs)
    return out.frames[0] if name in VIDEO else out.images  # a video: its frames, (F, 3, H, W)


def test_supported_list_is_complete():
    assert pipelines.SUPPORTED_TINY[0] == "sd3"
    assert set(pipelines.SUPPORTED_TINY) <= set(EXPECTED_CLASS)


@pytest.mark.parametrize("name", pipelines.SUPPORTED_TINY)
def test_tiny_generates_identically_across_constructions(name):
    a, b = pipelines.tiny(name), pipelines.tiny(name)
    assert type(a) is EXPECTED_CLASS[name]
    ma, mb = modules(a), modules(b)
    assert ma.keys() == mb.keys() and ma
    for key, module in ma.items():
        assert not any(m.training for m in module.modules()), f"{key} is not in eval mode"
        sa, sb = module.state_dict(), mb[key].state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[p], sb[p]) for p in sa), f"{key} weights differ between constructions"
    ta, tb = tokenizer_components(a), tokenizer_components(b)
    assert ta.keys() == tb.keys() and ta
    for key, tok in ta.items():
        assert tokenizer_definition(tok) == tokenizer_definition(tb[key]), key
        assert getattr(tok, "tokenizer", tok).get_vocab() == getattr(tb[key], "tokenizer", tb[key]).get_vocab()
    image_a, image_b = generate(a, name), generate(b, name)
    assert image_a.dtype == torch.float32 and image_a.ndim == 4
    assert image_a.shape[:2] == ((pipelines.tiny_call_kwargs(name)["num_frames"], 3) if name in VIDEO else (1, 3))
    assert torch.isfinite(image_a).all() and image_a.std() > 0
    assert torch.equal(image_a, image_b)


@pytest.mark.parametrize("name", pipelines.SUPPORTED_TINY)
def test_tiny_leaves_callers_rng_state_alone(name):
    torch.manual_seed(1234)
    expected = torch.rand(8)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    pipelines.tiny(name)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(8), expected)


def test_tiny_dtype():
    pipe = pipelines.tiny("sd3", dtype=torch.bfloat16)
    dtypes = {p.dtype for m in modules(pipe).values() for p in m.parameters()}
    assert dtypes == {torch.bfloat16}
    with pytest.raises(ValueError, match="floating point"):
        pipelines.tiny("sd3", dtype=torch.int64)


def test_unknown_name_lists_supported():
    with pytest.raises(ValueError) as err:
        pipelines.tiny("sd4")
    for name in pipelines.SUPPORTED_TINY:
        assert repr(name)[1:-1] in str(err.value)
    with pytest.raises(ValueError, match="sd3.5"):
        pipelines.tiny_call_kwargs("nope")


def test_tiny_call_kwargs_is_a_fresh_dict():
    kwargs = pipelines.tiny_call_kwargs("sd3")
    kwargs["num_inference_steps"] = 99
    assert pipelines.tiny_call_kwargs("sd3")["num_inference_steps"] != 99


# --- tokenizers ---------------------------------------------------------------------------------------


def test_word_list_covers_geneval_and_is_stable():
    words = {w.lower() for p in geneval_prompts() for w in p.split()}
    assert words <= set(tokenizers.word_list())
    assert tokenizers.word_list() == tuple(sorted(set(tokenizers.word_list())))


@pytest.mark.parametrize("pad_token", [tokenizers.CLIP_EOS, "!"])
def test_clip_tokenizes_geneval_words_whole(pad_token):
    tok = tokenizers.clip_tokenizer(pad_token=pad_token)
    for prompt in geneval_prompts():
        words = prompt.lower().split()
        ids = tok(prompt).input_ids
        assert tok.convert_ids_to_tokens(ids) == [
            tokenizers.CLIP_BOS,
            *(w + "</w>" for w in words),
            tokenizers.CLIP_EOS,
        ]
        assert tok.decode(ids, skip_special_tokens=True) == prompt.lower()


def test_clip_vocabulary_layout():
    tok = tokenizers.clip_tokenizer()
    vocab = tok.get_vocab()
    n = len(vocab)
    assert len(tok) == n
    assert (tok.bos_token_id, tok.eos_token_id) == (n - 2, n - 1)  # specials at the highest ids
    assert sorted(vocab.values()) == list(range(n))
    # byte-level alphabet: any byte sequence tokenizes without unknown tokens
    ids = tok("naïve café ✓ 42%").input_ids
    assert tok.eos_token_id not in ids[1:-1]
    assert tokenizer_definition(tokenizers.clip_tokenizer()) == tokenizer_definition(tok)


def test_clip_eos_versus_padding():
    clip_l, clip_g = tokenizers.clip_tokenizer(), tokenizers.clip_tokenizer(pad_token="!")
    prompt = "a photo of a cat"
    n_words = len(prompt.split())
    for tok, pad_string in ((clip_l, tokenizers.CLIP_EOS), (clip_g, "!")):
        ids = tok(prompt, padding="max_length", max_length=77).input_ids
        assert len(ids) == 77 == tok.model_max_length
        assert ids[0] == tok.bos_token_id and ids[n_words + 1] == tok.eos_token_id
        assert tok.convert_ids_to_tokens(ids[n_words + 2 :]) == [pad_string] * (77 - n_words - 2)
    assert clip_l.pad_token_id == clip_l.eos_token_id
    assert clip_g.pad_token_id == 0 and clip_g.pad_token_id != clip_g.eos_token_id
    g_ids = clip_g(prompt, padding="max_length", max_length=77).input_ids
    assert g_ids.count(clip_g.eos_token_id) == 1  # CLIP-G's EOS is the only end-of-text token


@pytest.mark.parametrize("name", ["sd3", "sd3.5"])
def test_pipeline_clip_tokenizers_and_pooling_at_eos(name):
    pipe = pipelines.tiny(name)
    assert pipe.tokenizer.pad_token_id == pipe.tokenizer.eos_token_id
    assert pipe.tokenizer_2.convert_ids_to_tokens(pipe.tokenizer_2.pad_token_id) == "!"
    for tok, enc in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        ids = tok(["a photo of a cat", "two dogs"], padding="max_length", max_length=77, return_tensors="pt")
        out = enc(ids.input_ids, output_hidden_states=True)
        eos_pos = torch.tensor([6, 3])  # BOS + words
        assert (ids.input_ids[torch.arange(2), eos_pos] == tok.eos_token_id).all()
        # the pooled embedding is the projection of the final-norm hidden state at the real EOS
        hidden = out.last_hidden_state[torch.arange(2), eos_pos]
        torch.testing.assert_close(out.text_embeds, enc.text_projection(hidden), rtol=0, atol=0)


def test_t5_tokenizer():
    tok = tokenizers.t5_tokenizer()
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    for prompt in geneval_prompts():
        tokens = tok.convert_ids_to_tokens(tok(prompt).input_ids)
        assert tokens == [tokenizers.T5_SPACE + w for w in prompt.split()] + ["</s>"]
    enc = tok("a red cat, 3 Zebras!", padding="max_length", max_length=16)
    assert tok.unk_token_id not in enc.input_ids
    n = enc.attention_mask.count(1)
    assert enc.input_ids[n - 1] == tok.eos_token_id and enc.input_ids[n:] == [tok.pad_token_id] * (16 - n)
    assert tokenizer_definition(tokenizers.t5_tokenizer()) == tokenizer_definition(tok)


# --- load() errors (the round trip is in tests/integration) -----------------------------------------------


def test_load_refuses_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pipelines.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="hub id"):
        pipelines.load("./no/such/folder")


def test_load_refuses_folder_without_pipeline(tmp_path):
    with pytest.raises(ValueError, match="model_index.json"):
        pipelines.load(tmp_path)


# --- architecture features the tracer relies on ---------------------------------------------------------


def count_denoiser_calls(pipe, denoiser, **call_kwargs) -> list[dict]:
    """Run the pipeline and record, for each denoiser forward, the shapes/masks it received."""
    calls: list[dict] = []

    def pre_hook(module, args, kwargs):
        calls.append(kwargs)

    handle = denoiser.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        pipe("a photo of a cat", generator=torch.Generator().manual_seed(0), output_type="pt", **call_kwargs)
    finally:
        handle.remove()
    return calls


def test_flux_true_cfg_calls_the_transformer_twice_per_step():
    pipe = pipelines.tiny("flux")
    kwargs = pipelines.tiny_call_kwargs("flux") | {"num_inference_steps": 2}
    plain = count_denoiser_calls(pipe, pipe.transformer, **kwargs)
    true_cfg = count_denoiser_calls(
        pipe, pipe.transformer, true_cfg_scale=2.0, negative_prompt="a blurry photo", **kwargs
    )
    assert len(plain) == 2 and len(true_cfg) == 4
    assert all(c["hidden_states"].shape[0] == 1 for c in plain + true_cfg)  # no CFG batch
    t5_len = kwargs["max_sequence_length"]
    assert plain[0]["encoder_hidden_states"].shape[1] == t5_len
    assert {len(pipe.transformer.transformer_blocks), len(pipe.transformer.single_transformer_blocks)} == {
        2,
        4,
    }


def test_sdxl_has_self_and_cross_attention_at_every_level():
    pipe = pipelines.tiny("sdxl")
    unet = pipe.unet
    paths = [name for name, _ in unet.named_modules() if name.endswith(".attn2")]
    for level in ("down_blocks.", "mid_block.", "up_blocks."):
        assert any(p.startswith(level) for p in paths), level
    for path in paths:
        attn1 = unet.get_submodule(path[: -len("attn2")] + "attn1")
        attn2 = unet.get_submodule(path)
        assert not attn1.is_cross_attention and attn2.is_cross_attention
        assert attn2.to_k.in_features == pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert unet.config.addition_embed_type == "text_time"
    calls = count_denoiser_calls(pipe, unet, **pipelines.tiny_call_kwargs("sdxl") | {"num_inference_steps": 2})
    assert len(calls) == 2 and calls[0]["encoder_hidden_states"].shape[:2] == (2, 77)  # [uncond, cond]


def test_pixart_passes_the_t5_padding_mask():
    pipe = pipelines.tiny("pixart")
    kwargs = pipelines.tiny_call_kwargs("pixart") | {"num_inference_steps": 2}
    calls = count_denoiser_calls(pipe, pipe.transformer, **kwargs)
    assert len(calls) == 2
    mask = calls[0]["encoder_attention_mask"]
    expected = pipe.tokenizer(
        ["", "a photo of a cat"],
        padding="max_length",
        max_length=kwargs["max_sequence_length"],
        return_tensors="pt",
    ).attention_mask
    assert torch.equal(mask.to(expected.dtype), expected)  # [uncond, cond] rows; padding is masked out
    assert 0 < int(mask[1].sum()) < mask.shape[1]
