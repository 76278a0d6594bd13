"""HunyuanVideo 1.5 text-to-video (``HunyuanVideo15Transformer3DModel``): joint attention over ``[video, context]``.

Sites. Every block ``transformer_blocks.i.attn`` (kind ``joint``) runs ``HunyuanVideo15AttnProcessor2_0``:
separate video and context projections, RMS QK-norm, 3-axis RoPE on the video tokens, one
``[video, context]`` joint attention through diffusers' dispatcher (native backend: SDPA), outputs
``(video, context)``. The last block's context rows are discarded (the model's output is the video
stream): its default query set is the video rows. The token refiner's self-attention over the Qwen
embeddings (``context_embedder``) runs before the blocks and is not a site. Groups: ``all``.

Token layout ``joint``: the video patches in (frame, row, col) order, then the context as the transformer
reorders it per batch row: the valid image-condition slots (none in text-to-video: the pipeline passes
zeros and the transformer masks all ``vision_num_semantic_tokens`` slots), the valid ByT5 tokens (the
prompt's quoted texts, ``Text "..."``; none when it quotes nothing), the valid Qwen2.5-VL tokens (the user
prompt after the cropped template prefix, ``<|im_end|>`` marked ``is_eos``, then the assistant header),
then the invalid image slots, ByT5 padding and Qwen padding (the last two zeroed). So the layout depends
on each prompt's valid-token counts: it is built from the prompt with the pipeline's own tokenizers and
checked against the masks the transformer received (``read_call``). Invalid positions are ``valid``
False: the processor's boolean mask blocks them as keys *and* as queries (their rows attend to nothing),
so ``masked_queries`` is set and every query set drops them (the cond and uncond calls differ: the
observer takes query rows per call branch).

Clock and branches. ``timestep=`` keyword (scheduler timesteps as they are). The ``ClassifierFreeGuidance``
guider runs the positive prompt first and the negative second, batch 1 each: call 0 ``cond``, call 1
``uncond``. Image-to-video is another pipeline class and not described here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from interp.adapters.base import (
    IMAGE,
    LAYOUT_FIELDS,
    TEXT,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    call_default,
    text_layout,
    unknown_text_layout,
    video_layout,
)

JOINT = "joint"
QWEN, BYT5, IMAGE_COND = "Qwen2.5-VL", "ByT5", "image-condition"


def _take(lay: TokenLayout, idx: np.ndarray) -> TokenLayout:
    out = {f: getattr(lay, f)[idx] for f in LAYOUT_FIELDS if f != "image_frame"}
    return TokenLayout(**out)


def qwen_layout(pipe: Any, text: str) -> TokenLayout:
    """The Qwen2.5-VL keys of ``text`` as the pipeline builds them: chat template padded to
    ``tokenizer_max_length`` past the crop, then cropped; ``valid`` is the tokenizer's mask."""
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import format_text_input

    tok, crop = pipe.tokenizer, pipe.prompt_template_encode_start_idx
    enc = tok.apply_chat_template(
        format_text_input([text], pipe.system_message),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        padding="max_length",
        max_length=pipe.tokenizer_max_length + crop,
        truncation=True,
    )
    ids, mask = list(enc["input_ids"][0])[crop:], list(enc["attention_mask"][0])[crop:]
    lay = text_layout(ids, tok.convert_ids_to_tokens(ids), QWEN, bos_id=None, eos_id=None, pad_id=None)
    lay.valid = np.asarray(mask, bool)
    lay.is_pad = ~lay.valid
    end = np.flatnonzero((np.asarray(ids) == tok.convert_tokens_to_ids("<|im_end|>")) & lay.valid)
    if len(end):
        lay.is_eos[end[0]] = True
    return lay


def byt5_layout(pipe: Any, text: str) -> TokenLayout:
    """The ByT5 keys of ``text``: its quoted glyph texts tokenized to ``tokenizer_2_max_length``, or
    all-masked zero embeddings (shown as padding) when it quotes nothing."""
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import extract_glyph_texts

    tok, n = pipe.tokenizer_2, pipe.tokenizer_2_max_length
    glyph = extract_glyph_texts(text)
    if glyph is None:
        ids, mask = [tok.pad_token_id] * n, [0] * n
    else:
        enc = tok(glyph, padding="max_length", max_length=n, truncation=True, add_special_tokens=True)
        ids, mask = list(enc.input_ids), list(enc.attention_mask)
    lay = text_layout(
        ids,
        tok.convert_ids_to_tokens(ids),
        BYT5,
        bos_id=None,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        attention_mask=mask,
    )
    lay.is_pad |= ~lay.valid
    return lay


def image_slots(n: int) -> TokenLayout:
    """The image-condition slots (SigLIP embeddings in image-to-video): masked zeros in text-to-video."""
    lay = text_layout([-1] * n, ["<image>"] * n, IMAGE_COND, bos_id=None, eos_id=None, pad_id=None)
    lay.valid = np.zeros(n, bool)
    lay.is_pad = np.ones(n, bool)
    return lay


def reorder(image: TokenLayout, byt5: TokenLayout, qwen: TokenLayout) -> TokenLayout:
    """The transformer's context order: valid image, ByT5, Qwen tokens, then the invalid ones of each."""
    parts = [image, byt5, qwen]
    return TokenLayout.concat(
        [_take(p, np.flatnonzero(p.valid)) for p in parts] + [_take(p, np.flatnonzero(~p.valid)) for p in parts]
    )


class HunyuanVideo15Adapter(Adapter):
    name = "hunyuanvideo15"
    pipeline_classes = ("HunyuanVideo15Pipeline",)
    denoiser_attr = "transformer"
    processors = ("HunyuanVideo15AttnProcessor2_0",)
    dispatch_processors = ("HunyuanVideo15AttnProcessor2_0",)
    tiny_module = "hunyuanvideo15"
    tiny_variants = ("hunyuanvideo15",)
    cfg_calls = True
    masked_queries = True

    def __init__(self) -> None:
        self._counts: tuple[int, int, int, int, int] | None = None  # valid image, ByT5, Qwen; lengths 2, 1

    def sites(self, pipe: Any) -> list[SiteInfo]:
        n = len(pipe.transformer.transformer_blocks)
        return [
            SiteInfo(f"transformer_blocks.{i}.attn", i, "joint", True, JOINT, JOINT, (TEXT,) if i == n - 1 else ())
            for i in range(n)
        ]

    def uses_cfg(self, pipe: Any) -> bool:
        guider = getattr(pipe, "guider", None)
        return bool(guider is not None and guider._enabled and guider.num_conditions > 1)

    def read_call(self, args: tuple, kwargs: dict[str, Any]) -> DenoiserCall:
        """A (B, C, F, H, W) latent; the context masks give the valid-token counts of the call."""
        sample = self.argument(args, kwargs, self.sample_arg)
        t, dtype = self.read_timestep(args, kwargs)
        b, _, f, h, w = sample.shape
        m1, m2 = kwargs.get("encoder_attention_mask"), kwargs.get("encoder_attention_mask_2")
        image = kwargs.get("image_embeds")
        if m1 is not None and m2 is not None and image is not None:
            m1, m2 = m1.bool(), m2.bool()
            if not (bool((m1 == m1[:1]).all()) and bool((m2 == m2[:1]).all())):
                raise RuntimeError(
                    "the rows of one HunyuanVideo 1.5 transformer call have different prompt lengths, so their "
                    "token layouts differ; trace one prompt at a time"
                )
            n_image = 0 if bool((image == 0).all()) else int(image.shape[1])
            self._counts = (n_image, int(m2[0].sum()), int(m1[0].sum()), int(m2.shape[1]), int(m1.shape[1]))
        return DenoiserCall(t, int(b), (int(h), int(w)), dtype, latent_frames=int(f))

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        if call in (0, 1):
            return ["cond" if call == 0 else "uncond"] * batch
        raise RuntimeError(
            f"the HunyuanVideo 1.5 transformer ran {call + 1} times in one step; expected cond, then uncond"
        )

    def video(self, pipe: Any, frames: int, height: int, width: int) -> TokenLayout:
        cfg = pipe.transformer.config
        return video_layout(frames // cfg.patch_size_t, height // cfg.patch_size, width // cfg.patch_size)

    def context(self, pipe: Any, text: str | None) -> TokenLayout:
        """The context keys of one branch, in the transformer's order."""
        slots = image_slots(int(pipe.vision_num_semantic_tokens))
        if text is None:
            if self._counts is None:
                raise RuntimeError("HunyuanVideo 1.5 context of unknown text before any transformer call")
            n_image, v2, v1, l2, l1 = self._counts
            if n_image:
                raise RuntimeError("image-conditioned HunyuanVideo 1.5 calls are not described")
            byt5, qwen = unknown_text_layout(l2, BYT5), unknown_text_layout(l1, QWEN)
            byt5.valid, qwen.valid = np.arange(l2) < v2, np.arange(l1) < v1
            byt5.is_pad, qwen.is_pad = ~byt5.valid, ~qwen.valid
            return reorder(slots, byt5, qwen)
        return reorder(slots, byt5_layout(pipe, text), qwen_layout(pipe, text))

    def layout(
        self,
        pipe: Any,
        name: str,
        text: str | None,
        call_kwargs: dict[str, Any],
        call: DenoiserCall,
        n_keys: int,
        branch: str = "cond",
    ) -> TokenLayout:
        if name != JOINT:
            raise ValueError(f"unknown HunyuanVideo 1.5 token layout {name!r}")
        ctx = self.context(pipe, text)
        if self._counts is not None:
            n_image, v2, v1, _, _ = self._counts
            if n_image:
                raise RuntimeError("image-conditioned HunyuanVideo 1.5 calls are not described (text-to-video only)")
            seen = (int(ctx.valid[ctx.encoder == BYT5].sum()), int(ctx.valid[ctx.encoder == QWEN].sum()))
            if seen != (v2, v1):
                raise RuntimeError(
                    f"the {branch} prompt gives {seen} valid (ByT5, Qwen) tokens but the transformer received "
                    f"{(v2, v1)}; the adapter does not describe this call"
                )
        return TokenLayout.concat([self.video(pipe, call.latent_frames, *call.latent_hw), ctx])

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        """The layout by HunyuanVideo15Pipeline's rules (default size from ``target_size``, 4k + 1 frames)."""
        if name != JOINT:
            raise ValueError(f"unknown HunyuanVideo 1.5 token layout {name!r}")
        if text is None:
            return None
        latents = call_kwargs.get("latents")
        if latents is not None:
            video = self.video(pipe, *(int(x) for x in latents.shape[-3:]))
        else:
            height, width = call_kwargs.get("height"), call_kwargs.get("width")
            if height is None and width is None:
                height, width = pipe.video_processor.calculate_default_height_width(
                    pipe.default_aspect_ratio[1], pipe.default_aspect_ratio[0], pipe.target_size
                )
            frames = int(call_kwargs.get("num_frames") or call_default(pipe, "num_frames"))
            st, ss = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
            video = self.video(pipe, (frames - 1) // st + 1, int(height) // ss, int(width) // ss)
        return TokenLayout.concat([video, self.context(pipe, text)])

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        streams = {IMAGE: output[0]}
        if TEXT not in site.unused_query_streams:
            streams[TEXT] = output[1]
        return streams
