"""Seeded random weights with the real layout of a checkpoint, for offline tests and parity fixtures.

Real metric weights cannot be downloaded on the development and CI machines, so tests write a
*fabricated* checkpoint (every key and shape of the released file, random values) and load it through
the metric's real loading path. The same function runs in the isolated reference environments that
produced the parity fixtures (``tests/fixtures/metrics/make_metric_fixtures.py``), so both sides see
bit-identical weights without shipping them.

Design: each tensor is drawn from its own ``torch.Generator`` seeded by ``crc32(seed/name)``, so a
tensor's values depend only on the seed, its name and its shape (never on the order in which a model
class happens to create its parameters). Scales are variance preserving, so features do not collapse
to ~0 through depth: weights with fan-in ``n`` get std ``1/sqrt(n)``; norm scales ``1 + 0.1 N``;
biases ``0.1 N``; BatchNorm running variances are positive; CLIP-style projection matrices used as
``x @ P`` take their fan-in from the first axis. Only torch is imported here.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping

import torch

# Parameters applied as ``x @ P`` (fan-in is the first axis), by exact name or suffix.
_RIGHT_MULTIPLIED = ("text_projection", "visual.proj", "proj")


def _generator(seed: int, name: str) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(zlib.crc32(f"{seed}/{name}".encode()))
    return g


def fabricate_tensor(name: str, shape: Iterable[int], seed: int = 0, dtype: torch.dtype = torch.float32):
    """One tensor of the given name and shape (values depend only on seed, name and shape)."""
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.long)
    if leaf == "position_ids":
        return torch.arange(shape[-1], dtype=torch.long).expand(shape).clone()
    g = _generator(seed, name)
    if leaf == "logit_scale":
        return torch.full(shape, math.log(1 / 0.07), dtype=dtype)
    if leaf == "logit_bias":
        return torch.zeros(shape, dtype=dtype)
    if leaf == "running_var":
        return (0.5 + torch.rand(shape, generator=g)).to(dtype)
    if leaf == "running_mean":
        return (0.1 * torch.randn(shape, generator=g)).to(dtype)
    noise = torch.randn(shape, generator=g)
    if len(shape) <= 1:
        if leaf in ("bias", "b") or leaf.endswith("_bias"):
            return (0.1 * noise).to(dtype)
        if leaf in ("weight", "gamma", "scale"):
            return (1.0 + 0.1 * noise).to(dtype)
        # 1-D embeddings (class tokens and the like).
        return (noise / math.sqrt(max(shape[0] if shape else 1, 1))).to(dtype)
    if len(shape) == 2 and (leaf in _RIGHT_MULTIPLIED or name in _RIGHT_MULTIPLIED):
        fan_in = shape[0]
    else:
        fan_in = math.prod(shape[1:])
    if leaf in ("pos_embed", "cls_token", "position_embedding", "class_embedding", "positional_embedding"):
        # Position / class embeddings of ViTs: (1, N, D) or (N, D); scale by the width.
        fan_in = shape[-1]
    return (noise / math.sqrt(max(fan_in, 1))).to(dtype)


def fabricate_state_dict(
    shapes: Mapping[str, Iterable[int] | torch.Tensor], seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """A state dict with the given keys and shapes (a model's ``state_dict()`` works, meta tensors too)."""
    out = {}
    for name, value in shapes.items():
        shape = value.shape if isinstance(value, torch.Tensor) else value
        t = fabricate_tensor(name, shape, seed=seed, dtype=dtype)
        if isinstance(value, torch.Tensor) and not value.is_floating_point() and t.is_floating_point():
            raise ValueError(f"Do not know how to fabricate integer tensor {name!r}")
        out[name] = t
    return out


def fabricate_like(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Fabricated weights for every key of ``module.state_dict()`` (dtype of each entry kept)."""
    sd = module.state_dict()
    out = {}
    for name, value in sd.items():
        t = fabricate_tensor(name, value.shape, seed=seed)
        out[name] = t.to(value.dtype) if t.is_floating_point() and value.is_floating_point() else t
    return out


BERT_VOCAB_SIZE = 30522  # bert-base-uncased; BLIP adds [DEC] and [ENC] -> 30524 embedding rows
_WORDS = [
    "a", "an", "the", "of", "on", "in", "at", "to", "and", "with", "without", "is", "are", "two",
    "three", "four", "five", "red", "green", "blue", "yellow", "black", "white", "brown", "orange",
    "purple", "pink", "gray", "photo", "painting", "picture", "drawing", "cat", "dog", "dogs", "cats",
    "bird", "car", "bicycle", "bench", "table", "wooden", "apple", "banana", "pizza", "cake", "chair",
    "couch", "bed", "tv", "laptop", "mouse", "keyboard", "phone", "book", "clock", "vase", "left",
    "right", "above", "below", "next", "behind", "front", "top", "bottom", "near", "far", "snow",
    "rain", "sun", "sunset", "sky", "sea", "beach", "mountain", "cliff", "lighthouse", "tree", "flower",
    "grass", "city", "street", "house", "road", "river", "close", "up", "detailed", "extremely", "oil",
    "playing", "sitting", "standing", "running", "mat", "man", "woman", "person", "people", "child",
    "old", "young", "small", "large", "big"
]


def fabricate_bert_vocab() -> list[str]:
    """A WordPiece vocabulary of bert-base-uncased's size and special-token ids ([PAD]=0, [UNK]=100,
    [CLS]=101, [SEP]=102, [MASK]=103): letters, digits, punctuation, their ``##`` forms and a few
    words, then filler. Only the layout matters: real weights come with the real vocabulary."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    vocab += chars + ["##" + c for c in chars if c.isalnum()]
    vocab += [w for w in dict.fromkeys(_WORDS) if w not in vocab]
    n = 99
    while len(vocab) < BERT_VOCAB_SIZE:
        vocab.append(f"[unused{n}]")
        n += 1
    return vocab


BLIP_MED_CONFIG = {
    # BLIP's configs/med_config.json, the file ImageReward publishes as med_config.json.
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30524,
    "encoder_width": 768,
    "add_cross_attention": True,
}
