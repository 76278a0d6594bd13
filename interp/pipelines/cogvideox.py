"""Built-in tiny CogVideoX and CogVideoX 1.5: the real ``CogVideoXPipeline`` from small configs, no download.

Layout kept from the real models: one T5 v1.1 encoder (its ``max_sequence_length`` positions are the
text stream; no attention mask reaches the transformer), a ``CogVideoXTransformer3DModel`` whose blocks
run one joint attention over ``[text, video]`` (LayerNorm QK-norm; the text is projected into the
stream by the patch embedding), a 3-D ``AutoencoderKLCogVideoX`` (8x spatial, 4x temporal compression:
``num_frames`` is 1 + 4k), and a CFG batch ``[uncond, cond]``.

- ``cogvideox`` (CogVideoX-2b): 2-D patches of 2 x 2, sinusoidal 3-D positional embeddings added to the
  joint sequence (so ``max_sequence_length`` must equal the transformer's ``max_text_seq_length``),
  ``CogVideoXDDIMScheduler`` (v-prediction, zero-SNR, trailing spacing).
- ``cogvideox1.5`` (CogVideoX 1.5-5B): 3-D patches of 2 x 2 x 2 (``patch_size_t=2``: the pipeline pads
  the latent frames to an even count), 3-D RoPE on the video tokens, no patch bias,
  ``CogVideoXDPMScheduler``.

Sizes: 2 blocks, 2 heads of dim 16 (RoPE axes 4 + 6 + 6), 4 latent channels, a 2-layer T5 of width 32.
The fast call (``FAST_CALL_KWARGS``): 9 frames of 64 x 64 px -> 3 latent frames of 8 x 8 -> 3 x 4 x 4 = 48
video tokens (1.5: padded to 4 latent frames -> 2 x 4 x 4 = 32), after 32 text positions.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXDPMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
)

from interp.pipelines import components
from interp.pipelines.tokenizers import t5_tokenizer

VARIANTS = ("cogvideox", "cogvideox1.5")
TEXT_LENGTH = 32  # transformer.config.max_text_seq_length (the real models: 226)
FAST_CALL_KWARGS = {
    "num_inference_steps": 4,
    "guidance_scale": 6.0,
    "height": 64,
    "width": 64,
    "num_frames": 9,
    "max_sequence_length": TEXT_LENGTH,
}
SCHEDULER = {  # CogVideoX's scheduler config (both variants)
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "set_alpha_to_one": True,
    "snr_shift_scale": 3.0,
    "timestep_spacing": "trailing",
}


def build(variant: str = "cogvideox", *, dtype: torch.dtype = torch.float32) -> CogVideoXPipeline:
    """Build the tiny CogVideoX (``"cogvideox"``) or CogVideoX 1.5 (``"cogvideox1.5"``), deterministic, eval mode."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown CogVideoX variant {variant!r}; expected one of {VARIANTS}")
    v15 = variant == "cogvideox1.5"
    tokenizer = t5_tokenizer()
    text_encoder = components.t5_encoder(f"{variant}/text_encoder", tokenizer, d_model=32, num_heads=2)
    extra = {"patch_size_t": 2, "use_rotary_positional_embeddings": True, "patch_bias": False} if v15 else {}
    with components.seeded(f"{variant}/transformer"):
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=4,
            out_channels=4,
            time_embed_dim=16,
            text_embed_dim=32,
            num_layers=2,
            sample_width=8,
            sample_height=8,
            sample_frames=9,
            patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=TEXT_LENGTH,
            **extra,
        )
    with components.seeded(f"{variant}/vae"):
        vae = AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
            sample_height=64,
            sample_width=64,
            scaling_factor=0.7 if v15 else 1.15258426,
            invert_scale_latents=v15,
        )
    scheduler = (CogVideoXDPMScheduler if v15 else CogVideoXDDIMScheduler)(**SCHEDULER)
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    return components.finish(pipe, dtype)
