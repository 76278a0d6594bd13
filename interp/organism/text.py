"""The organism's text side: a word-level tokenizer over the closed vocabulary and a small T5 encoder.

Design
------
The tokenizer is a ``tokenizers`` WordLevel model wrapped in transformers' fast-tokenizer class, built
in code from a fixed vocabulary (``[PAD] [BOS] [EOS] [UNK]`` then ``grammar.words()``), so two builds
are identical. It writes ``[BOS] words... [EOS]`` and pads with ``[PAD]`` (id 0, distinct from EOS) to
``MAX_LENGTH`` = 24 positions: a short caption is mostly padding, as SD3's text sequences are.

The encoder is transformers' ``T5EncoderModel`` (2 layers, width 128, bidirectional, no attention mask:
SD3's pipeline also runs T5 over its padding unmasked) trained jointly with the transformer. Its
per-token hidden states are the transformer's ``encoder_hidden_states``; the hidden state at the EOS
position is the ``pooled_projections`` (SD3 pools CLIP at its EOS token the same way).
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from interp.organism.grammar import words

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIALS = (PAD, BOS, EOS, UNK)
MAX_LENGTH = 24


def vocabulary() -> dict[str, int]:
    """Token -> id, fixed: specials first (``[PAD]`` = 0), then the grammar's words in order."""
    return {tok: i for i, tok in enumerate([*SPECIALS, *words()])}


def build_tokenizer(max_length: int = MAX_LENGTH) -> PreTrainedTokenizerFast:
    """The organism's tokenizer (deterministic; see module docstring)."""
    vocab = vocabulary()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=max_length,
        padding_side="right",
    )


def text_encoder_config(
    vocab_size: int, d_model: int = 128, num_layers: int = 2, num_heads: int = 4, d_ff: int = 512
) -> T5Config:
    return T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // num_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=16,
        relative_attention_max_distance=32,
        pad_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=0,
        is_encoder_decoder=False,
        use_cache=False,
    )


def build_text_encoder(config: T5Config) -> T5EncoderModel:
    return T5EncoderModel(config)


def tokenize(tokenizer: PreTrainedTokenizerFast, prompts: list[str], max_length: int = MAX_LENGTH) -> torch.Tensor:
    """(batch, max_length) int64 ids; ``ValueError`` for words outside the vocabulary or too-long prompts."""
    enc = tokenizer(prompts, padding="max_length", max_length=max_length, truncation=False, return_tensors=None)
    ids = enc["input_ids"]
    unk = tokenizer.unk_token_id
    for p, row in zip(prompts, ids, strict=True):
        if len(row) > max_length:
            raise ValueError(
                f"prompt {p!r} has {len(row)} tokens with BOS/EOS; the organism reads at most {max_length}"
            )
        if unk in row:
            bad = [w for w in p.split() if w not in tokenizer.get_vocab()]
            raise ValueError(f"prompt {p!r} has words outside the organism's vocabulary: {bad}")
    return torch.tensor(ids, dtype=torch.long)


def encode(
    text_encoder: T5EncoderModel, input_ids: torch.Tensor, eos_token_id: int, *, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states (batch, seq, d_model), pooled = hidden state at the first EOS (batch, d_model)).

    ``check=False`` skips the EOS check, which synchronises with the device (training loop).
    """
    hidden = text_encoder(input_ids=input_ids).last_hidden_state
    is_eos = input_ids == eos_token_id
    if check and not bool(is_eos.any(dim=1).all()):
        raise ValueError("every row of input_ids needs an EOS token")
    pos = is_eos.int().argmax(dim=1)
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), pos]
    return hidden, pooled
