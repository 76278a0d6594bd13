"""Built-in tiny Qwen-Image: the real ``QwenImagePipeline`` from small configs, no download.

Layout kept from Qwen-Image: a Qwen2.5-VL text encoder (its last hidden states over the prompt wrapped in
the pipeline's system/user template; the first 34 template tokens are dropped, so the text keys are the
user prompt and the closing template tokens), the MMDiT ``QwenImageTransformer2DModel`` (double-stream
joint attention over ``[text, image]`` in every block, 3-axis scaled RoPE), the causal video-style VAE
``AutoencoderKLQwenImage`` with per-channel latent statistics, 2x2 latent packing, and true CFG
(``true_cfg_scale > 1`` with a ``negative_prompt``) as two transformer calls per step, positive first.

Sizes: Qwen2.5-VL text model 2 layers of width 32 (a 1-layer vision tower, never run for text-to-image),
2 transformer blocks, 2 heads of dim 16 (RoPE axes 4 + 6 + 6), 4 latent channels, VAE scale factor 2;
``default_sample_size`` set to 32 on the instance (64 px, a 16x16 grid of 256 image tokens). The
template words are whole tokens of the built-in tokenizer, so the 34 dropped tokens are exactly the
template's preamble, as with the real tokenizer.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
)
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from interp.pipelines import components
from interp.pipelines.tokenizers_llm import qwen2_tokenizer

LATENT_SIZE = 32
Z_DIM = 4
FAST_CALL_KWARGS = {"num_inference_steps": 2, "true_cfg_scale": 4.0, "negative_prompt": " "}


def qwen25vl_encoder(tag: str, tokenizer, *, hidden_size: int = 32) -> Qwen2_5_VLForConditionalGeneration:
    """A tiny Qwen2.5-VL (text model 2 layers, vision tower 1 layer) matching ``tokenizer``."""
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": None,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": hidden_size,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        attn_implementation="sdpa",  # what from_pretrained picks: a saved copy computes the same
    )
    with components.seeded(tag):
        return Qwen2_5_VLForConditionalGeneration(config)


def build(variant: str = "qwenimage", *, dtype: torch.dtype = torch.float32) -> QwenImagePipeline:
    """Build the tiny Qwen-Image pipeline, deterministic and in eval mode."""
    if variant != "qwenimage":
        raise ValueError(f"unknown Qwen-Image variant {variant!r}; expected 'qwenimage'")
    tokenizer = qwen2_tokenizer()
    text_encoder = qwen25vl_encoder("qwenimage/text_encoder", tokenizer)
    with components.seeded("qwenimage/transformer"):
        transformer = QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=4 * Z_DIM,
            out_channels=Z_DIM,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,  # Qwen2.5-VL width
            axes_dims_rope=(4, 6, 6),
        )
    with components.seeded("qwenimage/vae"):
        vae = AutoencoderKLQwenImage(
            base_dim=8,
            z_dim=Z_DIM,
            dim_mult=[1, 2],
            num_res_blocks=1,
            temperal_downsample=[False],
            latents_mean=[0.1, -0.2, 0.3, 0.0],
            latents_std=[1.5, 2.0, 1.2, 1.8],
        )
    scheduler = FlowMatchEulerDiscreteScheduler(  # Qwen-Image's scheduler config
        num_train_timesteps=1000,
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=0.9,
        base_image_seq_len=256,
        max_image_seq_len=8192,
        shift_terminal=0.02,
        time_shift_type="exponential",
    )
    pipe = QwenImagePipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )
    pipe.default_sample_size = LATENT_SIZE
    return components.finish(pipe, dtype)
