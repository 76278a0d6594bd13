"""Tokenizers built in code for the built-in offline pipelines.

No file is downloaded. Both tokenizers are the ordinary ``transformers`` classes the real checkpoints use
(``CLIPTokenizer`` and ``T5Tokenizer``, which in transformers 5 are the ``tokenizers``-backed "fast"
classes), so ``pipe.tokenizer(prompt)`` gives real ids and ``convert_ids_to_tokens`` readable strings.

Determinism is the design constraint: two constructions must give identical vocabularies, or the images of
two builds of the same pipeline differ. So nothing here is trained by a library trainer (``tokenizers``'
trainers break ties in an order that is not guaranteed across calls); vocabularies come from a FIXED word
list (every word of the GenEval prompts shipped in ``interp/data/geneval`` plus a short fixed tuple) and
are derived by plain Python with explicit, sorted tie-breaking.

- CLIP: byte-level BPE laid out like OpenAI's CLIP vocabulary: the 256 byte symbols, the same with the
  end-of-word suffix ``</w>``, then one token per merge, then ``<|startoftext|>`` and ``<|endoftext|>`` at
  the two highest ids. The merges are found by a deterministic BPE simulation on the word list (each word
  once; most frequent pair first, ties broken by the pair's strings) until every word is a single
  ``word</w>`` token, so every word of the list encodes to one whole-word token. The first CLIP tokenizer of
  SD3/SDXL/Flux pads with its end-of-text token; the second (CLIP-G, ``tokenizer_2`` of SD3 and SDXL) pads
  with ``"!"`` (id 0), as the real checkpoints do.
- T5: a SentencePiece-style Unigram vocabulary: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2 (T5's layout), one
  ``▁word`` piece per listed word, and single-character pieces (with and without ``▁``) for every printable
  ASCII character, so any ASCII prompt tokenizes without ``<unk>``. Fixed scores make Viterbi prefer the
  whole word.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections import Counter
from importlib import resources

from transformers import CLIPTokenizer, T5Tokenizer

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512  # the real T5 tokenizers' model_max_length; pipelines pass their own max_sequence_length
END_OF_WORD = "</w>"
T5_SPACE = "\u2581"  # SentencePiece's word-boundary marker "▁"

# A few common words beyond GenEval's, so short demo prompts ("a photo of a cat on the table") stay whole.
EXTRA_WORDS: tuple[str, ...] = (
    "at", "behind", "in", "is", "next", "on", "painting", "picture", "sitting", "standing", "the", "to",
    "with",
)  # fmt: skip


@functools.cache
def word_list() -> tuple[str, ...]:
    """The fixed, sorted word list of both tokenizers: the GenEval prompts' words + ``EXTRA_WORDS``."""
    text = resources.files("interp.data").joinpath("geneval/evaluation_metadata.jsonl").read_text("utf-8")
    words = set(EXTRA_WORDS)
    for line in text.splitlines():
        if line.strip():
            words.update(re.findall(r"[a-z]+", json.loads(line)["prompt"].lower()))
    return tuple(sorted(words))


@functools.cache
def _bytes_to_unicode() -> tuple[str, ...]:
    """Symbol of each byte 0..255, in CLIP/GPT-2 vocabulary order (printable bytes first, then the rest).

    Written out because transformers 5 no longer exposes GPT-2's helper publicly; this is the standard
    mapping that ``tokenizers``' ByteLevel pre-tokenizer applies.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    order, symbols = list(printable), [chr(b) for b in printable]
    extra = 0
    for b in range(256):
        if b not in printable:
            order.append(b)
            symbols.append(chr(256 + extra))
            extra += 1
    return tuple(symbols)


@functools.cache
def _clip_vocab_and_merges() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Vocabulary (in id order, specials last) and merges (in rank order) of the built-in CLIP tokenizer.

    A deterministic BPE simulation rather than ``tokenizers.trainers.BpeTrainer``: the library trainer's
    tie-breaking is not specified, and a byte-for-byte stable vocabulary is the whole point here.
    """
    alphabet = _bytes_to_unicode()
    vocab = list(alphabet) + [s + END_OF_WORD for s in alphabet]
    known = set(vocab)
    # Every word is lowercase ASCII letters, which the byte-level map leaves unchanged.
    words = [list(w[:-1]) + [w[-1] + END_OF_WORD] for w in word_list()]
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols in words:
            pairs.update(zip(symbols, symbols[1:], strict=False))
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = best[0] + best[1]
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        for i, symbols in enumerate(words):
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and (symbols[j], symbols[j + 1]) == best:
                    out.append(merged)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            words[i] = out
    vocab += [CLIP_BOS, CLIP_EOS]
    return tuple(vocab), tuple(merges)


def clip_tokenizer(pad_token: str = CLIP_EOS) -> CLIPTokenizer:
    """A CLIP tokenizer (byte-level BPE, 77 tokens) over the fixed word list.

    ``pad_token=CLIP_EOS`` (default) is CLIP-L's convention; pass ``"!"`` for CLIP-G (SD3/SDXL
    ``tokenizer_2``). Either way the end-of-text token appears once, right after the prompt, and is told
    apart from end-of-text padding by position.
    """
    vocab, merges = _clip_vocab_and_merges()
    if pad_token not in vocab:
        raise ValueError(f"pad_token {pad_token!r} is not in the built-in CLIP vocabulary")
    return CLIPTokenizer(
        vocab={tok: i for i, tok in enumerate(vocab)},
        merges=list(merges),
        pad_token=pad_token,
        model_max_length=CLIP_MAX_LENGTH,
    )


@functools.cache
def _t5_pieces() -> tuple[tuple[str, float], ...]:
    """Unigram pieces and scores, in id order: T5's three specials, the words, then single characters."""
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), (T5_SPACE, -5.0)]
    pieces += [(T5_SPACE + w, -1.0) for w in word_list()]
    chars = [c for c in string.printable if not c.isspace()]
    pieces += [(c, -10.0) for c in chars] + [(T5_SPACE + c, -10.0) for c in chars]
    seen: set[str] = set()
    unique = []
    for piece, score in pieces:  # a one-letter word ("a") is also a character piece: keep the first
        if piece not in seen:
            seen.add(piece)
            unique.append((piece, score))
    return tuple(unique)


def t5_tokenizer() -> T5Tokenizer:
    """A T5 tokenizer (Unigram, ``</s>`` appended, ``<pad>`` id 0) over the fixed word list, no sentinels."""
    return T5Tokenizer(vocab=list(_t5_pieces()), extra_ids=0, model_max_length=T5_MAX_LENGTH)
