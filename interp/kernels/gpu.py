"""CUDA dispatch of the statistics kernels: the fused Triton pass, its fallback, and query_topk.

Design
------
``gpu_stats`` has the contract of ``reference.attention_stats`` (same keys, shapes and meaning) and
is what ``compute_stats(kernel="auto")`` runs on CUDA tensors. It routes each statistic to the
cheapest implementation that is exact for that call:

- incoming mass (``mass``, ``mass_full``, ``mass_topk``) and entropy: the fused Triton kernels of
  ``triton_stats`` (one QK^T pass when the forward's log-sum-exp is passed in ``lse``, two
  otherwise); they take a per-key bias, finite or -inf (edits, padding masks). Without Triton
  (``backend="swapped"`` or not installed) the swapped-role passes (``swapped_sums``) on the
  memory-efficient kernel do it, for calls without a bias. A bias that varies over query rows goes
  to the exact reference path.
- ``query_topk`` needs every probability of a row; it is not fused. It is computed exactly, in fp32,
  on a *seeded subsample* of the query set: ``query_topk_sample`` rows (default 256) whose positions
  in the query set are drawn once per (set size, seed) by ``torch.randperm`` with a CPU generator
  seeded by ``seed``, the same rows for every call, step and site, so the estimate is reproducible.
  It is an estimate of the mean over the whole set (a simple random sample without replacement);
  ``options(query_topk_sample=None)`` makes it exact (every row), as does ``kernel="reference"``.

``options(...)`` sets these choices for a block of code (a context variable, so concurrent traces in
other threads are not affected): ``with gpu.options(query_topk_sample=None): tracer.trace(...)``.

``sdpa_with_lse`` runs the attention call as public SDPA would (same backend, same aten op, so the
output is bit-identical; verified once per shape where the op differs from public SDPA's call) and
also returns the row log-sum-exp that the flash, memory-efficient and cuDNN kernels can return; with
it the statistics cost one extra pass instead of two. The math backend and masked calls give
``None``, and the statistics compute it themselves. Apart from that one-time verification, nothing
here calls ``.item()`` or otherwise synchronises with the host. What is learnt once per shape lives in
the caller's ``KernelCache`` (the trace's), never in this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.kernels import triton_stats
from interp.kernels.cache import KernelCache
from interp.kernels.reference import StatRequest, attention_stats, mass_summaries

if TYPE_CHECKING:  # shapes for readers and type checkers (jaxtyping's convention); no runtime checks
    from jaxtyping import Float, Int

BACKENDS = ("auto", "triton", "swapped")


@dataclass(frozen=True)
class GPUOptions:
    """``backend``: "auto" (Triton where installed, else the swapped-role fallback), "triton" or
    "swapped"; ``query_topk_sample``: query rows used for ``query_topk`` (None: all, exact);
    ``seed``: seed of that subsample; ``chunk_bytes``: fp32 logits alive at once in ``query_topk``."""

    backend: str = "auto"
    query_topk_sample: int | None = 256
    seed: int = 0
    chunk_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown GPU backend {self.backend!r}; use one of {BACKENDS}")
        if self.query_topk_sample is not None and self.query_topk_sample < 1:
            raise ValueError(f"query_topk_sample must be a positive row count or None, got {self.query_topk_sample}")


DEFAULT_OPTIONS = GPUOptions()
_OPTIONS: contextvars.ContextVar[GPUOptions | None] = contextvars.ContextVar("interp_gpu_options", default=None)


def current_options() -> GPUOptions:
    return _OPTIONS.get() or DEFAULT_OPTIONS


@contextlib.contextmanager
def options(**changes: object) -> Iterator[GPUOptions]:
    """Use other GPU kernel options inside the block (fields of ``GPUOptions``)."""
    opts = dataclasses.replace(current_options(), **changes)
    token = _OPTIONS.set(opts)
    try:
        yield opts
    finally:
        _OPTIONS.reset(token)


# --- query_topk on a seeded subsample ------------------------------------------------------------
def sample_positions(
    n: int, size: int | None, seed: int, device: torch.device, cache: KernelCache | None = None
) -> Tensor | None:
    """Sorted positions (into a query set of ``n`` rows) of the seeded subsample; None: use all rows.
    ``cache``: the trace's memo (the positions are copied to the device once per trace)."""
    if size is None or size >= n:
        return None
    memo = cache.sample_positions if cache is not None else {}
    key = (n, size, seed, str(device))
    if key not in memo:
        gen = torch.Generator("cpu").manual_seed(seed)
        pos = torch.randperm(n, generator=gen)[:size].sort().values
        memo[key] = pos.to(device)
    return memo[key]


def query_topk_mean(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    *,
    scale: float,
    rows: Int[Tensor, " rows"],
    k_top: int,
    bias: Tensor | None = None,
    chunk_bytes: int = 64 << 20,
) -> Tensor:
    """Mean over ``rows`` of the sum of each row's ``k_top`` largest probabilities (B, H), exact in fp32.

    Logits are formed in fp32 chunk by chunk (no probability matrix): the top-k probabilities of a
    row are exp(top-k logits - lse), so only the logits' top-k and log-sum-exp are needed.
    """
    b, h, _, _ = q.shape
    nk = k.shape[-2]
    kq = min(k_top, nk)
    kf = k.float().transpose(-1, -2)
    step = max(1, chunk_bytes // max(1, b * h * nk * 4))
    total = torch.zeros(b, h, dtype=torch.float32, device=q.device)
    for start in range(0, rows.numel(), step):
        r = rows[start : start + step]
        s = torch.matmul(q.index_select(2, r).float(), kf).mul_(scale)
        if bias is not None:
            s = s + (bias if bias.shape[-2] == 1 else bias.index_select(-2, r))
        lse = torch.logsumexp(s, dim=-1, keepdim=True)
        total += torch.exp(s.topk(kq, dim=-1).values - lse).sum(dim=(-1, -2))
    return total / rows.numel()


# --- the fallback without Triton: off-the-shelf kernels in swapped roles ------------------------------
def _efficient(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Output and row log-sum-exp from the memory-efficient kernel (the CPU flash kernel on CPU)."""
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, scale=scale)
        return out, lse.float()
    out, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, scale=scale)
    return out, lse[..., : q.shape[-2]].float()


def _pad8(x: Tensor) -> Tensor:
    """Zero head dimensions up to a multiple of 8 (the memory-efficient kernel's alignment)."""
    pad = (-x.shape[-1]) % 8
    return x if pad == 0 else F.pad(x, (0, pad))


def swapped_sums(
    q: Tensor,
    k: Tensor,
    *,
    scale: float,
    rows: Tensor,
    lse: Tensor | None = None,
    need_mass: bool = True,
    need_entropy: bool = True,
) -> tuple[Tensor | None, Tensor | None]:
    """Column sums of A over ``rows`` and the summed entropy, with the memory-efficient kernel (fp32).

    Entropy: one pass with the keys as values gives (A K) and lse, and H_i = lse_i - scale q_i.(A K)_i.
    Mass: the row log-sum-exp of the attention with queries and keys swapped and -lse_i folded in
    through one extra head dimension (keys [k_j * scale, 1], queries [q_i, -lse_i], scale 1), padded
    with zero dimensions to the kernel's alignment: sum_i A_ij = exp(logsumexp_i(s_ij - lse_i)).
    """
    qf = q.index_select(2, rows).float() if rows.numel() != q.shape[2] else q.float()
    kf = k.float()
    ent = None
    if need_entropy or lse is None:
        ak, lse_sel = _efficient(_pad8(qf), _pad8(kf), _pad8(kf), scale)
        if need_entropy:
            ent = (lse_sel - scale * (qf * ak[..., : qf.shape[-1]]).sum(-1)).sum(-1)
    else:
        lse_sel = lse.float() if rows.numel() == q.shape[2] else lse.float().index_select(2, rows)
    col = None
    if need_mass:
        ones = torch.ones(*kf.shape[:-1], 1, dtype=kf.dtype, device=kf.device)
        swapped_q = _pad8(torch.cat([kf * scale, ones], dim=-1))
        swapped_k = _pad8(torch.cat([qf, -lse_sel.unsqueeze(-1)], dim=-1))
        _, lse_t = _efficient(swapped_q, swapped_k, swapped_k, 1.0)
        col = torch.exp(lse_t)
    return col, ent


# --- dispatch ------------------------------------------------------------------------------------
def _is_per_key(bias: Tensor | None) -> bool:
    return bias is None or bias.ndim < 2 or bias.shape[-2] == 1


def _backend(opts: GPUOptions) -> str:
    if opts.backend == "auto":
        return "triton" if triton_stats.available() else "swapped"
    return opts.backend


def gpu_stats(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    *,
    scale: float,
    query_rows: Int[Tensor, " rows"],
    request: StatRequest,
    bias: Float[Tensor, "#b #h #nq nk"] | None = None,
    lse: Float[Tensor, "b h nq"] | None = None,
    opts: GPUOptions | None = None,
    cache: KernelCache | None = None,
) -> dict[str, Tensor]:
    """Statistics of one attention call on CUDA, same contract as ``reference.attention_stats``.

    ``lse``: the forward's row log-sum-exp (B, H, Nq) of the same (biased) logits, if the caller has
    it. ``query_rows``: unique row indices of the query set.
    """
    opts = opts or current_options()
    n = int(query_rows.numel())
    if n == 0:
        raise ValueError("empty query set")
    out: dict[str, Tensor] = {}
    fused = request.needs_mass or request.needs_entropy
    backend = _backend(opts)
    if fused and backend == "triton" and _is_per_key(bias):
        col, ent = triton_stats.mass_entropy_sums(
            q, k, scale=scale, rows=query_rows, bias=bias, lse=lse,
            need_mass=request.needs_mass, need_entropy=request.needs_entropy,
        )  # fmt: skip
        if col is not None:
            out.update(mass_summaries(col / n, request))
        if ent is not None:
            out["entropy"] = ent / n
    elif fused and backend == "swapped" and bias is None:
        col, ent = swapped_sums(q, k, scale=scale, rows=query_rows, lse=lse, need_mass=request.needs_mass,
                                need_entropy=request.needs_entropy)  # fmt: skip
        if col is not None:
            out.update(mass_summaries(col / n, request))
        if ent is not None:
            out["entropy"] = ent / n
    elif fused:
        only = request.only(("column_sums", "entropy_sums"))
        out.update(attention_stats(q, k, scale=scale, query_rows=query_rows, request=only, bias=bias))
    if request.needs_row_topk:
        pos = sample_positions(n, opts.query_topk_sample, opts.seed, query_rows.device, cache)
        rows = query_rows if pos is None else query_rows.index_select(0, pos)
        out["query_topk"] = query_topk_mean(
            q, k, scale=scale, rows=rows, k_top=request.k, bias=bias, chunk_bytes=opts.chunk_bytes
        )
    return out


# --- the forward's log-sum-exp -------------------------------------------------------------------


def _with_lse_op(q: Tensor, k: Tensor, v: Tensor, choice: int, scale: float | None) -> tuple[Tensor, Tensor] | None:
    """The aten op public SDPA calls for ``choice``, asked for its log-sum-exp as well."""
    from torch.nn.attention import SDPBackend

    if choice == SDPBackend.FLASH_ATTENTION.value:
        sc = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])  # as sdp::calculate_scale
        res = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=sc)
        return res[0], res[1]
    if choice == SDPBackend.EFFICIENT_ATTENTION.value:
        res = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, 0.0, False, scale=scale)
        return res[0], res[1][..., : q.shape[-2]]
    if choice == SDPBackend.CUDNN_ATTENTION.value:
        return cudnn_with_lse(q, k, v, scale=scale)
    return None


def cudnn_with_lse(
    q: Tensor, k: Tensor, v: Tensor, *, scale: float | None, attn_bias: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """cuDNN's attention op (the one public SDPA calls on Hopper), asked for its row log-sum-exp
    (B, H, Nq; cuDNN returns it with a trailing unit dimension). ``attn_bias``: an additive mask the
    op accepts as is (16-aligned last dimension). Raises ``RuntimeError`` where cuDNN refuses."""
    res = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, attn_bias, True, 0.0, False, False, scale=scale)
    lse = res[1]
    return res[0], lse.reshape(lse.shape[:3]) if lse.ndim == 4 else lse


def sdpa_with_lse(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    v: Float[Tensor, "b h nk dv"],
    *,
    scale: float | None = None,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    cache: KernelCache | None = None,
) -> tuple[Float[Tensor, "b h nq dv"], Float[Tensor, "b h nq"] | None]:
    """``F.scaled_dot_product_attention(q, k, v, ...)``, bit for bit, plus its row log-sum-exp.

    The backend is the one public SDPA chooses (``torch._fused_sdp_choice``) and the aten op is the
    one it calls with the same arguments, except that it is asked for the log-sum-exp (B, H, Nq,
    fp32, natural log). Flash returns it anyway; for the memory-efficient and cuDNN kernels asking
    for it may select another kernel variant, so the first call of each (backend, shapes, strides,
    dtype) compares the output with public SDPA's, once per ``cache`` (the trace's memo; without one,
    at every call), one host sync, and uses the op only if they are bit-identical. Otherwise, and
    for masked, causal or dropout calls, the output is public SDPA's own and the log-sum-exp is None.
    """
    plain = q.is_cuda and attn_mask is None and dropout_p == 0.0 and not is_causal and q.shape[-1] % 8 == 0
    plain = plain and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))
    if plain and q.ndim == 4 and k.ndim == 4 and v.ndim == 4 and k.shape[-3] == q.shape[-3]:
        choice = int(torch._fused_sdp_choice(q, k, v, None, 0.0, False, scale=scale))
        key = (choice, q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, q.device, scale)
        verified = cache.lse_verified if cache is not None else {}
        if verified.get(key, True):
            res = _with_lse_op(q, k, v, choice, scale)
            if res is not None and key not in verified:
                from torch.nn.attention import SDPBackend

                flash = choice == SDPBackend.FLASH_ATTENTION.value  # the very op and arguments public SDPA uses
                ref = None if flash else F.scaled_dot_product_attention(q, k, v, scale=scale)
                verified[key] = flash or bool(torch.equal(res[0], ref))
                if not verified[key]:
                    return ref, None
            if res is not None:
                return res
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
    )
    return out, None


__all__ = [
    "BACKENDS",
    "DEFAULT_OPTIONS",
    "GPUOptions",
    "cudnn_with_lse",
    "current_options",
    "gpu_stats",
    "options",
    "query_topk_mean",
    "sample_positions",
    "sdpa_with_lse",
    "swapped_sums",
]
