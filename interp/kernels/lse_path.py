"""Incoming mass and entropy without the attention matrix: fused-attention passes in swapped roles.

Design
------
Identities (docs/design.md, Statistics and their identities; Kernels), for logits
s_ij = scale * q_i . k_j over one call's keys and
lse_i = log sum_j exp(s_ij), A_ij = exp(s_ij - lse_i):

- incoming mass: c_j = sum_{i in Q} A_ij = exp(logsumexp_i(s_ij - lse_i)), the row log-sum-exp of
  an attention with queries and keys swapped and -lse_i folded in as a bias. The bias travels as one
  extra head dimension (queries [k_j * scale, 1], keys [q_i, -lse_i], scale 1), which needs no mask
  (a float mask makes the CPU kernel 3x slower) and is exact in real arithmetic; it carries only
  finite values, so it is used only without -inf biases.
- entropy from the same pass: with the keys [q_i, -lse_i] also as the values, the swapped pass
  returns o_j = sum_i (A_ij / c_j) q_i, so sum_{i in Q} sum_j A_ij s_ij = scale * sum_j c_j k_j . o_j and
  sum_{i in Q} H_i = sum_{i in Q} lse_i - scale * sum_j c_j k_j . o_j. Given the forward's log-sum-exp,
  both statistics cost ONE extra fused pass (one QK^T), not two.
- without the forward's log-sum-exp (``lse_stats``): one pass with the keys as values returns lse and
  (A K), so H_i = lse_i - scale * q_i . (A K)_i, then the swapped pass for the mass (two passes).

On CPU the forward's log-sum-exp comes from ``cpu_sdpa_with_lse``: public SDPA on CPU runs
``aten._scaled_dot_product_flash_attention_for_cpu``, which returns (output, lse); calling that very op
with the same arguments gives the model's output bit for bit (checked once per shape and trace, like
``kernels.gpu.sdpa_with_lse`` on CUDA) and the log-sum-exp for free. The passes run on kernels that
return the log-sum-exp: the CPU flash kernel (it matches public SDPA, so the identities are testable on
CI) and the memory-efficient kernel on CUDA. Calls with an attention mask (padding) or statistics that
need every probability (``query_topk``) go to the exact reference path (``reference.py``), which is
also the oracle of the conformance tests. The original attention call is never replaced by anything
that is not bit-identical to it: observation stays bit-identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.kernels.cache import KernelCache
from interp.kernels.reference import StatRequest, attention_stats, mass_summaries

KernelName = Literal["auto", "lse", "reference", "triton"]
"""Which statistics kernels a call uses: ``auto`` (the fastest exact path for the device and call),
the CPU log-sum-exp path, the exact reference, or the fused Triton kernels."""
KERNELS: tuple[str, ...] = get_args(KernelName)

if TYPE_CHECKING:  # shapes for readers and type checkers (jaxtyping's convention); no runtime checks
    from jaxtyping import Bool, Float, Int

LSE_NEEDS = ("column_sums", "entropy_sums")
"""Kernel passes the log-sum-exp path computes; other needs (``row_topk``) take the exact reference path."""


def forward_with_lse(
    q: Float[Tensor, "b h nq d"], k: Float[Tensor, "b h nk d"], v: Float[Tensor, "b h nk dv"], scale: float
) -> tuple[Float[Tensor, "b h nq dv"], Float[Tensor, "b h nq"]]:
    """Attention output and row log-sum-exp (fp32) from a fused kernel; no N x N matrix."""
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, scale=scale)
        return out, lse.float()
    out, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, scale=scale)
    return out, lse[..., : q.shape[-2]].float()


def lse_stats(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    *,
    scale: float,
    query_rows: Int[Tensor, " rows"],
    request: StatRequest,
) -> dict[str, Tensor]:
    """Same contract as ``reference.attention_stats`` for mass, entropy and mass_topk."""
    qf = q.index_select(2, query_rows).float() if query_rows.numel() != q.shape[2] else q.float()
    kf = k.float()
    n = qf.shape[2]
    out: dict[str, Tensor] = {}
    ak, lse = forward_with_lse(qf, kf, kf, scale)
    if request.needs_entropy:
        out["entropy"] = (lse - scale * (qf * ak).sum(-1)).mean(-1)
    if request.needs_mass:
        ones = torch.ones(*kf.shape[:-1], 1, dtype=kf.dtype, device=kf.device)
        swapped_q = torch.cat([kf * scale, ones], dim=-1)
        swapped_k = torch.cat([qf, -lse.unsqueeze(-1)], dim=-1)
        _, lse_t = forward_with_lse(swapped_q, swapped_k, swapped_k, 1.0)
        out.update(mass_summaries(torch.exp(lse_t) / n, request))
    return out


def cpu_sdpa_with_lse(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    v: Float[Tensor, "b h nk dv"],
    *,
    scale: float | None = None,
    cache: KernelCache | None = None,
) -> tuple[Float[Tensor, "b h nq dv"], Float[Tensor, "b h nq"] | None]:
    """``F.scaled_dot_product_attention(q, k, v, scale=scale)`` on CPU, bit for bit, plus its row
    log-sum-exp (fp32, natural log) when public SDPA would run the CPU flash kernel.

    The first call of each (shapes, strides, dtype, scale, threads) compares the op's output with public
    SDPA's (once per ``cache``, the trace's memo; without one, at every call) and uses the op only if
    they are bit-identical; otherwise, and for calls public SDPA would not send to the flash kernel, the
    output is public SDPA's own and the log-sum-exp is None."""
    from torch.nn.attention import SDPBackend

    plain = q.device.type == "cpu" and q.ndim == 4 and k.ndim == 4 and v.ndim == 4 and k.shape[1] == q.shape[1]
    plain = plain and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad))
    if plain and int(torch._fused_sdp_choice(q, k, v, None, 0.0, False, scale=scale)) == (
        SDPBackend.FLASH_ATTENTION.value
    ):
        key = ("cpu", q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, scale)
        key = (*key, torch.get_num_threads())
        verified = cache.lse_verified if cache is not None else {}
        if verified.get(key, True):
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, scale=scale)
            if key not in verified:
                ref = F.scaled_dot_product_attention(q, k, v, scale=scale)
                verified[key] = bool(torch.equal(out, ref)) and out.stride() == ref.stride()
                if not verified[key]:
                    return ref, None
            return out, lse.float()
    return F.scaled_dot_product_attention(q, k, v, scale=scale), None


def swapped_given_lse(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    *,
    scale: float,
    query_rows: Int[Tensor, " rows"],
    lse: Float[Tensor, "b h nq"],
    request: StatRequest,
) -> dict[str, Tensor]:
    """Mass, entropy and mass_topk from ONE swapped fused pass, given the forward's row log-sum-exp
    ``lse`` of the same (unbiased) logits; same contract as ``reference.attention_stats``."""
    every = query_rows.numel() == q.shape[2]
    qf = q.float() if every else q.index_select(2, query_rows).float()
    lse_q = lse.float() if every else lse.float().index_select(2, query_rows)
    kf = k.float()
    n = qf.shape[2]
    ones = torch.ones(*kf.shape[:-1], 1, dtype=kf.dtype, device=kf.device)
    swapped_q = torch.cat([kf * scale, ones], dim=-1)
    swapped_k = torch.cat([qf, -lse_q.unsqueeze(-1)], dim=-1)
    o, lse_t = forward_with_lse(swapped_q, swapped_k, swapped_k, 1.0)
    col = torch.exp(lse_t)  # (B, H, Nk): column sums over the query set
    out: dict[str, Tensor] = {}
    if request.needs_entropy:
        a_s = scale * (col * (kf * o[..., : kf.shape[-1]]).sum(-1)).sum(-1)  # sum_i sum_j A_ij s_ij
        out["entropy"] = (lse_q.sum(-1) - a_s) / n
    if request.needs_mass:
        out.update(mass_summaries(col / n, request))
    return out


def compute_stats(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    *,
    scale: float,
    query_rows: Int[Tensor, " rows"],
    request: StatRequest,
    bias: Float[Tensor, "#b #h #nq nk"] | None = None,
    kernel: KernelName = "auto",
    lse: Float[Tensor, "b h nq"] | None = None,
    bias_rows: Bool[Tensor, " nq"] | None = None,
    cache: KernelCache | None = None,
) -> dict[str, Tensor]:
    """Dispatch: on CUDA (auto) or when asked for (``"triton"``), ``kernels.gpu.gpu_stats`` (fused
    Triton pass; ``lse``: the forward's row log-sum-exp, if known); on CPU, ``"lse"`` for mass/entropy
    where it applies (auto; one swapped pass given the forward's ``lse``, two without), the exact
    ``"reference"`` path for ``query_topk``, for calls with an attention mask, and when asked for.
    ``bias_rows`` (a bias on some query rows only, an edit scoped to rows) always takes the exact
    path: the fused passes apply a bias to every row. ``cache``: the trace's kernel memo (``kernels.cache``)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; use 'auto', 'lse', 'reference' or 'triton'")
    if bias_rows is not None:
        return attention_stats(
            q, k, scale=scale, query_rows=query_rows, request=request, bias=bias, bias_rows=bias_rows
        )
    if kernel == "triton" or (kernel == "auto" and q.is_cuda):
        from interp.kernels import gpu

        opts = gpu.GPUOptions(backend="triton", query_topk_sample=None) if kernel == "triton" else None
        return gpu.gpu_stats(
            q, k, scale=scale, query_rows=query_rows, request=request, bias=bias, lse=lse, opts=opts, cache=cache
        )
    if kernel == "reference" or bias is not None:
        if kernel == "lse":
            raise ValueError("the lse kernel cannot honour an attention mask; use kernel='reference'")
        return attention_stats(q, k, scale=scale, query_rows=query_rows, request=request, bias=bias)
    out: dict[str, Tensor] = {}
    fast = request.only(LSE_NEEDS)
    if fast.any and lse is not None:
        out.update(swapped_given_lse(q, k, scale=scale, query_rows=query_rows, lse=lse, request=fast))
    elif fast.any:
        out.update(lse_stats(q, k, scale=scale, query_rows=query_rows, request=fast))
    rest = request.without(*fast.stats)
    if rest.any:
        out.update(attention_stats(q, k, scale=scale, query_rows=query_rows, request=rest))
    return out
