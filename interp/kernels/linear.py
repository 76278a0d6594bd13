"""Exact statistics of ReLU linear attention (SANA) without materialising the attention matrix.

Design
------
SANA's self-attention (``SanaLinearAttnProcessor2_0``) is linear attention with the ReLU feature map
phi = relu: with phi(q_i), phi(k_j) in R^D (per head, float32),

    s_ij = phi(q_i) . phi(k_j) >= 0,   den_i = sum_j s_ij,   A_ij = s_ij / (den_i + eps),   eps = 1e-15,

and the output is o_i = sum_j A_ij v_j, which the processor computes as ``(V_pad K) Q`` (the ones row
of ``V_pad`` gives den). A is an exact, row-stochastic (up to eps) attention matrix, so the softmax
statistics of ``interp.kernels.reference`` have exact counterparts over it (docs/definitions.md,
Linear attention):

- incoming mass m_j = (1/|Q|) sum_{i in Q} A_ij = phi(k_j) . w with w = (1/|Q|) sum_{i in Q}
  phi(q_i) / (den_i + eps), and den_i = phi(q_i) . sum_j phi(k_j): O((Nq + Nk) D) per head, no N x N
  matrix at all;
- entropy H_i = -sum_j A_ij log A_ij (0 log 0 = 0) and per-row top-k sums need the rows: computed over
  query chunks of at most ``chunk_bytes``, one chunk alive at a time;
- removing keys (``keep`` = False) removes their terms from numerator *and* denominator: zeroing
  phi(k_j) does exactly that, so an edited call is the same formula on ``phi(k) * keep``
  (:func:`linear_attention_output`, in the processor's own operation order).

Inputs are the feature maps ``phi_q`` (B, H, Nq, D) and ``phi_k`` (B, H, Nk, D) (already through relu;
``interp.adapters.sana.linear_qk`` reads them from a module), ``keep`` an optional bool (B|1, H|1, Nk).
Returns the dictionary keys of ``reference.attention_stats``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp.kernels.reference import StatRequest, mass_summaries

EPS = 1e-15
"""The processor's denominator guard (``hidden_states[:, :, -1:] + 1e-15``)."""


def _keep_keys(phi_k: Tensor, keep: Tensor | None) -> Tensor:
    return phi_k if keep is None else phi_k * keep[..., None].to(phi_k.dtype)


def _rows_chunk(b: int, h: int, nk: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // max(1, b * h * nk * 4))


def linear_attention_rows(phi_q: Tensor, phi_k: Tensor, *, eps: float = EPS) -> Tensor:
    """A for the given query rows (B, H, nq, Nk): ``phi_q`` already restricted to those rows."""
    s = torch.matmul(phi_q, phi_k.transpose(-1, -2))
    den = torch.matmul(phi_q, phi_k.sum(dim=-2, keepdim=True).transpose(-1, -2))  # (B, H, nq, 1)
    return s / (den + eps)


def linear_mass(
    phi_q: Tensor, phi_k: Tensor, *, query_rows: Tensor, keep: Tensor | None = None, eps: float = EPS
) -> Tensor:
    """Incoming mass per key (B, H, Nk) over ``query_rows``, in O((Nq + Nk) D), no attention matrix."""
    k = _keep_keys(phi_k.float(), keep)
    q = phi_q.float().index_select(2, query_rows)
    den = torch.matmul(q, k.sum(dim=-2, keepdim=True).transpose(-1, -2))  # (B, H, |Q|, 1)
    w = (q / (den + eps)).sum(dim=-2) / query_rows.numel()  # (B, H, D)
    return torch.matmul(k, w[..., None]).squeeze(-1)


def linear_attention_stats(
    phi_q: Tensor,
    phi_k: Tensor,
    *,
    query_rows: Tensor,
    request: StatRequest,
    keep: Tensor | None = None,
    eps: float = EPS,
    chunk_bytes: int = 32 << 20,
) -> dict[str, Tensor]:
    """The kernel statistics of ``request`` over the linear attention matrix A (see the module docstring)."""
    if query_rows.numel() == 0:
        raise ValueError("empty query set")
    out: dict[str, Tensor] = {}
    if request.needs_mass:
        out.update(mass_summaries(linear_mass(phi_q, phi_k, query_rows=query_rows, keep=keep, eps=eps), request))
    if request.needs_entropy or request.needs_row_topk:
        k = _keep_keys(phi_k.float(), keep)
        b, h, nk = k.shape[0], k.shape[1], k.shape[2]
        ent = phi_q.new_zeros(b, h, dtype=torch.float32)
        qtk = phi_q.new_zeros(b, h, dtype=torch.float32)
        kq = min(request.k, nk)
        step = _rows_chunk(b, h, nk, chunk_bytes)
        for start in range(0, query_rows.numel(), step):
            rows = query_rows[start : start + step]
            a = linear_attention_rows(phi_q.float().index_select(2, rows), k, eps=eps)
            if request.needs_entropy:
                ent += -torch.special.xlogy(a, a).sum(dim=-1).sum(dim=-1)
            if request.needs_row_topk:
                qtk += a.topk(kq, dim=-1).values.sum(dim=-1).sum(dim=-1)
            del a
        if request.needs_entropy:
            out["entropy"] = ent / query_rows.numel()
        if request.needs_row_topk:
            out["query_topk"] = qtk / query_rows.numel()
    return out


def linear_attention_map(
    phi_q: Tensor,
    phi_k: Tensor,
    *,
    query_rows: Tensor,
    key_cols: Tensor,
    heads: Tensor,
    keep: Tensor | None = None,
    eps: float = EPS,
) -> Tensor:
    """A[b, h, i, j] for the chosen heads, query rows and key columns (the normaliser over all kept keys)."""
    q = phi_q.float().index_select(1, heads).index_select(2, query_rows)
    k = _keep_keys(phi_k.float(), keep)
    k = k.index_select(1, heads) if k.shape[1] != 1 else k
    return linear_attention_rows(q, k, eps=eps).index_select(-1, key_cols)


def linear_attention_output(
    phi_q: Tensor, phi_k: Tensor, v: Tensor, *, keep: Tensor | None = None, eps: float = EPS
) -> Tensor:
    """o = A V (B, H, Nq, Dv) with the removed keys out of numerator and denominator, computed in the
    processor's operation order (``V_pad K`` then times ``Q``), so with ``keep=None`` it is the
    processor's own attention output bit for bit."""
    k = _keep_keys(phi_k.float(), keep)  # (B, H, Nk, D)
    value = torch.nn.functional.pad(v.float().transpose(-1, -2), (0, 0, 0, 1), mode="constant", value=1.0)
    scores = torch.matmul(value, k)  # (B, H, Dv + 1, D)
    hidden = torch.matmul(scores, phi_q.float().transpose(-1, -2))  # (B, H, Dv + 1, Nq)
    hidden = hidden[:, :, :-1] / (hidden[:, :, -1:] + eps)
    return hidden.transpose(-1, -2)
