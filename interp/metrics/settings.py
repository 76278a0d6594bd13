"""Settings of the image metrics: where the weight files are, which variant of each metric, which device.

One frozen dataclass holds every choice that changes a score, so a store can record it next to the
scores (``Metric.version_info()`` returns the relevant fields). Design rules:

- The weights directory defaults to the environment variable ``INTERP_WEIGHTS_DIR``, read when a
  ``MetricSettings`` is *created* (``default_factory``), never at import, and never written by the
  library. Without it the default is ``~/.cache/interp/weights``.
- Every weight file can also be named explicitly by its own key (``hps_checkpoint=...`` and so on);
  these keys are the "settings keys" that error messages name when a file is missing.
- A Hugging Face cache directory is searched only when the user points to one (``hf_cache_dir``);
  nothing is ever downloaded (lookups use ``huggingface_hub.try_to_load_from_cache``, a pure file
  system lookup).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHTS_DIR_ENV = "INTERP_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = Path("~/.cache/interp/weights")

# Keys whose value is a file or folder path (the "settings keys" named in error messages).
PATH_KEYS = (
    "clip_checkpoint",
    "hps_checkpoint",
    "imagereward_checkpoint",
    "imagereward_med_config",
    "bert_tokenizer_dir",
    "alexnet_checkpoint",
    "inception_checkpoint",
    "blip2_dir",
)


def _default_weights_dir() -> Path:
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value).expanduser() if value else DEFAULT_WEIGHTS_DIR.expanduser()


def _as_path(value: Any) -> Path | None:
    if value is None:
        return None
    return Path(value).expanduser()


@dataclass(frozen=True)
class MetricSettings:
    """Every setting of the image metrics (see docs/metrics.md for the file layout).

    weights_dir: root of the local weight files (default: ``$INTERP_WEIGHTS_DIR`` at creation time,
        else ``~/.cache/interp/weights``).
    hf_cache_dir: a Hugging Face hub cache (``.../huggingface/hub``) to look files up in, read-only;
        ``None`` (default) means the HF cache is not searched.
    torch_home: a torch hub home (the folder holding ``hub/checkpoints``) to look torch-hub files
        (AlexNet, Inception) up in, read-only; ``None`` means not searched.
    device: ``"cuda"``, ``"cpu"``, ...; ``None`` picks CUDA when available.
    batch_size: images per forward pass.
    clip_model, clip_pretrained: open_clip architecture and pretrained tag of CLIP-T.
    hps_version: ``"v2.0"`` or ``"v2.1"``; hps_model: the open_clip architecture under the HPS
        checkpoint (``"ViT-H-14"``); hps_antialias: antialiasing of HPS's tensor resize (True is
        what the ``hpsv2`` package does with torchvision >= 0.17; False is torchvision < 0.17).
    imagereward_max_length: tokenizer max length of ImageReward (35 in the original code).
    lpips_net: LPIPS trunk (``"alex"``); lpips_size: both images are resized to this square size
        (bicubic) before LPIPS; ``None`` keeps the native size (pairs must then match in size).
    fid_antialias: torchmetrics' ``antialias`` of the resize to 299 px before Inception (True:
        bilinear with antialias; False: the TF1-compatible resize of the original FID code).
    kid_subsets, kid_subset_size: KID subsets and subset size (``None``: derived from set sizes).
    vqa_max_new_tokens: answer length of the optional BLIP-2 VQA probe.
    verify_hashes: check the sha256 of files whose hash is known (torch-hub files) before loading.
    *_checkpoint / *_config / *_dir: explicit paths overriding the default layout under weights_dir.
    """

    weights_dir: Path = field(default_factory=_default_weights_dir)
    hf_cache_dir: Path | None = None
    torch_home: Path | None = None
    device: str | None = None
    batch_size: int = 16

    clip_model: str = "ViT-L-14"
    clip_pretrained: str = "openai"
    clip_checkpoint: Path | None = None

    hps_version: str = "v2.1"
    hps_model: str = "ViT-H-14"
    hps_antialias: bool = True
    hps_checkpoint: Path | None = None

    imagereward_checkpoint: Path | None = None
    imagereward_med_config: Path | None = None
    bert_tokenizer_dir: Path | None = None
    imagereward_max_length: int = 35

    lpips_net: str = "alex"
    lpips_size: int | None = 512
    alexnet_checkpoint: Path | None = None

    fid_antialias: bool = True
    inception_checkpoint: Path | None = None
    kid_subsets: int = 100
    kid_subset_size: int | None = None

    blip2_dir: Path | None = None
    vqa_max_new_tokens: int = 10

    verify_hashes: bool = True

    def __post_init__(self) -> None:
        # Normalise paths (frozen: go through object.__setattr__).
        object.__setattr__(self, "weights_dir", Path(self.weights_dir).expanduser())
        for key in ("hf_cache_dir", "torch_home", *PATH_KEYS):
            object.__setattr__(self, key, _as_path(getattr(self, key)))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.hps_version not in ("v2.0", "v2.1"):
            raise ValueError(f"hps_version must be 'v2.0' or 'v2.1', got {self.hps_version!r}")
        if self.lpips_net not in ("alex",):
            raise ValueError(f"lpips_net {self.lpips_net!r} is not supported here (only 'alex')")
        if self.lpips_size is not None and self.lpips_size < 32:
            raise ValueError(f"lpips_size must be >= 32 or None, got {self.lpips_size}")
        if self.kid_subsets < 1:
            raise ValueError(f"kid_subsets must be >= 1, got {self.kid_subsets}")
        if self.kid_subset_size is not None and self.kid_subset_size < 2:
            raise ValueError(f"kid_subset_size must be >= 2 or None, got {self.kid_subset_size}")
        if self.imagereward_max_length < 2:
            raise ValueError("imagereward_max_length must be >= 2")

    def replace(self, **changes: Any) -> MetricSettings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def resolved_device(self) -> str:
        import torch

        if self.device is not None:
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def as_record(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The named fields as JSON-friendly values (paths as strings), for store attributes."""
        out: dict[str, Any] = {}
        for key in keys:
            value = getattr(self, key)
            out[key] = str(value) if isinstance(value, Path) else value
        return out
