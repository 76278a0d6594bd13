"""Tokenizers of the LLM text encoders (Qwen2/Qwen3, Gemma), built in code for the built-in pipelines.

Same design as ``interp.pipelines.tokenizers`` (no download, no library trainer, byte-for-byte stable):
the real ``transformers`` classes (``Qwen2Tokenizer``, ``GemmaTokenizer``, both ``tokenizers``-backed),
given a vocabulary and merges derived by plain Python from a FIXED word list with explicit tie-breaking
(:func:`bpe_merges`). The word list is the CLIP/T5 one (GenEval words) plus the words of the prompt
templates the pipelines wrap prompts in (case-sensitive), so a template tokenizes into as many tokens as
with the real tokenizer (Qwen-Image drops the first 34 tokens of its template: exactly the system and
user preamble, as with the real Qwen2.5 tokenizer).

- Qwen2 (Qwen2.5-VL of Qwen-Image, Qwen3 of Flux.2 Klein): byte-level BPE; the 256 byte symbols, one
  token per merge (each word once bare and once with the ``Ġ`` space marker), then the special tokens
  (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, Qwen2.5-VL's vision markers, Qwen3's ``<think>``).
  A chat template (ChatML, Qwen3's adds an empty think block when thinking is off) is set in code.
- Mistral (Mistral-3 of Flux.2 [dev]): the same byte-level BPE with Mistral's specials (``<s>``, ``</s>``,
  ``[INST]``, ``[SYSTEM_PROMPT]``, the image tokens, ``<pad>``) and a chat template of system and user turns,
  inside a ``PixtralProcessor`` (the pipeline's ``AutoProcessor``).
- Gemma (SANA's Gemma-2): SentencePiece-style BPE with byte fallback: ``<pad>`` 0, ``<eos>`` 1, ``<bos>``
  2, ``<unk>`` 3, the 256 ``<0xNN>`` byte pieces, the characters, then one piece per merge (``▁word``
  and ``word``); a BOS is prepended as Gemma's tokenizer does.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    GemmaTokenizer,
    PixtralImageProcessor,
    PixtralProcessor,
    PreTrainedTokenizerFast,
    Qwen2Tokenizer,
)

from interp.pipelines.tokenizers import _bytes_to_unicode, word_list

QWEN_SPACE = "\u0120"  # byte-level symbol of " " ("Ġ")
GEMMA_SPACE = "\u2581"  # "▁"
QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
)
# Words of the pipelines' prompt templates (Qwen-Image's system prompt, ChatML roles, SANA's complex human
# instruction): kept whole so templates tokenize to the real token counts.
TEMPLATE_TEXT = (
    "system user assistant Describe the image by detailing the color, shape, size, texture, quantity, text, "
    "spatial relationships of the objects and background: Given a user prompt, generate an Enhanced prompt "
    "that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail "
    "in the user prompt Examples Prompt Enhanced Please generate only the enhanced description for below"
)
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


@functools.cache
def llm_words() -> tuple[str, ...]:
    """GenEval words (lower case) plus the template words as written (case kept, Flux.2's system message
    included), sorted."""
    from diffusers.pipelines.flux2.system_messages import SYSTEM_MESSAGE

    words = set(word_list()) | set(re.findall(r"[A-Za-z]+", TEMPLATE_TEXT + " " + SYSTEM_MESSAGE))
    return tuple(sorted(words))


def bpe_merges(words: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Merges (in rank order) that make each word (a symbol sequence) one token: a deterministic BPE
    simulation, most frequent pair first, ties broken by the pair's strings."""
    seqs = [list(w) for w in words]
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols in seqs:
            pairs.update(zip(symbols, symbols[1:], strict=False))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for i, symbols in enumerate(seqs):
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and (symbols[j], symbols[j + 1]) == best:
                    out.append(symbols[j] + symbols[j + 1])
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            seqs[i] = out


def _vocab(base: Sequence[str], merges: Sequence[tuple[str, str]], specials: Sequence[str]) -> dict[str, int]:
    order = list(base)
    seen = set(order)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            order.append(a + b)
    order += [s for s in specials if s not in seen]
    return {tok: i for i, tok in enumerate(order)}


@functools.cache
def _qwen_vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    words = llm_words()
    merges = bpe_merges([list(w) for w in words] + [[QWEN_SPACE, *w] for w in words])
    return _vocab(_bytes_to_unicode(), merges, QWEN_SPECIALS), tuple(merges)


def qwen2_tokenizer() -> Qwen2Tokenizer:
    """A Qwen2 tokenizer (byte-level BPE, ChatML template, ``<|endoftext|>`` padding) over the fixed words."""
    vocab, merges = _qwen_vocab_and_merges()
    tok = Qwen2Tokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    tok.add_special_tokens({"additional_special_tokens": [s for s in QWEN_SPECIALS if s != "<|endoftext|>"]})
    tok.chat_template = CHATML
    return tok


@functools.cache
def _gemma_vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    words = llm_words()
    merges = bpe_merges([list(w) for w in words] + [[GEMMA_SPACE, *w] for w in words])
    specials = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    chars = [GEMMA_SPACE] + [c for c in string.printable if not c.isspace()]
    return _vocab([*specials, *byte_pieces, *chars], merges, ()), tuple(merges)


def gemma_tokenizer() -> GemmaTokenizer:
    """A Gemma tokenizer (BPE with byte fallback, ``<bos>`` prepended, ``<pad>`` 0) over the fixed words."""
    vocab, merges = _gemma_vocab_and_merges()
    return GemmaTokenizer(vocab=dict(vocab), merges=list(merges), add_bos_token=True, model_max_length=8192)


MISTRAL_SPECIALS = (
    "<unk>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[IMG]",
    "[IMG_BREAK]",
    "[IMG_END]",
    "<pad>",
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "[SYSTEM_PROMPT]{{ m['content'][0]['text'] }}[/SYSTEM_PROMPT]"
    "{% elif m['role'] == 'user' %}[INST]{{ m['content'][0]['text'] }}[/INST]{% endif %}{% endfor %}"
)


def mistral_processor() -> PixtralProcessor:
    """A Pixtral processor (Mistral-3's): byte-level BPE tokenizer over the fixed words, system/user chat
    template, the default Pixtral image processor."""
    words = llm_words()
    merges = bpe_merges([list(w) for w in words] + [[QWEN_SPACE, *w] for w in words])
    vocab = _vocab([*MISTRAL_SPECIALS, *_bytes_to_unicode()], merges, ())
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tok.add_special_tokens({"additional_special_tokens": list(MISTRAL_SPECIALS[3:10])})
    return PixtralProcessor(image_processor=PixtralImageProcessor(), tokenizer=tok, chat_template=MISTRAL_TEMPLATE)
