"""CLIP-T: image-prompt alignment with an open_clip model, in the three conventions found in papers.

Outputs, per (image, prompt) pair, from the L2-normalised image and text embeddings:

- ``clip_t``: the raw cosine (the paper's CLIP-T), in [-1, 1];
- ``clipscore``: Hessel et al.'s CLIPScore, ``2.5 * max(cos, 0)``;
- ``clip_t_x100``: torchmetrics' ``CLIPScore`` convention, ``100 * max(cos, 0)``.

The model is an open_clip built-in architecture (``settings.clip_model``, default ``ViT-L-14``) with
the weights of a pretrained tag (``settings.clip_pretrained``, default ``openai``), read from a local
file: ``open_clip.create_model_and_transforms(name, pretrained=<local file>)`` is open_clip's own
loading path (strict key matching). Given a file path instead of a tag, open_clip would fall back to
its generic preprocessing and GELU, so the tag's own settings (QuickGELU for OpenAI weights, mean,
std, interpolation, resize mode) are looked up with ``open_clip.get_pretrained_cfg`` and passed in.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from interp.metrics.base import Metric, batches, check_images, check_prompts, import_clean
from interp.metrics.settings import MetricSettings
from interp.metrics.weights import CorruptWeightsError, file_record, resolve_clip

_PREPROCESS_KEYS = {
    "mean": "image_mean",
    "std": "image_std",
    "interpolation": "image_interpolation",
    "resize_mode": "image_resize_mode",
}


def check_offline_tokenizer(model_name: str) -> None:
    """Refuse architectures whose tokenizer open_clip would fetch from the hub."""
    open_clip = import_clean("open_clip")

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ValueError(f"open_clip has no architecture {model_name!r}; see open_clip.list_models()")
    if cfg.get("text_cfg", {}).get("hf_tokenizer_name") or "siglip" in model_name.lower():
        raise ValueError(
            f"open_clip architecture {model_name!r} uses a Hugging Face tokenizer that would be downloaded; "
            "only architectures with open_clip's bundled BPE tokenizer are supported offline"
        )


def encode_texts(model, tokenizer, prompts: list[str], device: str, batch_size: int) -> torch.Tensor:
    out = []
    for sl in batches(len(prompts), batch_size):
        tokens = tokenizer(prompts[sl]).to(device)
        out.append(model.encode_text(tokens, normalize=True).float())
    return torch.cat(out)


def encode_images(model, preprocess, images: list[Image.Image], device: str, batch_size: int) -> torch.Tensor:
    out = []
    for sl in batches(len(images), batch_size):
        pixels = torch.stack([preprocess(im) for im in images[sl]]).to(device)
        out.append(model.encode_image(pixels, normalize=True).float())
    return torch.cat(out)


class CLIPT(Metric):
    name = "clip_t"
    outputs = {
        "clip_t": "cosine of L2-normalised open_clip image and text embeddings (paper's CLIP-T), [-1, 1]",
        "clipscore": "Hessel et al. 2021 CLIPScore: 2.5 * max(cosine, 0)",
        "clip_t_x100": "torchmetrics CLIPScore convention: 100 * max(cosine, 0)",
    }
    packages = ("torch", "torchvision", "open_clip_torch")
    setting_keys = ("clip_model", "clip_pretrained")

    def __init__(self, settings: MetricSettings) -> None:
        super().__init__(settings)
        open_clip = import_clean("open_clip")

        name, tag = settings.clip_model, settings.clip_pretrained
        check_offline_tokenizer(name)
        tag_cfg = open_clip.get_pretrained_cfg(name, tag) if tag else {}
        if tag and not tag_cfg:
            raise ValueError(
                f"open_clip has no pretrained tag {tag!r} for {name!r}; "
                f"known tags: {open_clip.list_pretrained_tags_by_model(name)}"
            )
        path = resolve_clip(settings, name, tag)
        overrides = {arg: tag_cfg[k] for k, arg in _PREPROCESS_KEYS.items() if tag_cfg.get(k) is not None}
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name,
                pretrained=str(path),
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                device=self.device,
                weights_only=True,
                **overrides,
            )
        except (RuntimeError, KeyError, ValueError, AssertionError, pickle.UnpicklingError) as exc:
            raise CorruptWeightsError(
                f"Could not load {path} (settings key 'clip_checkpoint') into open_clip {name!r}: {exc}. "
                "Expected the open_clip state dict published on the tag's HF repository "
                "(open_clip_model.safetensors), not a TorchScript archive."
            ) from exc
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(name)
        self.weight_files = {"clip_checkpoint": file_record(path)}
        self.preprocess_cfg = dict(self.model.visual.preprocess_cfg)
        self.quick_gelu = bool(tag_cfg.get("quick_gelu", False))

    def cosine(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        images = check_images(images)
        prompts = check_prompts(prompts, len(images))
        bs = self.settings.batch_size
        with torch.inference_mode():
            img = encode_images(self.model, self.preprocess, images, self.device, bs)
            txt = encode_texts(self.model, self.tokenizer, prompts, self.device, bs)
            cos = (img * txt).sum(dim=-1)
        return cos.cpu().numpy().astype(np.float64)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, np.ndarray]:
        cos = self.cosine(images, prompts)
        pos = np.maximum(cos, 0.0)
        return {"clip_t": cos, "clipscore": 2.5 * pos, "clip_t_x100": 100.0 * pos}

    def version_info(self) -> dict:
        info = super().version_info()
        info["settings"]["quick_gelu"] = self.quick_gelu
        info["settings"]["preprocess"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.preprocess_cfg.items()
        }
        return info
