"""Built-in tiny Wan 2.x text-to-video: the real ``WanPipeline`` from small configs, no download.

Layout kept from Wan 2.1 T2V: one UMT5 encoder (its ``max_sequence_length`` positions are the
cross-attention keys; the pipeline zeroes the embeddings after the prompt's tokens but passes no mask),
a ``WanTransformer3DModel`` whose blocks hold a self-attention over the video tokens (``attn1``, 3-axis
RoPE over frame, row and column, RMS QK-norm across heads) and a cross-attention to the text
(``attn2``), a causal 3-D ``AutoencoderKLWan`` (8x spatial, 4x temporal compression: ``num_frames`` is
1 + 4k), patches of 1 x 2 x 2, and Wan 2.1's scheduler (UniPC multistep with flow sigmas, shift 3).
CFG runs the transformer twice per step (positive prompt first, then the negative), batch 1 each.

Sizes: 2 blocks, 2 heads of dim 12 (RoPE axes 4 + 4 + 4), 16 latent channels, a 2-layer UMT5 of width
32. The fast call (``FAST_CALL_KWARGS``): 9 frames of 64 x 64 px -> 3 latent frames of 8 x 8 -> 3 x 4 x 4
= 48 video tokens, and 32 text positions (the real default is 512).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

from interp.pipelines import components
from interp.pipelines.tokenizers import t5_tokenizer

FAST_CALL_KWARGS = {
    "num_inference_steps": 4,
    "guidance_scale": 5.0,
    "height": 64,
    "width": 64,
    "num_frames": 9,
    "max_sequence_length": 32,
}
Z_DIM = 16


def umt5_encoder(tag: str, tokenizer, *, d_model: int = 32) -> UMT5EncoderModel:
    """A tiny UMT5 encoder (per-layer relative position buckets, gated GELU) matching ``tokenizer``."""
    config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=16,
        d_ff=2 * d_model,
        num_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with components.seeded(tag):
        return UMT5EncoderModel(config)


def build(variant: str = "wan", *, dtype: torch.dtype = torch.float32) -> WanPipeline:
    """Build the tiny Wan 2.x text-to-video pipeline, deterministic and in eval mode."""
    if variant != "wan":
        raise ValueError(f"unknown Wan variant {variant!r}; expected 'wan'")
    tokenizer = t5_tokenizer()  # UMT5's tokenizer is a T5 (SentencePiece) tokenizer: <pad> 0, </s> 1
    text_encoder = umt5_encoder("wan/text_encoder", tokenizer)
    with components.seeded("wan/transformer"):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=Z_DIM,
            out_channels=Z_DIM,
            text_dim=32,
            freq_dim=32,
            ffn_dim=64,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        )
    with components.seeded("wan/vae"):
        vae = AutoencoderKLWan(
            base_dim=4,
            z_dim=Z_DIM,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=3.0
    )
    pipe = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer
    )
    return components.finish(pipe, dtype)
