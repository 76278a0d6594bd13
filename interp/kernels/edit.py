"""The edit kernel: attention with a per-key logit bias and/or replaced values, on the rows in scope.

Design
------
An edit acts on a set of (batch row, head) pairs, on a set of query rows, and on keys given per
(batch row, head). The kernel takes

- ``key_bias`` (B, H, Nk): additive logit bias (0 for untouched keys, log eta for edited ones, -inf
  for eta = 0); zero outside the (row, head) pairs in scope;
- ``values`` (B, H, Nk, D) or None: the value tensor with edited keys replaced;
- ``rows`` (LongTensor) or None: the query rows in scope (None: all);
- ``pairs`` (B, H) bool or None: the (batch row, head) pairs in scope (None: all);
- ``original``: the unedited output (public SDPA), needed when anything is out of scope.

It runs SDPA itself with the bias as a (B, H, 1, Nk) mask, so no N x N tensor is built; with a
partial scope it computes only the rows in scope and writes them into a copy of the original output,
so everything out of scope is bit-identical to the unedited call. With eta = 0 the edited keys get
probability exactly 0 (exp(-inf)); a row can never lose every key because selectors refuse a budget
that leaves none (checked before generation where the layout is known).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def edited_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    scale: float,
    key_bias: Tensor | None,
    values: Tensor | None,
    rows: Tensor | None,
    pairs: Tensor | None,
    attn_mask: Tensor | None,
    original: Tensor,
) -> Tensor:
    vv = v if values is None else values
    mask = None
    if key_bias is not None:
        mask = key_bias[:, :, None, :].to(q.dtype)
    if attn_mask is not None:
        base = (
            attn_mask
            if attn_mask.dtype != torch.bool
            else torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~attn_mask, float("-inf"))
        )
        mask = base.to(q.dtype) if mask is None else mask + base.to(q.dtype)
    qq = q if rows is None else q.index_select(2, rows)
    if mask is not None and mask.shape[-2] not in (1, qq.shape[-2]):
        mask = mask.index_select(-2, rows)
    out = F.scaled_dot_product_attention(qq, k, vv, attn_mask=mask, scale=scale)
    if rows is None and pairs is None:
        return out
    result = original.clone()
    if pairs is None:
        result[:, :, rows] = out
        return result
    region = result if rows is None else result.index_select(2, rows)
    merged = torch.where(pairs[:, :, None, None], out, region)
    if rows is None:
        return merged
    result[:, :, rows] = merged
    return result
