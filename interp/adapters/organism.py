"""The model organism (``interp.organism``): SD3's joint attention with one T5-like text encoder.

Token layout of a site: ``[image pixels-patches (row-major), text max_sequence_length]``; the text
keys are the organism tokenizer's tokens (BOS, content words, EOS, padding after EOS, told apart by
position). No VAE: the latent grid is the pixel grid. Everything else (sites, the context-pre-only
last block, CFG branches, timesteps) is SD3's, so the adapter extends ``SD3Adapter``.
"""

from __future__ import annotations

from typing import Any

from interp.adapters.base import DenoiserCall, TokenLayout, image_layout, text_layout, unknown_text_layout
from interp.adapters.sd3 import SD3Adapter


class OrganismAdapter(SD3Adapter):
    name = "organism"
    pipeline_classes = ("OrganismPipeline",)
    prompt_embeds = None  # the organism pipeline has no encode_prompt: sweeps pass the prompt text
    tiny_module = None  # trained, not a random-weight built-in: ``interp.pipelines.organism()``
    tiny_variants = ()

    def text_layout(self, pipe: Any, text: str | None, call_kwargs: dict[str, Any], n_text: int) -> TokenLayout:
        if text is None:
            return unknown_text_layout(n_text, "T5")
        from interp.organism.text import tokenize

        tok = pipe.tokenizer
        ids = tokenize(tok, [text], n_text)[0].tolist()
        return text_layout(
            ids,
            tok.convert_ids_to_tokens(ids),
            "T5",
            bos_id=tok.bos_token_id,
            eos_id=tok.eos_token_id,
            pad_id=tok.pad_token_id,
        )

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout:
        from interp.organism.text import MAX_LENGTH

        size = pipe.default_sample_size
        call = DenoiserCall(0.0, 1, (int(call_kwargs.get("height") or size), int(call_kwargs.get("width") or size)))
        rows, cols = self.grid(pipe, call)
        if name == "image":
            return image_layout(rows, cols)
        n_text = int(call_kwargs.get("max_sequence_length", MAX_LENGTH))
        return self.layout(pipe, name, text, call_kwargs, call, rows * cols + n_text, branch=branch)
