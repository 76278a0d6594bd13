"""What an architecture adapter describes, and nothing more.

Design
------
Interception is generic (``interp.sites``): every supported processor ends in
``F.scaled_dot_product_attention`` with the final per-head q, k, v. What differs between model
families is *description*: which modules are the attention sites and how they are grouped into
blocks, which tokens the keys and queries of each site are (the token layout), how the batch rows of
a denoiser call map to CFG branches, how the denoiser receives its timestep, and how a site's module
output splits into image and text streams. An adapter answers exactly these questions for one family
(one family per file, as diffusers does), so adding a model never touches the tracer or the kernels.

Token layouts are plain numpy arrays (one entry per key), built from the same tokenizers and the same
arguments the pipeline used; the tracer checks their length against the keys it actually sees. A video
family's latent tokens also carry their latent frame (``image_frame``, with ``image_row`` / ``image_col``
the position within the frame); an image layout has no frame field at all (None), so image stores keep
their schema and only video stores get a ``key_image_frame`` coordinate.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

IMAGE, TEXT = "image", "text"
STREAMS = (IMAGE, TEXT)
BRANCHES = ("uncond", "cond")
PROMPT_EMBEDS_4 = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
"""``encode_prompt``'s four outputs, as ``__call__`` arguments, of the SD3 and SDXL pipelines."""


@dataclass(frozen=True)
class SiteInfo:
    """One attention module of the denoiser.

    ``path`` is the module path inside the denoiser (``transformer_blocks.12.attn``): the stable
    identity of a site. ``block`` is the block index a bare integer addresses; ``primary`` says
    whether the integer addresses this site (a block can hold several attentions). ``key_layout`` and
    ``query_layout`` name token layouts the adapter builds per trace. ``unused_query_streams`` lists
    query streams whose outputs the model discards (SD3's last, context-pre-only block computes text
    rows and drops them): the default query set excludes them.
    """

    path: str
    block: int
    kind: str
    primary: bool
    key_layout: str
    query_layout: str
    unused_query_streams: tuple[str, ...] = ()
    linear: bool = False  # ReLU linear attention (SANA): observed at its two matmuls, not at SDPA


@dataclass
class TokenLayout:
    """Identity of every token of one sequence, for one CFG branch (one entry per position)."""

    modality: np.ndarray  # "image" | "text"
    encoder: np.ndarray  # "image", "CLIP-L/G", "T5", ...
    token_id: np.ndarray  # int64, -1 for image tokens
    token_str: np.ndarray  # str, "" for image tokens
    is_bos: np.ndarray
    is_eos: np.ndarray
    is_pad: np.ndarray
    image_row: np.ndarray  # int64, -1 for text tokens
    image_col: np.ndarray
    valid: np.ndarray = field(default=None)  # bool: a key the softmax can give mass to (padding masks)
    image_frame: np.ndarray | None = field(default=None)  # int64 latent frame (video), -1 for text; None: no frames

    def __post_init__(self) -> None:
        if self.valid is None:
            self.valid = np.ones(len(self.modality), dtype=bool)

    def __len__(self) -> int:
        return len(self.modality)

    @property
    def has_frames(self) -> bool:
        """Whether the layout is a video's: its latent tokens carry a frame (``image_frame``)."""
        return self.image_frame is not None

    @staticmethod
    def concat(parts: Sequence[TokenLayout]) -> TokenLayout:
        """The parts in order; a video part's frames make the whole a video layout (others' frames: -1)."""
        out = {n: np.concatenate([getattr(p, n) for p in parts]) for n in LAYOUT_FIELDS if n != "image_frame"}
        if any(p.has_frames for p in parts):
            out["image_frame"] = np.concatenate(
                [p.image_frame if p.has_frames else np.full(len(p), -1, np.int64) for p in parts]
            )
        return TokenLayout(**out)


LAYOUT_FIELDS = tuple(f.name for f in fields(TokenLayout))
"""Per-key fields of a token layout, in order (the store's ``key_*`` coordinates)."""


def image_layout(rows: int, cols: int) -> TokenLayout:
    """Image patches in row-major order (the order every supported patch embedding produces)."""
    n = rows * cols
    r, c = np.divmod(np.arange(n, dtype=np.int64), cols)
    return TokenLayout(
        modality=np.full(n, IMAGE, dtype=object).astype(str),
        encoder=np.full(n, "image", dtype=object).astype(str),
        token_id=np.full(n, -1, dtype=np.int64),
        token_str=np.full(n, "", dtype=object).astype(str),
        is_bos=np.zeros(n, bool),
        is_eos=np.zeros(n, bool),
        is_pad=np.zeros(n, bool),
        image_row=r,
        image_col=c,
    )


def video_layout(frames: int, rows: int, cols: int) -> TokenLayout:
    """Video latent patches in (frame, row, col) order, frame-major (a 3-D patch embedding flattened over
    (F, H, W), as every supported video transformer does); ``image_row`` / ``image_col`` are the patch's
    position within its frame."""
    lay = image_layout(rows, cols)
    out = TokenLayout(**{f: np.tile(getattr(lay, f), frames) for f in LAYOUT_FIELDS if f != "image_frame"})
    out.image_frame = np.repeat(np.arange(frames, dtype=np.int64), rows * cols)
    return out


def text_layout(
    ids: Sequence[int],
    tokens: Sequence[str],
    encoder: str,
    *,
    bos_id: int | None,
    eos_id: int | None,
    pad_id: int | None,
    attention_mask: Sequence[int] | None = None,
) -> TokenLayout:
    """Text tokens with BOS / EOS / padding flags told apart by position.

    CLIP pads with its own end-of-text token, so EOS is the *first* end-of-text position and every
    later position is padding, whatever its id; padding also covers ``pad_id`` positions after EOS.
    """
    ids_arr = np.asarray(ids, dtype=np.int64)
    n = len(ids_arr)
    pos = np.arange(n)
    is_bos = (pos == 0) & (ids_arr == bos_id) if bos_id is not None else np.zeros(n, bool)
    eos_positions = np.flatnonzero(ids_arr == eos_id) if eos_id is not None else np.array([], int)
    first_eos = int(eos_positions[0]) if len(eos_positions) else n
    is_eos = pos == first_eos
    is_pad = pos > first_eos
    if pad_id is not None and pad_id != eos_id:
        is_pad |= (ids_arr == pad_id) & (pos > first_eos)
    valid = np.ones(n, bool) if attention_mask is None else np.asarray(attention_mask, bool)
    return TokenLayout(
        modality=np.full(n, TEXT, dtype=object).astype(str),
        encoder=np.full(n, encoder, dtype=object).astype(str),
        token_id=ids_arr,
        token_str=np.asarray([str(t) for t in tokens], dtype=object).astype(str),
        is_bos=is_bos,
        is_eos=is_eos,
        is_pad=is_pad,
        image_row=np.full(n, -1, np.int64),
        image_col=np.full(n, -1, np.int64),
        valid=valid,
    )


def call_default(pipe: Any, argument: str) -> Any:
    """The default of one of the pipeline's ``__call__`` arguments (e.g. ``max_sequence_length``)."""
    return inspect.signature(type(pipe).__call__).parameters[argument].default


def unknown_text_layout(n: int, encoder: str) -> TokenLayout:
    """Text keys whose tokens are unknown (the caller passed embeddings instead of a prompt)."""
    return text_layout([-1] * n, ["?"] * n, encoder, bos_id=None, eos_id=None, pad_id=None)


@dataclass(frozen=True)
class DenoiserCall:
    """What the step clock reads from one denoiser call."""

    timestep: float
    batch: int
    latent_hw: tuple[int, int]
    timestep_dtype: torch.dtype | None = None  # the dtype the denoiser received it in (None: a Python number)
    latent_frames: int = 1  # latent frames of a video denoiser call (1 for images)


class Adapter:
    """Base class of the per-family adapters. Subclasses fill in the class attributes and methods.

    Everything interp knows about a model family is declared here (``docs/adding_a_family.md``):

    - ``name``, ``pipeline_classes``: the family and the diffusers pipeline classes it describes;
    - ``processors``: attention processor classes of its sites that end in
      ``F.scaled_dot_product_attention`` (the interception point, ``interp.sites.intercept``);
      ``dispatch_processors``: those of them that go through diffusers' attention dispatcher;
    - ``prompt_embeds``: the names, as ``__call__`` arguments, of what ``encode_prompt`` returns
      (``interp.sweep.embeddings``; None: sweeps pass the prompt text to every condition);
    - ``tiny_module`` and ``tiny_variants``: its built-in offline pipelines (``interp.pipelines.tiny``:
      name -> variant passed to ``interp.pipelines.<tiny_module>.build``);
    - the methods below: sites, groups, the denoiser call, CFG branches, token layouts (as observed and
      as planned before generation) and the split of a site's output into streams.
    """

    name: str = ""
    pipeline_classes: tuple[str, ...] = ()
    denoiser_attr: str = "transformer"
    timestep_scale: float = 1.0  # the denoiser receives scheduler timesteps divided by this
    processors: tuple[str, ...] = ()
    dispatch_processors: tuple[str, ...] = ()
    linear_processors: tuple[str, ...] = ()  # ReLU linear attention processors (``SiteInfo.linear`` sites)
    prompt_embeds: tuple[str | None, ...] | None = None
    tiny_module: str | None = None
    tiny_variants: tuple[str, ...] = ()
    cfg_calls: bool = False  # CFG runs each branch as its own denoiser call (Wan), not as one [uncond, cond] batch
    # the sites' mask blocks the query rows of invalid keys too (HunyuanVideo 1.5): query sets drop them
    masked_queries: bool = False

    @classmethod
    def matches(cls, pipe: Any) -> bool:
        return type(pipe).__name__ in cls.pipeline_classes

    def denoiser(self, pipe: Any) -> nn.Module:
        """The pipeline's denoiser; inside a ``torch.compile(module)`` wrapper, the module it wraps (whose
        paths, hooks and configuration are the model's own; the wrapper calls its hooks eagerly)."""
        module = getattr(pipe, self.denoiser_attr)
        return getattr(module, "_orig_mod", module) if type(module).__name__ == "OptimizedModule" else module

    def sites(self, pipe: Any) -> list[SiteInfo]:
        raise NotImplementedError

    kind_groups: tuple[tuple[str, str], ...] = ()
    """(group name, site kind) pairs: each names the sites of one kind (e.g. ("cross", "cross")); a group
    with no site is left out."""

    def groups(self, sites: Sequence[SiteInfo]) -> dict[str, list[str]]:
        """Named groups of site paths: ``all``, then one per ``kind_groups`` entry that has sites."""
        groups = {"all": [s.path for s in sites]}
        for name, kind in self.kind_groups:
            paths = [s.path for s in sites if s.kind == kind]
            if paths:
                groups[name] = paths
        return groups

    sample_arg: tuple[str, int] = ("hidden_states", 0)  # the denoiser's latent argument: keyword, position
    timestep_arg: tuple[str, int] = ("timestep", 2)  # its timestep argument: keyword, position

    @staticmethod
    def argument(args: tuple, kwargs: dict[str, Any], spec: tuple[str, int]) -> Any:
        """The denoiser argument ``spec`` = (keyword, position), passed either way."""
        name, pos = spec
        return kwargs[name] if name in kwargs else args[pos]

    def read_timestep(self, args: tuple, kwargs: dict[str, Any]) -> tuple[float, torch.dtype | None]:
        """The call's timestep (first batch row; every row shares it), exactly as received, and its dtype."""
        timestep = self.argument(args, kwargs, self.timestep_arg)
        if torch.is_tensor(timestep):
            return float(timestep.reshape(-1)[0]), timestep.dtype
        return float(timestep), None

    def read_call(self, args: tuple, kwargs: dict[str, Any]) -> DenoiserCall:
        """Timestep, batch size and latent (height, width) of a denoiser call on a (B, C, H, W) latent."""
        sample = self.argument(args, kwargs, self.sample_arg)
        t, dtype = self.read_timestep(args, kwargs)
        return DenoiserCall(t, int(sample.shape[0]), (int(sample.shape[-2]), int(sample.shape[-1])), dtype)

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        """CFG branch of each batch row of a denoiser call ([uncond, cond] halves under CFG)."""
        if cfg and batch % 2 == 0 and call == 0:
            half = batch // 2
            return ["uncond"] * half + ["cond"] * half
        return ["cond"] * batch

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
        """The token layout ``name`` of one CFG ``branch`` whose text is ``text`` (None: unknown,
        embeddings were passed).

        ``n_keys`` is the key count the site actually saw; the tracer checks the result against it.
        """
        raise NotImplementedError

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        """The layout a call with these arguments will have, predicted before generation (None: unknown;
        checks that need it then run at the site's first call)."""
        return None

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        """A site module's output as {stream: (batch, tokens, channels)} after the output projection."""
        raise NotImplementedError

    def key_capacity(self, pipe: Any, call_kwargs: dict[str, Any]) -> int | None:
        """The most keys a site can see in a call with these arguments, whatever the prompt, where the
        key count depends on the prompt (unpadded text); None: every prompt gives the same counts. A
        sweep store sizes its ``key`` axis with it."""
        return None

    def uses_cfg(self, pipe: Any) -> bool:
        return bool(getattr(pipe, "do_classifier_free_guidance", False))
