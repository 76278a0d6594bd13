"""Shared building blocks of the built-in offline pipelines: seeded construction, tiny text encoders, VAE.

Every builder in this package constructs each component inside :func:`seeded`, which seeds a forked copy
of torch's CPU generator from a fixed tag (``"sd3/transformer"``) and restores the caller's RNG state on
exit. Seeding per component (rather than once per pipeline) keeps a component's weights fixed when another
component of the same pipeline changes size. Only the CPU generator is forked and seeded: components are
built on the CPU, and ``torch.manual_seed`` would also reseed (and leave changed) the caller's CUDA
generators.

:func:`finish` casts to the requested dtype, puts every module in eval mode (T5 has dropout active in train
mode) and turns the progress bar off.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import Any

import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.utils import logging as diffusers_logging
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    Gemma2Config,
    Gemma2Model,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from interp.pipelines.tokenizers import CLIP_MAX_LENGTH


@contextlib.contextmanager
def seeded(tag: str) -> Iterator[None]:
    """Run the body with torch's CPU generator seeded from ``tag``; the caller's RNG state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(zlib.crc32(tag.encode("utf-8")))
        yield


def clip_text_encoder(
    tag: str,
    tokenizer: CLIPTokenizer,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    projection_dim: int | None = 32,
    hidden_act: str = "quick_gelu",
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """A tiny CLIP text encoder matching ``tokenizer`` (with projection unless ``projection_dim`` is None).

    ``eos_token_id`` is the tokenizer's end-of-text id, so the pooled output is taken at the first
    end-of-text token, i.e. the real EOS, whether the tokenizer pads with end-of-text or with "!".
    """
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        projection_dim=projection_dim if projection_dim is not None else hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_act=hidden_act,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    cls = CLIPTextModel if projection_dim is None else CLIPTextModelWithProjection
    with seeded(tag):
        return cls(config)


def t5_encoder(
    tag: str,
    tokenizer: T5Tokenizer,
    *,
    d_model: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    d_kv: int = 16,
) -> T5EncoderModel:
    """A tiny T5 v1.1-style encoder (gated GELU, relative position buckets) matching ``tokenizer``."""
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=d_kv,
        d_ff=2 * d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with seeded(tag):
        return T5EncoderModel(config)


def gemma2_encoder(tag: str, tokenizer: Any) -> Gemma2Model:
    """A tiny Gemma-2 text model (eager attention) matching ``tokenizer`` (SANA, Lumina 2)."""
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
        sliding_window=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="eager",
    )
    with seeded(tag):
        return Gemma2Model(config)


def vae(
    tag: str,
    *,
    latent_channels: int,
    scaling_factor: float,
    shift_factor: float | None = None,
    block_out_channels: tuple[int, ...] = (8, 16),
    use_quant_conv: bool = True,
) -> AutoencoderKL:
    """A tiny AutoencoderKL; ``2 ** (len(block_out_channels) - 1)`` is the pipelines' ``vae_scale_factor``."""
    n = len(block_out_channels)
    with seeded(tag):
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=block_out_channels,
            layers_per_block=1,
            latent_channels=latent_channels,
            norm_num_groups=4,
            sample_size=32,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
            use_quant_conv=use_quant_conv,
            use_post_quant_conv=use_quant_conv,
        )


def finish(pipe: DiffusionPipeline, dtype: torch.dtype) -> DiffusionPipeline:
    """Cast every module to ``dtype``, put it in eval mode, disable the progress bar; returns ``pipe``."""
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating point torch dtype, got {dtype}")
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            if any(p.dtype != dtype for p in component.parameters()):
                # Built in float32 and cast as a whole: nothing in these configs must stay in float32, so
                # diffusers' warning about casting with ``to()`` (it lists no such module) is silenced.
                level = diffusers_logging.get_verbosity()
                diffusers_logging.set_verbosity_error()
                try:
                    component.to(dtype=dtype)
                finally:
                    diffusers_logging.set_verbosity(level)
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe
