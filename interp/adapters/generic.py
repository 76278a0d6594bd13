"""The generic adapter: any diffusers transformer whose attention ends in SDPA, with generic labels.

Design
------
A family adapter knows its model; this one knows only what every diffusers transformer shares, so that
a model without a family adapter can still be traced exactly (the statistics and edits need only the
q, k, v at SDPA, which are the model's own) while its *labels* stay generic. It is the last entry of
the registry: ``adapter_for`` reaches it only when no family adapter describes the pipeline.

- **Sites, found automatically**: every module of ``pipe.transformer`` whose ``processor`` is one of
  ``processors`` (processors whose source ends in one ``F.scaled_dot_product_attention`` call or one
  ``dispatch_attention_fn`` call: their sites are then checked like any other, and a forward that does
  not call SDPA exactly once is refused). Blocks are numbered in module order; kind ``joint`` (the
  module has context projections ``add_k_proj``), ``cross`` (``is_cross_attention``) or ``self``;
  groups ``all`` and one per kind. Each site has its own key and query layout (named by its path),
  built from the key count it sees.
- **Keys labelled by stream only**: the denoiser's latent input gives the number of latent tokens
  (``(H / patch) x (W / patch)`` of a 4-D latent, ``N`` of a packed one); a site with exactly that many
  keys sees latent keys (modality ``image``, encoder ``latent``); a site with more sees a joint
  sequence, ``[context, latent]`` with the surplus as context (text-side tokens: the encoder's, plus any
  register tokens the model adds to them); a site with as many keys as ``encoder_hidden_states`` has
  tokens sees context keys (modality ``text``, encoder ``context``). Token ids and strings are unknown
  (-1, ``"?"``), image rows and columns too (-1), and nothing is predicted before generation
  (``planned_layout`` is None: edit budgets are checked at the first call).
- **Branches by diffusers' conventions**: an even batch at the first call is ``[uncond, cond]`` halves
  (batched CFG); separate calls are cond first, then uncond (the modern pipelines' ``cache_context``
  order).

``GENERIC_NOTE`` says this to the user: it is emitted as a warning when a trace resolves its sites.
The built-in pipelines of the tested families (AuraFlow, Lumina 2) are in ``interp.pipelines.generic``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from interp.adapters.base import (
    IMAGE,
    TEXT,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    image_layout,
    unknown_text_layout,
)

GENERIC_NOTE = (
    "{cls} has no family adapter: interp traces it with the generic adapter. Its attention sites were found "
    "automatically and the statistics are exact, but the labels are generic: keys are 'context' (text side) "
    "or 'latent' (the denoiser's own tokens) by position only, joint sequences assumed [context, latent], "
    "with no token strings and no image coordinates; CFG branches follow diffusers' conventions (batched "
    "[uncond, cond] halves; separate calls cond first)."
)
LATENT, CONTEXT = "latent", "context"
TIMESTEPS: dict[str, tuple[str, float]] = {
    "AuraFlowPipeline": ("divided", 1000.0),  # timestep = t / 1000
    "Lumina2Pipeline": ("reversed", 1000.0),  # timestep = 1 - t / num_train_timesteps
    "ZImagePipeline": ("reversed", 1000.0),  # timestep = (1000 - t) / 1000
}
"""How known pipelines pass the scheduler's timestep to the denoiser (the step clock checks it): a
pipeline not listed is assumed to pass it unchanged, and the clock refuses a call that does not match."""


def latent_layout(n: int) -> TokenLayout:
    """``n`` latent tokens without coordinates."""
    lay = image_layout(1, n)
    lay.encoder = np.full(n, LATENT, dtype=object).astype(str)
    lay.image_row = np.full(n, -1, np.int64)
    lay.image_col = np.full(n, -1, np.int64)
    return lay


class GenericAdapter(Adapter):
    name = "generic"
    # the families the generic path is tested on (it also matches any pipeline whose transformer uses
    # one of ``processors``: ``matches``)
    pipeline_classes = ("AuraFlowPipeline", "Lumina2Pipeline")
    processors = (
        "AuraFlowAttnProcessor2_0",
        "Lumina2AttnProcessor2_0",
        "CogView4AttnProcessor",
        "HiDreamAttnProcessor",
        "ZSingleStreamAttnProcessor",
        "OvisImageAttnProcessor",
    )
    dispatch_processors = ("ZSingleStreamAttnProcessor", "OvisImageAttnProcessor")
    tiny_module = "generic"
    tiny_variants = ("auraflow", "lumina2")

    def __init__(self) -> None:
        self._patch = 1
        self._n_latent: int | None = None
        self._n_context: int | None = None
        self._warned = False
        self._timesteps = "same"
        self.timestep_scale = 1.0

    @classmethod
    def matches(cls, pipe: Any) -> bool:
        if type(pipe).__name__ in cls.pipeline_classes:
            return True
        denoiser = getattr(pipe, cls.denoiser_attr, None)
        if not isinstance(denoiser, torch.nn.Module):
            return False
        return any(type(getattr(m, "processor", None)).__name__ in cls.processors for m in denoiser.modules())

    def sites(self, pipe: Any) -> list[SiteInfo]:
        self._timesteps, self.timestep_scale = TIMESTEPS.get(type(pipe).__name__, ("same", 1.0))
        denoiser = self.denoiser(pipe)
        self._patch = int(getattr(getattr(denoiser, "config", None), "patch_size", None) or 1)
        out = []
        for name, module in denoiser.named_modules():
            if type(getattr(module, "processor", None)).__name__ not in self.processors:
                continue
            kind = "joint" if getattr(module, "add_k_proj", None) is not None else "self"
            if getattr(module, "is_cross_attention", False):
                kind = "cross"
            out.append(SiteInfo(name, len(out), kind, True, name, f"{name}:queries"))
        if not self._warned:
            warnings.warn(GENERIC_NOTE.format(cls=type(pipe).__name__), stacklevel=2)
            self._warned = True
        return out

    kind_groups = (("joint", "joint"), ("self", "self"), ("cross", "cross"))

    def read_timestep(self, args: tuple, kwargs: dict[str, Any]) -> tuple[float, torch.dtype | None]:
        """The received timestep, mapped back to the scheduler's direction (``TIMESTEPS``; the clock then
        multiplies by ``timestep_scale``)."""
        t, dtype = super().read_timestep(args, kwargs)
        return (1.0 - t if self._timesteps == "reversed" else t), dtype

    def uses_cfg(self, pipe: Any) -> bool:
        return True  # a trace runs one prompt and one image: an even first-call batch is a CFG batch

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        if call == 0 and batch % 2 == 0:
            return ["uncond"] * (batch // 2) + ["cond"] * (batch // 2)
        if call in (0, 1):
            return ["cond" if call == 0 else "uncond"] * batch
        raise RuntimeError(f"the denoiser ran {call + 1} times in one step; the generic adapter labels two calls")

    def read_call(self, args: tuple, kwargs: dict[str, Any]) -> DenoiserCall:
        sample = self.argument(args, kwargs, self.sample_arg)
        if sample.ndim == 4:  # (B, C, H, W), patchified inside the denoiser
            h, w = int(sample.shape[-2]), int(sample.shape[-1])
            self._n_latent = (h // self._patch) * (w // self._patch)
        else:  # packed (B, N, C)
            h, w = int(sample.shape[1]), 1
            self._n_latent = h
        context = kwargs.get("encoder_hidden_states")
        self._n_context = int(context.shape[1]) if torch.is_tensor(context) and context.ndim == 3 else None
        t, dtype = self.read_timestep(args, kwargs)
        return DenoiserCall(t, int(sample.shape[0]), (h, w), dtype)

    def _split(self, n: int) -> tuple[int, int]:
        """(context, latent) token counts of a sequence of ``n`` tokens at a site."""
        n_lat = self._n_latent
        if n_lat is None or n == n_lat:
            return 0, n
        if n > n_lat:
            return n - n_lat, n_lat
        if n == self._n_context:
            return n, 0
        return 0, n

    def layout(
        self,
        pipe: Any,
        name: str,
        text: str | None,
        call_kwargs: dict[str, Any],
        call: DenoiserCall,
        n_keys: int,
        branch: str = "cond",
    ) -> TokenLayout:
        n_ctx, n_lat = self._split(n_keys)
        parts = [unknown_text_layout(n_ctx, CONTEXT)] if n_ctx else []
        parts += [latent_layout(n_lat)] if n_lat else []
        return TokenLayout.concat(parts)

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        return None  # nothing is known before the first call

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        if isinstance(output, tuple):  # (latent, context) as the joint processors return them
            streams = {IMAGE: output[0]}
            if len(output) > 1 and output[1] is not None:
                streams[TEXT] = output[1]
            return streams
        n_ctx, _ = self._split(int(output.shape[1]))
        streams = {IMAGE: output[:, n_ctx:]}
        if n_ctx:
            streams[TEXT] = output[:, :n_ctx]
        return streams
