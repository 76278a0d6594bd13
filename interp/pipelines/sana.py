"""Built-in tiny SANA: the real ``SanaPipeline`` from small configs, no download.

Layout kept from SANA 1.0/1.5: a Gemma-2 text encoder (decoder-only; its last hidden states are the
caption, right-padded with the padding mask passed on), prompts prefixed with the pipeline's "complex
human instruction" and then cut to ``[BOS] + the last max_sequence_length - 1`` tokens, a
``SanaTransformer2DModel`` whose blocks hold ReLU **linear** self-attention ``attn1``
(``SanaLinearAttnProcessor2_0``, no SDPA) and softmax cross-attention ``attn2`` over the caption, a
deep-compression autoencoder (``AutoencoderDC``) and the flow-matching DPM-Solver++ scheduler.

Sizes: 2 blocks, self-attention 2 heads of dim 8, cross-attention 2 heads of dim 8, 4 latent channels,
patch 1, a 2-level DC-AE (scale factor 2). The transformer's ``sample_size`` 16 selects the 512 px
aspect-ratio bins, so a fast run turns binning off and asks for 32x32 px (a 16x16 latent, 256 image
tokens); ``max_sequence_length`` 300 by default, 32 in ``FAST_CALL_KWARGS``.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderDC, DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel

from interp.pipelines import components
from interp.pipelines.tokenizers_llm import gemma_tokenizer

FAST_CALL_KWARGS = {
    "num_inference_steps": 2,
    "guidance_scale": 4.5,
    "max_sequence_length": 32,
    "height": 32,
    "width": 32,
    "use_resolution_binning": False,
}


def build(variant: str = "sana", *, dtype: torch.dtype = torch.float32) -> SanaPipeline:
    """Build the tiny SANA pipeline, deterministic and in eval mode."""
    if variant != "sana":
        raise ValueError(f"unknown SANA variant {variant!r}; expected 'sana'")
    tokenizer = gemma_tokenizer()
    text_encoder = components.gemma2_encoder("sana/text_encoder", tokenizer)
    with components.seeded("sana/transformer"):
        transformer = SanaTransformer2DModel(
            in_channels=4,
            out_channels=4,
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=2,
            num_cross_attention_heads=2,
            cross_attention_head_dim=8,
            cross_attention_dim=16,
            caption_channels=32,  # Gemma width
            sample_size=16,
            patch_size=1,
        )
    with components.seeded("sana/vae"):
        vae = AutoencoderDC(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=8,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=(8, 16),
            decoder_block_out_channels=(8, 16),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            encoder_qkv_multiscales=((), (5,)),
            decoder_qkv_multiscales=((), (5,)),
            upsample_block_type="interpolate",
            downsample_block_type="Conv",
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
            scaling_factor=0.41407,
        )
    scheduler = DPMSolverMultistepScheduler(  # SANA's flow-matching DPM-Solver++ config
        num_train_timesteps=1000,
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=3.0,
        algorithm_type="dpmsolver++",
        solver_order=2,
    )
    pipe = SanaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    return components.finish(pipe, dtype)
