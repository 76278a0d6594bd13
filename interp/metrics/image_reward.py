"""ImageReward v1.0, ported onto transformers' BLIP modules, with a key map for the released checkpoint.

The ``image-reward`` 1.5 package cannot share an environment with this project (it needs
transformers <= 4.55.4, huggingface-hub < 1, timm 0.6.13 and an undeclared ``clip`` package), so its
model is rebuilt here from maintained parts, and its scoring path is kept exactly:

- image tower: BLIP's ViT (ViT-L/16 at 224 px for the release; LayerNorm eps 1e-6, exact GELU, fused
  qkv with bias) is ``transformers.BlipVisionModel`` (its ``last_hidden_state`` is after the final
  LayerNorm, as BLIP's ``visual_encoder`` output);
- text tower: BLIP's "MED" BERT-base with cross-attention to the image tokens is
  ``transformers.BlipTextModel`` (configured with ``is_decoder=True`` so each layer has its
  cross-attention, and called with ``is_decoder=False``: bidirectional self-attention, BLIP's
  "multimodal" mode), built from the release's ``med_config.json`` with ``encoder_width`` set to the
  ViT width, as ImageReward does;
- head: ImageReward's MLP 768-1024-128-64-16-1 (no activations; dropouts are inactive in eval),
  written out below with the same ``nn.Sequential`` indices so its keys match;
- scoring: bert-base-uncased tokenizer (plus BLIP's [DEC] / [ENC] special tokens), ``padding=
  "max_length", truncation=True, max_length=35``; the first token kept as [CLS] (not replaced by
  [ENC]); the reward is the MLP of the text tower's first-token state, normalised as
  ``(r - 0.16717362830052426) / 1.0333394966054072``; images are ``Resize(224, bicubic)``,
  ``CenterCrop(224)``, RGB, ``ToTensor``, CLIP mean/std; inference mode.

The ViT shape (width, depth, patch, image size) is read from the checkpoint; heads are width / 64, as
in BLIP's ``create_vit`` (base 768/12, large 1024/16). Keys are matched strictly: every key of the
checkpoint must map to a key of the port (or be one of BLIP's unused ``vision_proj`` / ``text_proj``
or the ``position_ids`` buffer, which must equal ``arange``) and every key of the port must be filled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from interp.metrics.base import Metric, batches, check_images, check_prompts
from interp.metrics.settings import MetricSettings
from interp.metrics.weights import (
    BERT_TOKENIZER,
    IMAGEREWARD_CHECKPOINT,
    IMAGEREWARD_MED_CONFIG,
    CorruptWeightsError,
    file_record,
    load_torch_state_dict,
    resolve,
)

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VIT_HEAD_DIM = 64

_VIT_BLOCK = re.compile(r"blocks\.(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)")
_VIT_BLOCK_MAP = {
    "norm1": "layer_norm1",
    "attn.qkv": "self_attn.qkv",
    "attn.proj": "self_attn.projection",
    "norm2": "layer_norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_VIT_STATIC = {
    "cls_token": "embeddings.class_embedding",
    "pos_embed": "embeddings.position_embedding",
    "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
    "norm.weight": "post_layernorm.weight",
    "norm.bias": "post_layernorm.bias",
}
# Keys of the released checkpoint that ImageReward's scoring never uses.
UNUSED_PREFIXES = ("blip.vision_proj.", "blip.text_proj.")
POSITION_IDS = "blip.text_encoder.embeddings.position_ids"


class RewardHead(nn.Module):
    """ImageReward's MLP (``ImageReward.MLP``), same layer indices so checkpoint keys match."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def original_to_port_key(key: str) -> str | None:
    """Name in the port of a key of the released ImageReward.pt (None: not used by the scorer)."""
    if key.startswith("blip.visual_encoder."):
        rest = key[len("blip.visual_encoder.") :]
        if rest in _VIT_STATIC:
            return "vision." + _VIT_STATIC[rest]
        m = _VIT_BLOCK.fullmatch(rest)
        if m:
            return f"vision.encoder.layers.{m[1]}.{_VIT_BLOCK_MAP[m[2]]}.{m[3]}"
    elif key == POSITION_IDS or key.startswith(UNUSED_PREFIXES):
        return None
    elif key.startswith("blip.text_encoder."):
        return "text." + key[len("blip.text_encoder.") :]
    elif key.startswith("mlp.layers."):
        return key
    raise KeyError(f"unexpected key {key!r} in the ImageReward checkpoint")


def port_to_original_key(key: str) -> str:
    """Inverse of ``original_to_port_key`` (used to write checkpoints in the released layout)."""
    if key.startswith("vision."):
        rest = key[len("vision.") :]
        for orig, port in _VIT_STATIC.items():
            if rest == port:
                return "blip.visual_encoder." + orig
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(\w+\.\w+|\w+)\.(weight|bias)", rest)
        inv = {v: k for k, v in _VIT_BLOCK_MAP.items()}
        if m and m[2] in inv:
            return f"blip.visual_encoder.blocks.{m[1]}.{inv[m[2]]}.{m[3]}"
    elif key.startswith("text."):
        return "blip.text_encoder." + key[len("text.") :]
    elif key.startswith("mlp."):
        return key
    raise KeyError(f"no released-checkpoint name for port key {key!r}")


def vit_config_from_state_dict(sd: dict[str, torch.Tensor]):
    """BlipVisionConfig of the checkpoint's ViT (BLIP ViT: eps 1e-6, exact GELU, heads = width / 64)."""
    from transformers import BlipVisionConfig

    prefix = "blip.visual_encoder."
    try:
        patch_w = sd[prefix + "patch_embed.proj.weight"]
        pos = sd[prefix + "pos_embed"]
        fc1 = sd[prefix + "blocks.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise CorruptWeightsError(f"ImageReward checkpoint lacks {exc.args[0]!r}") from exc
    width, patch = patch_w.shape[0], patch_w.shape[-1]
    depth = len({k.split(".")[3] for k in sd if k.startswith(prefix + "blocks.")})
    grid = round((pos.shape[1] - 1) ** 0.5)
    if grid * grid != pos.shape[1] - 1 or width % VIT_HEAD_DIM:
        raise CorruptWeightsError(f"unexpected ViT shapes in the ImageReward checkpoint: pos {tuple(pos.shape)}")
    return BlipVisionConfig(
        hidden_size=width,
        intermediate_size=fc1.shape[0],
        num_hidden_layers=depth,
        num_attention_heads=width // VIT_HEAD_DIM,
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        attention_dropout=0.0,
    )


def text_config_from_med(med: dict, encoder_width: int):
    """BlipTextConfig equivalent to BLIP's MED BertConfig (``med_config.json``)."""
    from transformers import BlipTextConfig

    if not med.get("add_cross_attention", False):
        raise ValueError("med_config.json must have add_cross_attention=true (BLIP's MED text encoder)")
    if med.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported (BLIP's MED)")
    return BlipTextConfig(
        vocab_size=med["vocab_size"],
        hidden_size=med["hidden_size"],
        encoder_hidden_size=encoder_width,
        intermediate_size=med["intermediate_size"],
        num_hidden_layers=med["num_hidden_layers"],
        num_attention_heads=med["num_attention_heads"],
        max_position_embeddings=med["max_position_embeddings"],
        hidden_act=med["hidden_act"],
        layer_norm_eps=med["layer_norm_eps"],
        hidden_dropout_prob=med["hidden_dropout_prob"],
        attention_probs_dropout_prob=med["attention_probs_dropout_prob"],
        pad_token_id=med["pad_token_id"],
        is_decoder=True,  # builds the cross-attention of every layer; forward runs with is_decoder=False
    )


class ImageRewardModel(nn.Module):
    """BLIP ViT + MED text encoder with cross-attention + reward MLP (transformers' BLIP modules)."""

    def __init__(self, vision_config, text_config) -> None:
        super().__init__()
        from transformers import BlipTextModel, BlipVisionModel

        self.vision = BlipVisionModel(vision_config)
        self.text = BlipTextModel(text_config, add_pooling_layer=False)
        self.mlp = RewardHead(text_config.hidden_size)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        image_embeds = self.vision(pixel_values=pixel_values).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.text(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_atts,
            is_decoder=False,
        )
        features = out.last_hidden_state[:, 0, :].float()  # first token: [CLS]
        rewards = self.mlp(features)
        return ((rewards - REWARD_MEAN) / REWARD_STD).squeeze(-1)


def port_state_dict(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map a released-layout state dict onto ``model`` with strict checks (keys and shapes)."""
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in sd.items():
        try:
            new = original_to_port_key(key)
        except KeyError:
            unexpected.append(key)
            continue
        if key == POSITION_IDS and not torch.equal(value.flatten(), torch.arange(value.numel())):
            raise CorruptWeightsError(f"{key} is not arange(n); this port assumes absolute positions 0..n-1")
        if new is not None:
            mapped[new] = value
    missing = sorted(set(target) - set(mapped) - _non_persistent(model))
    extra = sorted(set(mapped) - set(target))
    if unexpected or missing or extra:
        raise CorruptWeightsError(
            "ImageReward checkpoint does not match the architecture: "
            f"unexpected keys {unexpected[:5] + extra[:5]}, missing keys {missing[:5]} "
            f"({len(unexpected) + len(extra)} unexpected, {len(missing)} missing)"
        )
    bad = [k for k, v in mapped.items() if tuple(v.shape) != tuple(target[k].shape)]
    if bad:
        raise CorruptWeightsError(
            "ImageReward checkpoint shape mismatch (key, checkpoint, model): "
            f"{[(k, tuple(mapped[k].shape), tuple(target[k].shape)) for k in bad[:5]]}"
        )
    return mapped


def _non_persistent(model: nn.Module) -> set[str]:
    names = set()
    for mod_name, module in model.named_modules():
        for buf in getattr(module, "_non_persistent_buffers_set", ()):
            names.add(f"{mod_name}.{buf}" if mod_name else buf)
    return names


def build_preprocess(size: int):
    """ImageReward's ``_transform(n_px)``, with torchvision's maintained transforms."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose(
        [
            Resize(size, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(size),
            lambda image: image.convert("RGB"),
            ToTensor(),
            Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def load_blip_tokenizer(folder: Path):
    """bert-base-uncased with BLIP's extra tokens ([DEC] as bos, [ENC] additional), from a local folder."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


class ImageReward(Metric):
    name = "image_reward"
    outputs = {"image_reward": "ImageReward v1.0 reward, normalised (r - 0.16717) / 1.03334 as released"}
    packages = ("torch", "torchvision", "transformers", "tokenizers")
    setting_keys = ("imagereward_max_length",)

    def __init__(self, settings: MetricSettings) -> None:
        super().__init__(settings)
        ckpt_path = resolve(IMAGEREWARD_CHECKPOINT, settings)
        med_path = resolve(IMAGEREWARD_MED_CONFIG, settings)
        tok_dir = resolve(BERT_TOKENIZER, settings)
        sd = load_torch_state_dict(ckpt_path, IMAGEREWARD_CHECKPOINT)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        vision_config = vit_config_from_state_dict(sd)
        med = json.loads(med_path.read_text(encoding="utf-8"))
        text_config = text_config_from_med(med, vision_config.hidden_size)
        model = ImageRewardModel(vision_config, text_config)
        model.load_state_dict(port_state_dict(sd, model), strict=True)
        del sd
        self.model = model.to(self.device).eval()
        self.tokenizer = load_blip_tokenizer(tok_dir)
        if len(self.tokenizer) > text_config.vocab_size:
            raise ValueError(
                f"tokenizer in {tok_dir} has {len(self.tokenizer)} tokens, more than the model's "
                f"{text_config.vocab_size} embeddings"
            )
        self.preprocess = build_preprocess(vision_config.image_size)
        self.weight_files = {
            "imagereward_checkpoint": file_record(ckpt_path),
            "imagereward_med_config": file_record(med_path),
            "bert_tokenizer_dir": {"path": str(tok_dir)},
        }

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=self.settings.imagereward_max_length,
            return_tensors="pt",
        )

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, np.ndarray]:
        images = check_images(images)
        prompts = check_prompts(prompts, len(images))
        out = []
        with torch.inference_mode():
            for sl in batches(len(images), self.settings.batch_size):
                tokens = self.tokenize(prompts[sl])
                pixels = torch.stack([self.preprocess(im) for im in images[sl]]).to(self.device)
                rewards = self.model(
                    pixels, tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
                )
                out.append(rewards.float().cpu())
        return {"image_reward": torch.cat(out).numpy().astype(np.float64)}
