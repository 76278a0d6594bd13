"""Exact reference kernels for attention statistics (fp32, chunked over queries).

Design
------
This is the oracle every other implementation is tested against, and the path used on CPU. It takes
the final per-head ``q`` (B, H, Nq, D) and ``k`` (B, H, Nk, D) that the model passed to
``scaled_dot_product_attention``, an optional additive logit ``bias`` broadcastable to
(B, H, Nq, Nk) (padding masks become -inf), and the query rows that define the query set Q. It walks
Q in chunks sized so that one chunk of the attention matrix, (B, H, chunk, Nk) in fp32, stays under
``chunk_bytes``; no more than one chunk is ever alive. Per chunk it forms the logits
s_ij = q_i . k_j * scale + b_ij, the row log-sum-exp lse_i and A = exp(s - lse), and accumulates:

- column sums of A over Q (incoming mass m_j = (1/|Q|) sum_i A_ij),
- per-row entropy through H_i = lse_i - sum_j A_ij s_ij (the identity of
  docs/design.md, Statistics and their identities; terms
  with A_ij = 0 contribute 0, so -inf biases are safe),
- per-row top-k probability sums for ``query_topk``.

Everything returned stays on the input's device (no ``.item()``, no host sync).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from interp.statistics import CATALOGUE, KERNEL_STATISTICS, KernelNeed

if TYPE_CHECKING:  # shapes for readers and type checkers (jaxtyping's convention); no runtime checks
    from jaxtyping import Bool, Float, Int


@dataclass(frozen=True, init=False)
class StatRequest:
    """Which kernel statistics one site call needs (names of ``interp.statistics.KERNEL_STATISTICS``).

    ``top``: ranks kept; ``k``: concentration budget. Built from names
    (``StatRequest({"mass", "entropy"}, top=8)``) or flags (``StatRequest(mass=True, entropy=True)``);
    what each statistic needs from the kernels comes from the catalogue (``needs``), so the kernels
    run each shared pass once however many statistics use it.
    """

    stats: frozenset[str]
    top: int
    k: int

    def __init__(self, stats: Iterable[str] = (), *, top: int = 8, k: int = 5, **flags: bool) -> None:
        names = set(stats) | {name for name, on in flags.items() if on}
        unknown = sorted((names | set(flags)) - set(KERNEL_STATISTICS))
        if unknown:
            raise TypeError(f"not kernel statistics: {unknown}; known: {', '.join(KERNEL_STATISTICS)}")
        object.__setattr__(self, "stats", frozenset(names))
        object.__setattr__(self, "top", top)
        object.__setattr__(self, "k", k)

    def wants(self, name: str) -> bool:
        """Whether the statistic ``name`` is requested."""
        return name in self.stats

    def needs(self, need: KernelNeed) -> bool:
        """Whether some requested statistic needs the kernel pass ``need`` (``interp.statistics``)."""
        return any(need in CATALOGUE[s].needs for s in self.stats)

    def only(self, needs: Iterable[KernelNeed]) -> StatRequest:
        """The statistics of this request that need nothing but the passes ``needs``."""
        allowed = set(needs)
        return StatRequest({s for s in self.stats if CATALOGUE[s].needs <= allowed}, top=self.top, k=self.k)

    def without(self, *names: str) -> StatRequest:
        return StatRequest(self.stats - set(names), top=self.top, k=self.k)

    @property
    def needs_mass(self) -> bool:
        return self.needs("column_sums")

    @property
    def needs_entropy(self) -> bool:
        return self.needs("entropy_sums")

    @property
    def needs_row_topk(self) -> bool:
        return self.needs("row_topk")

    @property
    def any(self) -> bool:
        return bool(self.stats)


def mask_to_bias(
    attn_mask: Bool[Tensor, "*b nq nk"] | Float[Tensor, "*b nq nk"] | None, dtype: torch.dtype = torch.float32
) -> Float[Tensor, "*b nq nk"] | None:
    """SDPA's ``attn_mask`` (bool: True = attend; float: additive) as an additive fp32 bias."""
    if attn_mask is None:
        return None
    if attn_mask.dtype == torch.bool:
        return torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device).masked_fill(~attn_mask, float("-inf"))
    return attn_mask.to(dtype)


def _chunk_rows(b: int, h: int, nk: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // max(1, b * h * nk * 4))


def attention_stats(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    *,
    scale: float,
    query_rows: Int[Tensor, " rows"],
    request: StatRequest,
    bias: Float[Tensor, "#b #h #nq nk"] | None = None,
    bias_rows: Bool[Tensor, " nq"] | None = None,
    chunk_bytes: int = 32 << 20,
) -> dict[str, Tensor]:
    """Exact statistics of softmax(q k^T * scale + bias) over the query rows ``query_rows``.

    Returns tensors shaped (B, H) or (B, H, ranks) / (B, H, Nk): ``mass_per_key``, ``max_mass``,
    ``argmax_key``, ``topk_keys``, ``topk_mass``, ``entropy``, ``mass_topk``, ``query_topk`` (only
    those the request needs). ``bias_rows`` (bool, one per query row) applies ``bias`` to those rows
    only (an edit scoped to some query rows).
    """
    b, h, _, _ = q.shape
    nk = k.shape[-2]
    nq_set = int(query_rows.numel())
    if nq_set == 0:
        raise ValueError("empty query set")
    kf = k.float().transpose(-1, -2)
    dev = q.device
    col_sum = torch.zeros(b, h, nk, dtype=torch.float32, device=dev) if request.needs_mass else None
    ent_sum = torch.zeros(b, h, dtype=torch.float32, device=dev) if request.needs_entropy else None
    qtk_sum = torch.zeros(b, h, dtype=torch.float32, device=dev) if request.needs_row_topk else None
    kq = min(request.k, nk)
    step = _chunk_rows(b, h, nk, chunk_bytes)
    for start in range(0, nq_set, step):
        rows = query_rows[start : start + step]
        s = torch.matmul(q.index_select(2, rows).float(), kf).mul_(scale)
        if bias is not None:
            bb = bias if bias.shape[-2] == 1 else bias.index_select(-2, rows)
            if bias_rows is None:
                s = s + bb
            else:
                s = torch.where(bias_rows.index_select(0, rows)[:, None], s + bb, s)
        lse = torch.logsumexp(s, dim=-1, keepdim=True)
        a = torch.exp(s - lse)
        if col_sum is not None:
            col_sum += a.sum(dim=-2)
        if ent_sum is not None:
            a_s = torch.where(a > 0, a * s, torch.zeros((), device=dev))
            ent_sum += (lse.squeeze(-1) - a_s.sum(dim=-1)).sum(dim=-1)
        if qtk_sum is not None:
            qtk_sum += a.topk(kq, dim=-1).values.sum(dim=-1).sum(dim=-1)
        del s, a, lse
    out: dict[str, Tensor] = {}
    if col_sum is not None:
        out.update(mass_summaries(col_sum / nq_set, request))
    if ent_sum is not None:
        out["entropy"] = ent_sum / nq_set
    if qtk_sum is not None:
        out["query_topk"] = qtk_sum / nq_set
    return out


def mass_summaries(mass: Float[Tensor, "b h nk"], request: StatRequest) -> dict[str, Tensor]:
    """Summaries of an incoming-mass vector (B, H, Nk): max, argmax, top ranks, top-k sum."""
    out: dict[str, Tensor] = {}
    nk = mass.shape[-1]
    if request.wants("mass_full"):
        out["mass_per_key"] = mass
    kq = min(request.k, nk)
    if request.wants("mass"):
        top = min(request.top, nk)
        vals, idx = mass.topk(top, dim=-1)  # sorted, descending
        if request.wants("mass_topk") and kq <= top:  # the same values in the same order: one topk serves both
            out["mass_topk"] = vals[..., :kq].sum(dim=-1)
        if top < request.top:  # fewer keys than ranks: pad, never invent keys
            pad = request.top - top
            vals = torch.cat([vals, vals.new_full((*vals.shape[:-1], pad), float("nan"))], dim=-1)
            idx = torch.cat([idx, idx.new_full((*idx.shape[:-1], pad), -1)], dim=-1)
        keys = idx.to(torch.int32)
        out["max_mass"] = vals[..., 0]
        out["argmax_key"] = keys[..., 0]
        out["topk_keys"] = keys
        out["topk_mass"] = vals
    if request.wants("mass_topk") and "mass_topk" not in out:
        out["mass_topk"] = mass.topk(kq, dim=-1).values.sum(dim=-1)
    return out


def activation_norms(
    x: Float[Tensor, "*lead n d"], rows_by_stream: dict[str, Int[Tensor, " rows"]], ords: tuple[str, ...]
) -> tuple[Float[Tensor, "*lead streams ords"], Float[Tensor, "*lead streams ords"]]:
    """Max and 95th percentile over tokens of per-token norms, per stream and norm order.

    ``x`` is (B, H, N, D) (``pre_out``: the attention output per head) or (B, N, C) (``post_out``).
    Returns two tensors shaped (*lead, n_streams, n_ords), lead = (B, H) or (B,); a stream with no
    rows gives NaN. The percentile interpolates linearly between order statistics (numpy's default):
    one sort per stream serves every norm order and both statistics, with no host sync (the positions
    come from row counts, which are shapes). The norms are fused reductions that read ``x`` in its
    own dtype and accumulate in fp32 (no fp32 copy of the activations), and the sort runs along the
    last, contiguous dimension.
    """
    lead = x.shape[:-2]
    norms = torch.stack(
        [
            torch.linalg.vector_norm(x, ord=float("inf") if o == "inf" else 2.0, dim=-1, dtype=torch.float32)
            for o in ords
        ],
        dim=-2,
    )  # (*lead, n_ords, N)
    mx = norms.new_full((*lead, len(rows_by_stream), len(ords)), float("nan"))
    p95 = mx.clone()
    for si, rows in enumerate(rows_by_stream.values()):
        n = rows.numel()
        if n == 0:
            continue
        srt = norms.index_select(-1, rows).sort(dim=-1).values  # (*lead, n_ords, n), ascending
        pos = 0.95 * (n - 1)
        lo, frac = int(pos), pos - int(pos)
        hi = min(lo + 1, n - 1)
        mx[..., si, :] = srt[..., n - 1]
        p95[..., si, :] = srt[..., lo] + frac * (srt[..., hi] - srt[..., lo])
    return mx, p95


def attention_map(
    q: Float[Tensor, "b h nq d"],
    k: Float[Tensor, "b h nk d"],
    *,
    scale: float,
    query_rows: Int[Tensor, " rows"],
    key_cols: Int[Tensor, " cols"],
    heads: Int[Tensor, " heads"],
    bias: Float[Tensor, "#b #h #nq nk"] | None = None,
    bias_rows: Bool[Tensor, " nq"] | None = None,
    chunk_bytes: int = 32 << 20,
) -> Float[Tensor, "b heads rows cols"]:
    """Probabilities A[b, h, i, j] for the chosen heads, query rows and key columns (fp32).

    The softmax is over *all* keys of the call; only the requested slice is kept, so a map of image
    queries x text keys is the exact slice of the full attention matrix.
    """
    qh, kh = q.index_select(1, heads), k.index_select(1, heads)
    if bias is not None and bias.shape[1] != 1:
        bias = bias.index_select(1, heads)
    b, h = qh.shape[:2]
    nk = k.shape[-2]
    out = torch.empty(b, h, query_rows.numel(), key_cols.numel(), dtype=torch.float32, device=q.device)
    kf = kh.float().transpose(-1, -2)
    step = _chunk_rows(b, h, nk, chunk_bytes)
    for start in range(0, query_rows.numel(), step):
        rows = query_rows[start : start + step]
        s = torch.matmul(qh.index_select(2, rows).float(), kf).mul_(scale)
        if bias is not None:
            bb = bias if bias.shape[-2] == 1 else bias.index_select(-2, rows)
            s = s + bb if bias_rows is None else torch.where(bias_rows.index_select(0, rows)[:, None], s + bb, s)
        out[:, :, start : start + rows.numel()] = torch.softmax(s, dim=-1).index_select(-1, key_cols)
    return out
