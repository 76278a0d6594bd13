"""Built-in tiny Flux.2: the real ``Flux2Pipeline`` ([dev], variant ``flux2``) and ``Flux2KleinPipeline``
([klein], variant ``flux2-klein``) from small configs, no download.

[dev]: a Mistral-3 text encoder (``Mistral3ForConditionalGeneration``, 31 layers of width 16 so that layers
10, 20, 30 exist; the prompt after the pipeline's system message in Mistral's chat template, padded to
``max_sequence_length``) through a ``PixtralProcessor``; guidance-distilled (``guidance_embeds``): one
transformer call per step. The rest as [klein] below.

Layout kept from FLUX.2 [klein]: a Qwen3 causal LM as text encoder (the prompt wrapped in its chat template
with thinking off, padded to ``max_sequence_length``; hidden states of layers 9, 18 and 27 stacked along
channels are the text tokens, all of them keys: the transformer gets no text mask), the Flux.2
transformer (``Flux2Transformer2DModel``: double-stream ``transformer_blocks`` and fused
attention + MLP single-stream ``single_transformer_blocks``, 4-axis RoPE over (t, h, w, l) ids, shared
modulation), the Flux.2 VAE (2x2 patchified latents with batch-norm statistics) and real CFG as two
transformer calls per step (``is_distilled=False``: the base model).

Sizes: Qwen3 with 28 layers of width 16 (so that layers 9, 18, 27 exist; 48 text channels), 2 double- and
2 single-stream blocks, 2 heads of dim 16 (RoPE axes 4 x 4), 4 latent channels (16 after 2x2
patchifying), VAE scale factor 2; ``default_sample_size`` set to 32 on the instance (64 px, a 16x16 grid
of 256 image tokens). ``FAST_CALL_KWARGS`` pads the text to 32 tokens (512 by default).
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLFlux2,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Pipeline,
    Flux2Transformer2DModel,
)
from transformers import Mistral3Config, Mistral3ForConditionalGeneration, Qwen3Config, Qwen3ForCausalLM

from interp.pipelines import components
from interp.pipelines.tokenizers_llm import mistral_processor, qwen2_tokenizer

LATENT_SIZE = 32
FAST_CALL_KWARGS = {"num_inference_steps": 2, "guidance_scale": 4.0, "max_sequence_length": 32}
CALL_KWARGS = {"flux2-klein": FAST_CALL_KWARGS, "flux2": {**FAST_CALL_KWARGS, "max_sequence_length": 48}}


def call_kwargs(variant: str) -> dict:
    """Fast-call arguments of ``variant``: [dev]'s text holds the system message before the prompt."""
    return dict(CALL_KWARGS[variant])


def qwen3_encoder(tag: str, tokenizer, *, hidden_size: int = 16, num_layers: int = 28) -> Qwen3ForCausalLM:
    """A tiny Qwen3 causal LM matching ``tokenizer`` (GQA 2 heads / 1 KV head of dim 8)."""
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        attn_implementation="sdpa",  # what from_pretrained picks: a saved copy computes the same
    )
    with components.seeded(tag):
        return Qwen3ForCausalLM(config)


def mistral3_encoder(tag: str, processor) -> Mistral3ForConditionalGeneration:
    """A tiny Mistral-3 (text 31 layers of width 16, a 1-layer Pixtral vision tower never run for text)."""
    tok = processor.tokenizer
    config = Mistral3Config(
        text_config={
            "model_type": "mistral",
            "vocab_size": len(tok),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 31,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 8,
            "max_position_embeddings": 2048,
            "pad_token_id": tok.pad_token_id,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
        },
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "head_dim": 8,
            "image_size": 64,
            "patch_size": 16,
        },
        image_token_index=tok.convert_tokens_to_ids("[IMG]"),
        attn_implementation="sdpa",  # what from_pretrained picks: a saved copy computes the same
    )
    with components.seeded(tag):
        return Mistral3ForConditionalGeneration(config)


def build(variant: str = "flux2-klein", *, dtype: torch.dtype = torch.float32) -> Flux2KleinPipeline | Flux2Pipeline:
    """Build the tiny Flux.2 pipeline ``variant`` (``flux2``: [dev]; ``flux2-klein``), deterministic, eval mode."""
    if variant not in ("flux2", "flux2-klein"):
        raise ValueError(f"unknown Flux.2 variant {variant!r}; expected 'flux2' or 'flux2-klein'")
    dev = variant == "flux2"
    if dev:
        tokenizer = mistral_processor()
        text_encoder = mistral3_encoder("flux2/text_encoder", tokenizer)
    else:
        tokenizer = qwen2_tokenizer()
        text_encoder = qwen3_encoder("flux2-klein/text_encoder", tokenizer)
    with components.seeded(f"{variant}/transformer"):
        transformer = Flux2Transformer2DModel(
            patch_size=1,
            in_channels=16,  # 4 latent channels x 2x2 patchifying
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=48,  # 3 stacked Qwen3 layers of width 16
            timestep_guidance_channels=32,
            axes_dims_rope=(4, 4, 4, 4),
            guidance_embeds=dev,
        )
    with components.seeded(f"{variant}/vae"):
        vae = AutoencoderKLFlux2(
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=32,
        )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)
    parts = dict(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer)
    pipe = Flux2Pipeline(**parts) if dev else Flux2KleinPipeline(**parts, is_distilled=False)
    pipe.default_sample_size = LATENT_SIZE
    return components.finish(pipe, dtype)
