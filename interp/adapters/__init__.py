"""Architecture adapters: one model family per module, chosen by the pipeline's class.

``adapter_for(pipe)`` returns the adapter of a supported pipeline or raises ``UnsupportedPipeline``
with the list of supported classes. Adapters register themselves in ``ADAPTERS`` (order matters only
if two could match the same class, which none do).
"""

from __future__ import annotations

from typing import Any

from interp.adapters.base import Adapter, SiteInfo, TokenLayout
from interp.adapters.chroma import ChromaAdapter
from interp.adapters.cogvideox import CogVideoXAdapter
from interp.adapters.flux import FluxAdapter
from interp.adapters.flux2 import Flux2Adapter
from interp.adapters.generic import GenericAdapter
from interp.adapters.hunyuanvideo15 import HunyuanVideo15Adapter
from interp.adapters.organism import OrganismAdapter
from interp.adapters.pixart import PixArtAdapter
from interp.adapters.qwenimage import QwenImageAdapter
from interp.adapters.sana import SanaAdapter
from interp.adapters.sd3 import SD3Adapter
from interp.adapters.sdxl import SDXLAdapter
from interp.adapters.wan import WanAdapter

ADAPTERS: list[type[Adapter]] = [
    SD3Adapter,
    SDXLAdapter,
    FluxAdapter,
    PixArtAdapter,
    OrganismAdapter,
    ChromaAdapter,
    SanaAdapter,
    Flux2Adapter,
    QwenImageAdapter,
    WanAdapter,  # video families
    CogVideoXAdapter,
    HunyuanVideo15Adapter,
    GenericAdapter,  # last: it matches any transformer with a known SDPA processor
]


class UnsupportedPipeline(TypeError):
    """The object is not a pipeline any adapter describes."""


def supported_pipelines() -> list[str]:
    return sorted(c for a in ADAPTERS for c in a.pipeline_classes)


def adapter_for(pipe: Any) -> Adapter:
    for cls in ADAPTERS:
        if cls.matches(pipe):
            return cls()
    raise UnsupportedPipeline(
        f"{type(pipe).__name__} is not a supported pipeline; supported: {', '.join(supported_pipelines())}"
    )


__all__ = ["Adapter", "SiteInfo", "TokenLayout", "adapter_for", "supported_pipelines", "UnsupportedPipeline"]
