"""Built-in tiny HunyuanVideo 1.5 text-to-video: the real ``HunyuanVideo15Pipeline`` from small configs, no download.

Layout kept from HunyuanVideo 1.5 T2V: a Qwen2.5-VL text model (the hidden states two layers before the
last, over the prompt wrapped in the pipeline's system/user chat template and padded to
``tokenizer_max_length + prompt_template_encode_start_idx``; the first ``prompt_template_encode_start_idx``
positions, the system turn and the user header, are cropped), a ByT5 glyph encoder (a T5 encoder over the
prompt's quoted texts, padded to ``tokenizer_2_max_length``; all-masked zeros when the prompt quotes
nothing), ``vision_num_semantic_tokens`` image-condition slots (all masked in text-to-video), the
``HunyuanVideo15Transformer3DModel`` (double-stream joint attention over ``[video, context]`` in every
block, 3-axis RoPE over frame, row and column; the context is reordered per batch row: valid image, ByT5
and Qwen tokens first, then the padding of each), the causal 3-D ``AutoencoderKLHunyuanVideo15`` and a
``ClassifierFreeGuidance`` guider that runs the transformer twice per step (the positive prompt first,
then the negative), batch 1 each.

Sizes: Qwen2.5-VL text model 3 layers of width 32, ByT5 2 layers of width 16, 2 transformer blocks, 2 heads
of dim 16 (RoPE axes 4 + 6 + 6), 4 latent channels, VAE 4x spatial and 4x temporal compression. Set on the
instance (the pipeline's own attributes, constants in diffusers): ``tokenizer_max_length`` 24 (real
1000), ``tokenizer_2_max_length`` 8 (real 256), ``vision_num_semantic_tokens`` 4 (real 729), and
``prompt_template_encode_start_idx`` the built-in tokenizer's length of the template's system turn and
user header (real 108; 240 here: the template's words are not whole tokens of the built-in tokenizer).
The fast call: 5 frames of 32 x 32 px -> 2 latent frames of 8 x 8 = 128 video tokens; 36 context keys.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo15,
    ClassifierFreeGuidance,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideo15Pipeline,
    HunyuanVideo15Transformer3DModel,
)
from transformers import ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

from interp.pipelines import components
from interp.pipelines.tokenizers_llm import qwen2_tokenizer

FAST_CALL_KWARGS = {
    "num_inference_steps": 2,
    "height": 32,
    "width": 32,
    "num_frames": 5,
    "negative_prompt": "",
}
Z_DIM = 4
QWEN_WIDTH = 32
BYT5_WIDTH = 16
IMAGE_EMBED_DIM = 16
TEXT_MAX_LENGTH = 24
GLYPH_MAX_LENGTH = 8
SEMANTIC_TOKENS = 4


def template_crop(pipe: HunyuanVideo15Pipeline) -> int:
    """Tokens of the chat template before the user's text: the system turn and the user header."""
    conv = [{"role": "system", "content": pipe.system_message}, {"role": "user", "content": "\x00"}]
    text = pipe.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    return len(pipe.tokenizer(text[: text.index("\x00")]).input_ids)


def build(variant: str = "hunyuanvideo15", *, dtype: torch.dtype = torch.float32) -> HunyuanVideo15Pipeline:
    """Build the tiny HunyuanVideo 1.5 text-to-video pipeline, deterministic and in eval mode."""
    if variant != "hunyuanvideo15":
        raise ValueError(f"unknown HunyuanVideo 1.5 variant {variant!r}; expected 'hunyuanvideo15'")
    tokenizer = qwen2_tokenizer()
    with components.seeded("hunyuanvideo15/text_encoder"):
        text_encoder = Qwen2_5_VLTextModel(
            Qwen2_5_VLTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=QWEN_WIDTH,
                intermediate_size=2 * QWEN_WIDTH,
                num_hidden_layers=3,  # the pipeline takes hidden_states[-3]
                num_attention_heads=2,
                num_key_value_heads=1,
                max_position_embeddings=2048,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                bos_token_id=None,
                attn_implementation="sdpa",
            )
        )
    tokenizer_2 = ByT5Tokenizer()
    with components.seeded("hunyuanvideo15/text_encoder_2"):
        text_encoder_2 = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer_2),
                d_model=BYT5_WIDTH,
                d_kv=8,
                d_ff=2 * BYT5_WIDTH,
                num_layers=2,
                num_heads=2,
                relative_attention_num_buckets=8,
                relative_attention_max_distance=16,
                feed_forward_proj="gated-gelu",
                is_encoder_decoder=False,
                use_cache=False,
                pad_token_id=tokenizer_2.pad_token_id,
                eos_token_id=tokenizer_2.eos_token_id,
            )
        )
    with components.seeded("hunyuanvideo15/transformer"):
        transformer = HunyuanVideo15Transformer3DModel(
            in_channels=2 * Z_DIM + 1,  # latents, condition latents, condition mask
            out_channels=Z_DIM,
            num_attention_heads=2,
            attention_head_dim=16,
            num_layers=2,
            num_refiner_layers=1,
            mlp_ratio=2.0,
            patch_size=1,
            patch_size_t=1,
            text_embed_dim=QWEN_WIDTH,
            text_embed_2_dim=BYT5_WIDTH,
            image_embed_dim=IMAGE_EMBED_DIM,
            rope_axes_dim=(4, 6, 6),
            target_size=32,
            task_type="t2v",
        )
    with components.seeded("hunyuanvideo15/vae"):
        vae = AutoencoderKLHunyuanVideo15(
            latent_channels=Z_DIM,
            block_out_channels=(8, 8, 8),
            layers_per_block=1,
            spatial_compression_ratio=4,
            temporal_compression_ratio=4,
        )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0)
    pipe = HunyuanVideo15Pipeline(
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
    )
    pipe.tokenizer_max_length = TEXT_MAX_LENGTH
    pipe.tokenizer_2_max_length = GLYPH_MAX_LENGTH
    pipe.vision_num_semantic_tokens = SEMANTIC_TOKENS
    pipe.prompt_template_encode_start_idx = template_crop(pipe)
    return components.finish(pipe, dtype)
