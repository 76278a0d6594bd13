"""Incoming mass and entropy without the attention matrix: two extra fused-attention passes.

Design
------
Identities (docs/design.md, Statistics and their identities; Kernels), for logits
s_ij = scale * q_i . k_j over one call's keys and
lse_i = log sum_j exp(s_ij):

- entropy: H_i = lse_i - sum_j A_ij s_ij = lse_i - scale * q_i . (A K)_i. One fused attention pass
  over the query set with the *keys as values* returns both (A K) and lse.
- incoming mass: m_j = (1/|Q|) sum_i exp(s_ij - lse_i) = exp(logsumexp_i(s_ij - lse_i)) / |Q|, the
  row log-sum-exp of an attention with queries and keys swapped and -lse_i folded in as a bias. The
  bias travels as one extra head dimension (keys [k_j * scale, 1], queries [q_i, -lse_i], scale 1),
  which needs no mask (a float mask makes the CPU kernel 3x slower) and is exact in real arithmetic;
  it carries only finite values, so it is used only without -inf biases.

Both passes run on kernels that return the log-sum-exp: ``aten._scaled_dot_product_flash_attention_for_cpu``
on CPU (it matches public SDPA, so the identities are testable on CI) and the memory-efficient
kernel on CUDA. Calls with an attention mask (padding) or statistics that need every probability
(``query_topk``) go to the exact reference path (``reference.py``), which is also the oracle of the
conformance tests. The original attention call is never replaced: observation stays bit-identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import torch
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
    Triton pass; ``lse``: the forward's row log-sum-exp, if known); on CPU, ``"lse"`` for
    mass/entropy where it applies (auto), the exact ``"reference"`` path for ``query_topk``, for
    calls with an attention mask, and when asked for. ``bias_rows`` (a bias on some query rows only,
    an edit scoped to rows) always takes the exact path: the fused passes apply a bias to every row.
    ``cache``: the trace's kernel memo (``kernels.cache``)."""
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
    if fast.any:
        out.update(lse_stats(q, k, scale=scale, query_rows=query_rows, request=fast))
    rest = request.without(*fast.stats)
    if rest.any:
        out.update(attention_stats(q, k, scale=scale, query_rows=query_rows, request=rest))
    return out
