"""Built-in tiny pipelines of the families the generic adapter is tested on (``interp.adapters.generic``).

Each is the real diffusers pipeline class from small configs, no download, deterministic:

- ``auraflow``: ``AuraFlowPipeline``: UMT5 text encoder (the built-in T5 tokenizer), an MMDiT with joint
  ``[context, latent]`` blocks (``AuraFlowAttnProcessor2_0``) and single-stream blocks, 8 register tokens
  prepended to the context, batched CFG ``[uncond, cond]``. 1 joint + 2 single blocks, 2 heads of dim 8,
  patch 2, a VAE with scale factor 2: 64 px, 256 latent tokens.
- ``lumina2``: ``Lumina2Pipeline``: Gemma-2 text encoder (system prompt prefix, right padding and mask),
  a context refiner (caption self-attention), a noise refiner (latent self-attention) and joint layers over
  ``[caption without padding, latent]`` (``Lumina2AttnProcessor2_0``), CFG as two calls (cond first).
  1 refiner layer each, 2 joint layers, 2 heads (1 KV head) of dim 16, patch 2; the pipeline's VAE scale
  factor is fixed at 8, so the VAE has 4 levels: 128 px, a 16x16 latent, 64 latent tokens.
"""

from __future__ import annotations

import torch
from diffusers import (
    AuraFlowPipeline,
    AuraFlowTransformer2DModel,
    FlowMatchEulerDiscreteScheduler,
    Lumina2Pipeline,
    Lumina2Transformer2DModel,
)
from transformers import UMT5Config, UMT5EncoderModel

from interp.pipelines import components
from interp.pipelines.tokenizers import t5_tokenizer
from interp.pipelines.tokenizers_llm import gemma_tokenizer

CALL_KWARGS = {
    "auraflow": {"num_inference_steps": 2, "guidance_scale": 3.5, "max_sequence_length": 32, "height": 64, "width": 64},
    "lumina2": {
        "num_inference_steps": 2,
        "guidance_scale": 4.0,
        "max_sequence_length": 32,
        "height": 128,
        "width": 128,
    },
}


def call_kwargs(variant: str) -> dict:
    """Keyword arguments of a fast call of ``variant`` (a module of several variants has no single
    ``FAST_CALL_KWARGS``: ``interp.pipelines.tiny_call_kwargs`` asks this)."""
    return dict(CALL_KWARGS[variant])


def _auraflow(dtype: torch.dtype) -> AuraFlowPipeline:
    tokenizer = t5_tokenizer()
    config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with components.seeded("auraflow/text_encoder"):
        text_encoder = UMT5EncoderModel(config)
    with components.seeded("auraflow/transformer"):
        transformer = AuraFlowTransformer2DModel(
            sample_size=32,
            patch_size=2,
            in_channels=4,
            num_mmdit_layers=1,
            num_single_dit_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=64,
            caption_projection_dim=16,
            out_channels=4,
            pos_embed_max_size=256,
        )
    vae = components.vae("auraflow/vae", latent_channels=4, scaling_factor=0.13025)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.73)
    pipe = AuraFlowPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    return components.finish(pipe, dtype)


def _lumina2(dtype: torch.dtype) -> Lumina2Pipeline:
    tokenizer = gemma_tokenizer()
    text_encoder = components.gemma2_encoder("lumina2/text_encoder", tokenizer)
    with components.seeded("lumina2/transformer"):
        transformer = Lumina2Transformer2DModel(
            sample_size=16,
            patch_size=2,
            in_channels=4,
            hidden_size=32,
            num_layers=2,
            num_refiner_layers=1,
            num_attention_heads=2,
            num_kv_heads=1,
            multiple_of=16,
            axes_dim_rope=(4, 6, 6),
            axes_lens=(300, 64, 64),
            cap_feat_dim=32,
        )
    vae = components.vae(
        "lumina2/vae", latent_channels=4, scaling_factor=0.3611, shift_factor=0.1159, block_out_channels=(8, 8, 16, 16)
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=6.0)
    pipe = Lumina2Pipeline(
        transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer
    )
    return components.finish(pipe, dtype)


def build(variant: str, *, dtype: torch.dtype = torch.float32):
    """Build the tiny pipeline ``variant`` (``auraflow`` or ``lumina2``), deterministic and in eval mode."""
    builders = {"auraflow": _auraflow, "lumina2": _lumina2}
    if variant not in builders:
        raise ValueError(f"unknown generic-path variant {variant!r}; expected one of {sorted(builders)}")
    return builders[variant](dtype)
