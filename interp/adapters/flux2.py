"""Flux.2 (``Flux2Transformer2DModel``): Flux's double/single-stream layout, an LLM text stream, 4-axis RoPE.

Sites. Double-stream blocks ``transformer_blocks.i.attn`` (kind ``joint``, ``Flux2AttnProcessor``:
``[text, image]`` joint attention, outputs ``(image, text)``) and single-stream blocks
``single_transformer_blocks.i.attn`` (kind ``single``, ``Flux2ParallelSelfAttnProcessor``: attention
and MLP fused in one module over ``[text, image]``; its output is that one sequence). Both go through
diffusers' attention dispatcher (native backend: SDPA). Numbering, groups and the discarded text rows
of the last single block are Flux's (``interp.adapters.flux``).

Token layout ``joint``: ``[text max_sequence_length, image patches]``. Flux.2 [dev] (``Flux2Pipeline``)
encodes the pipeline's system message and the prompt in Mistral-3's chat template (``<s>`` BOS,
``[/INST]`` closing the user turn as EOS). Flux.2 [klein] encodes the
prompt with a Qwen3 LM (``Flux2KleinPipeline``): the prompt in Qwen's chat template (user turn,
generation prompt, empty think block) padded to ``max_sequence_length``; every position is a key (the
transformer gets no text mask), so padding is ``is_pad`` but ``valid``; ``is_eos`` marks the
``<|im_end|>`` that closes the user turn; template tokens are told apart by their strings
(``<|im_start|>``, ``user``, ...). Image rows and columns come from the (t, h, w, l) ``img_ids``.

Branches. [dev] is guidance-distilled: one call per step (``cond``). [klein]'s guidance is real CFG unless the
checkpoint is distilled: the positive prompt's call first,
then the empty negative prompt's (call 0 ``cond``, call 1 ``uncond``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.adapters.base import TokenLayout, text_layout, unknown_text_layout
from interp.adapters.flux import FluxAdapter


def chat_layout(tokenizer: Any, text: str, max_length: int, encoder: str, **template: Any) -> TokenLayout:
    """A prompt in the tokenizer's chat template (one user turn, generation prompt), padded to
    ``max_length`` the way the Qwen-encoder pipelines do; ``is_eos`` at the ``<|im_end|>`` closing the turn,
    ``is_pad`` where the attention mask is 0 (every position stays ``valid``: no mask reaches the keys)."""
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True, **template
    )
    enc = tokenizer(chat, padding="max_length", truncation=True, max_length=max_length)
    ids, mask = np.asarray(enc.input_ids), np.asarray(enc.attention_mask, bool)
    lay = text_layout(
        ids.tolist(), tokenizer.convert_ids_to_tokens(ids.tolist()), encoder, bos_id=None, eos_id=None, pad_id=None
    )
    end = np.flatnonzero(ids == tokenizer.convert_tokens_to_ids("<|im_end|>"))
    lay.is_eos = np.zeros(len(ids), bool)
    if len(end):
        lay.is_eos[end[0]] = True
    lay.is_pad = ~mask
    return lay


def mistral_layout(pipe: Any, text: str, max_length: int, encoder: str = "Mistral3") -> TokenLayout:
    """Flux2Pipeline's text: the system message and the prompt in Mistral's chat template (through the
    pipeline's processor), padded to ``max_length``; ``<s>`` is BOS, ``[/INST]`` (end of the user turn) EOS,
    padding where the mask is 0 (still ``valid``: no text mask reaches the keys)."""
    from diffusers.pipelines.flux2.pipeline_flux2 import format_input

    enc = pipe.tokenizer.apply_chat_template(
        format_input(prompts=[text], system_message=pipe.system_message),
        add_generation_prompt=False,
        tokenize=True,
        return_dict=True,
        padding="max_length",
        truncation=True,
        max_length=max_length,
    )
    tok = pipe.tokenizer.tokenizer
    ids, mask = np.asarray(enc["input_ids"][0]), np.asarray(enc["attention_mask"][0], bool)
    lay = text_layout(
        ids.tolist(),
        tok.convert_ids_to_tokens(ids.tolist()),
        encoder,
        bos_id=tok.bos_token_id,
        eos_id=None,
        pad_id=None,
    )
    end = np.flatnonzero(ids == tok.convert_tokens_to_ids("[/INST]"))
    lay.is_eos = np.zeros(len(ids), bool)
    if len(end):
        lay.is_eos[end[0]] = True
    lay.is_pad = ~mask
    return lay


class Flux2Adapter(FluxAdapter):
    name = "flux2"
    pipeline_classes = ("Flux2Pipeline", "Flux2KleinPipeline")
    processors = ("Flux2AttnProcessor", "Flux2ParallelSelfAttnProcessor")
    dispatch_processors = ("Flux2AttnProcessor", "Flux2ParallelSelfAttnProcessor")
    tiny_module = "flux2"
    tiny_variants = ("flux2", "flux2-klein")
    timestep_arg = ("timestep", 2)

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        if call in (0, 1):
            return ["cond" if call == 0 else "uncond"] * batch
        raise RuntimeError(f"the Flux.2 transformer ran {call + 1} times in one step; expected cond, then uncond")

    @staticmethod
    def _joint(pipe: Any, text: str | None, call_kwargs: dict[str, Any], n_text: int, img: TokenLayout) -> TokenLayout:
        dev = type(pipe).__name__ == "Flux2Pipeline"
        encoder = "Mistral3" if dev else "Qwen3"
        if text is None:
            txt = unknown_text_layout(n_text, encoder)
        elif dev:
            txt = mistral_layout(pipe, text, n_text)
        else:
            txt = chat_layout(pipe.tokenizer, text, n_text, encoder, enable_thinking=False)
        return TokenLayout.concat([txt, img])
