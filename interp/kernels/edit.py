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

On CUDA, a call with the whole scope (all rows, all pairs) and a bias only (``edited_attention_lse``)
runs the memory-efficient kernel directly, asked for its row log-sum-exp: the edit's verification
then needs one statistics pass instead of two. The bias is rounded to the inputs' dtype before the
kernel sees it (as SDPA's mask is), and ``rounded_bias`` gives that same rounding to whoever measures
the edited attention afterwards, so the measurement and the kernel see the same logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rounded_bias(key_bias: Tensor, dtype: torch.dtype) -> Tensor:
    """The per-key bias as the kernel applies it: rounded to the attention's dtype, back in fp32."""
    return key_bias.to(dtype).float()


def _efficient_with_lse(q: Tensor, k: Tensor, v: Tensor, key_bias: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Memory-efficient attention with a per-key bias (B, H, Nk), plus its row log-sum-exp (fp32).

    The aten op wants the bias's last dimension 16-aligned in memory (public SDPA pads it the same
    way before calling it): the bias lives in a padded buffer and the kernel reads a view of it,
    broadcast over query rows with stride 0.
    """
    b, h, nq, _ = q.shape
    nk = k.shape[-2]
    padded = torch.zeros(b, h, 1, (nk + 15) // 16 * 16, dtype=q.dtype, device=q.device)
    padded[..., :nk] = key_bias[:, :, None, :]
    bias = padded[..., :nk].expand(b, h, nq, nk)
    out, lse, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, bias, True, 0.0, False, scale=scale)
    return out, lse[..., :nq].float()


def edited_attention_lse(
    q: Tensor, k: Tensor, v: Tensor, *, scale: float, key_bias: Tensor, values: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """The edit over the whole scope with a per-key bias: (output, row log-sum-exp or None).

    The log-sum-exp comes back on CUDA for head dims the memory-efficient kernel takes (multiples
    of 8); elsewhere this is public SDPA with the bias as a mask, and None.
    """
    vv = v if values is None else values
    if q.is_cuda and q.shape[-1] % 8 == 0 and vv.shape[-1] % 8 == 0 and q.dtype in (torch.float16, torch.bfloat16):
        return _efficient_with_lse(q, k, vv, key_bias, scale)
    out = F.scaled_dot_product_attention(q, k, vv, attn_mask=key_bias[:, :, None, :].to(q.dtype), scale=scale)
    return out, None


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
