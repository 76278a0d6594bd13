"""Built-in tiny Flux.2 [klein]: the real ``Flux2KleinPipeline`` from small configs, no download.

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
from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
from transformers import Qwen3Config, Qwen3ForCausalLM

from interp.pipelines import components
from interp.pipelines.tokenizers_llm import qwen2_tokenizer

LATENT_SIZE = 32
FAST_CALL_KWARGS = {"num_inference_steps": 2, "guidance_scale": 4.0, "max_sequence_length": 32}


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


def build(variant: str = "flux2-klein", *, dtype: torch.dtype = torch.float32) -> Flux2KleinPipeline:
    """Build the tiny Flux.2 [klein] pipeline, deterministic and in eval mode."""
    if variant != "flux2-klein":
        raise ValueError(f"unknown Flux.2 variant {variant!r}; expected 'flux2-klein'")
    tokenizer = qwen2_tokenizer()
    text_encoder = qwen3_encoder("flux2-klein/text_encoder", tokenizer)
    with components.seeded("flux2-klein/transformer"):
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
            guidance_embeds=False,
        )
    with components.seeded("flux2-klein/vae"):
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
    pipe = Flux2KleinPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=False,
    )
    pipe.default_sample_size = LATENT_SIZE
    return components.finish(pipe, dtype)
