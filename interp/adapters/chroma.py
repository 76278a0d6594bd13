"""Chroma (``ChromaTransformer2DModel``): Flux's attention layout, T5 only, real CFG as two calls.

Sites, groups, clock, the ``[T5, image]`` joint layout and the image coordinates (from ``img_ids``)
are Flux's (``interp.adapters.flux``): the transformer reuses ``FluxAttention`` and
``FluxAttnProcessor`` in double-stream ``transformer_blocks`` and single-stream
``single_transformer_blocks``; the last single block's text rows are discarded.

Branches. ``ChromaPipeline`` runs the transformer on the positive prompt first and on the negative
prompt second when ``guidance_scale > 1``: call 0 is ``cond``, call 1 ``uncond`` (Flux's true-CFG order).

Text. Chroma encodes T5 with its padding mask and keeps the first padding token (the pipeline's
``mask_indices <= seq_len``). In diffusers 0.42 that mask reaches SDPA as a *float* 0/1 tensor, i.e. an
additive bias (+1 on pairs of kept tokens, 0 elsewhere), not a boolean mask: padded keys still receive
mass. interp records exactly what the kernel computes (the observer adds the same bias), and the layout
marks every key ``valid`` since none is excluded; ``is_pad`` still tells padding apart.
"""

from __future__ import annotations

from typing import Any

from interp.adapters.base import TokenLayout, unknown_text_layout
from interp.adapters.flux import FluxAdapter
from interp.adapters.sd3 import t5_layout


class ChromaAdapter(FluxAdapter):
    name = "chroma"
    pipeline_classes = ("ChromaPipeline",)
    tiny_module = "chroma"
    tiny_variants = ("chroma",)
    timestep_arg = ("timestep", 2)
    prompt_embeds = None  # the transformer also needs encode_prompt's masks: sweeps pass the text

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        if call in (0, 1):
            return ["cond" if call == 0 else "uncond"] * batch
        raise RuntimeError(f"the Chroma transformer ran {call + 1} times in one step; expected cond, then uncond")

    @staticmethod
    def _joint(pipe: Any, text: str | None, call_kwargs: dict[str, Any], n_text: int, img: TokenLayout) -> TokenLayout:
        txt = unknown_text_layout(n_text, "T5") if text is None else t5_layout(pipe.tokenizer, text, n_text)
        return TokenLayout.concat([txt, img])
