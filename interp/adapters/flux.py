"""Flux (``FluxTransformer2DModel``): double-stream and single-stream joint attention, RoPE, true CFG.

Sites. Double-stream blocks (``transformer_blocks.i.attn``, kind ``joint``: separate text and image
projections, outputs ``(image, text)`` after ``to_out`` / ``to_add_out``) and single-stream blocks
(``single_transformer_blocks.i.attn``, kind ``single``: one projection over the concatenated
sequence, no output projection inside the attention module; its output is one tensor over
``[text, image]``, and the block applies ``proj_out`` to it together with the MLP). Both run
``FluxAttnProcessor`` through diffusers' attention dispatcher, whose native backend calls
``F.scaled_dot_product_attention`` with q and k after QK-norm, the [text, image] concatenation and
RoPE. Blocks are numbered in execution order over both kinds (double 0..D-1, then single D..D+S-1),
so fractions of depth span the whole network; ``layer=N`` with N >= D is
``single_transformer_blocks.{N - D}``. Groups: ``all``, ``double``, ``single``.

The last single-stream block computes text rows that the model discards (the transformer's output
keeps the image tokens only): its default query set is the image rows, like SD3's last block.

Token layout ``joint``: ``[T5 max_sequence_length, image patches]``, in that order. CLIP-L only gives
the pooled vector (modulation), never keys. Image rows and columns come from the ``img_ids`` the
pipeline passes (the RoPE positions), read once per layout. T5 labels come from ``prompt`` (the
pipeline encodes ``prompt_2`` instead when given: then the T5 keys are labelled unknown).

Clock and branches. The pipeline passes ``timestep / 1000`` (``timestep_scale``). Guidance is
distilled: no CFG batch, every call has batch 1 per image. True CFG (``true_cfg_scale > 1`` with a
negative prompt) runs the transformer twice per step: FluxPipeline runs the positive prompt first
(``cache_context("cond")``) and the negative second, so call 0 is ``cond`` and call 1 ``uncond``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from interp.adapters.base import (
    IMAGE,
    TEXT,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    call_default,
    image_layout,
    unknown_text_layout,
)
from interp.adapters.sd3 import t5_layout

JOINT = "joint"


class FluxAdapter(Adapter):
    name = "flux"
    pipeline_classes = ("FluxPipeline",)
    denoiser_attr = "transformer"
    processors = ("FluxAttnProcessor", "FluxAttnProcessor2_0", "FusedFluxAttnProcessor2_0")
    dispatch_processors = ("FluxAttnProcessor",)
    tiny_module = "flux"
    tiny_variants = ("flux",)
    timestep_scale = 1000.0
    timestep_arg = ("timestep", 3)

    def __init__(self) -> None:
        # Per-call facts the layout and the output split need, read in ``read_call`` without a host
        # sync (a tensor reference and a shape): the adapter is created per trace.
        self._img_ids: torch.Tensor | None = None
        self._n_text: int | None = None

    def sites(self, pipe: Any) -> list[SiteInfo]:
        tr = pipe.transformer
        double = len(tr.transformer_blocks)
        single = len(tr.single_transformer_blocks)
        out = [SiteInfo(f"transformer_blocks.{i}.attn", i, "joint", True, JOINT, JOINT) for i in range(double)]
        for i in range(single):
            unused = (TEXT,) if i == single - 1 else ()
            out.append(
                SiteInfo(f"single_transformer_blocks.{i}.attn", double + i, "single", True, JOINT, JOINT, unused)
            )
        return out

    kind_groups = (("double", "joint"), ("single", "single"))

    def read_call(self, args: tuple, kwargs: dict[str, Any]) -> DenoiserCall:
        hidden = self.argument(args, kwargs, self.sample_arg)
        enc = kwargs.get("encoder_hidden_states")
        self._img_ids = kwargs.get("img_ids")
        self._n_text = int(enc.shape[1]) if enc is not None else None
        # latent_hw: the packed sequence (image tokens, 1); the 2-D grid comes from img_ids
        t, dtype = self.read_timestep(args, kwargs)
        return DenoiserCall(t, int(hidden.shape[0]), (int(hidden.shape[1]), 1), dtype)

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        if call == 0:
            return ["cond"] * batch
        if call == 1:
            return ["uncond"] * batch
        raise RuntimeError(
            f"the Flux transformer ran {call + 1} times in one denoising step; interp knows FluxPipeline's "
            "true CFG (cond, then uncond) and cannot label further calls"
        )

    def image_part(self, n_image: int) -> TokenLayout:
        ids = self._img_ids
        if ids is None:
            raise RuntimeError("the Flux transformer was called without img_ids: cannot place image tokens")
        ids = ids.detach()
        if ids.ndim == 3:  # deprecated (batch, tokens, 3) form
            ids = ids[0]
        rows = ids[:, 1].round().long().cpu().numpy()
        cols = ids[:, 2].round().long().cpu().numpy()
        if len(rows) != n_image:
            raise RuntimeError(f"img_ids has {len(rows)} positions but the site saw {n_image} image keys")
        lay = image_layout(int(rows.max()) + 1, int(cols.max()) + 1)
        if len(lay) != n_image:  # not a full row-major grid: keep the ids' own order
            lay = image_layout(1, n_image)
        lay.image_row, lay.image_col = rows.astype(np.int64), cols.astype(np.int64)
        return lay

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
            raise ValueError(f"unknown Flux token layout {name!r}")
        n_image = call.latent_hw[0]
        n_text = n_keys - n_image
        if self._n_text is not None and self._n_text != n_text:
            raise RuntimeError(f"{n_keys} keys do not split into {self._n_text} text + {n_image} image tokens")
        return self._joint(pipe, text, call_kwargs, n_text, self.image_part(n_image))

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        """The layout a call with these arguments will have, by FluxPipeline's own size rules."""
        if name != JOINT:
            raise ValueError(f"unknown Flux token layout {name!r}")
        s = pipe.vae_scale_factor
        rows = int(call_kwargs.get("height") or pipe.default_sample_size * s) // (s * 2)
        cols = int(call_kwargs.get("width") or pipe.default_sample_size * s) // (s * 2)
        embeds = call_kwargs.get("prompt_embeds")
        if embeds is not None:
            n_text = int(embeds.shape[1])
        else:
            n_text = int(call_kwargs.get("max_sequence_length") or call_default(pipe, "max_sequence_length"))
        return self._joint(pipe, text, call_kwargs, n_text, image_layout(rows, cols))

    @staticmethod
    def _joint(pipe: Any, text: str | None, call_kwargs: dict[str, Any], n_text: int, img: TokenLayout) -> TokenLayout:
        if text is None or any(call_kwargs.get(k) is not None for k in ("prompt_2", "negative_prompt_2")):
            txt = unknown_text_layout(n_text, "T5")
        else:
            txt = t5_layout(pipe.tokenizer_2, text, n_text)
        return TokenLayout.concat([txt, img])

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        if isinstance(output, tuple):  # double-stream: (image, text) after to_out / to_add_out
            return {IMAGE: output[0], TEXT: output[1]}
        n_text = self._n_text or 0
        streams = {IMAGE: output[:, n_text:]}
        if TEXT not in site.unused_query_streams:
            streams[TEXT] = output[:, :n_text]
        return streams
