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
runs cuDNN's attention directly with the bias, asked for its row log-sum-exp (checked once per shape
against public SDPA), so the edit's verification needs one statistics pass instead of two. The bias is
rounded to the inputs' dtype before the kernel sees it (as SDPA's mask is), and ``rounded_bias`` gives
that same rounding to whoever measures the edited attention afterwards, so the measurement and the
kernel see the same logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from interp.kernels.cache import KernelCache
from interp.kernels.gpu import cudnn_with_lse


def rounded_bias(key_bias: Tensor, dtype: torch.dtype) -> Tensor:
    """The per-key bias as the kernel applies it: rounded to the attention's dtype, back in fp32."""
    return key_bias.to(dtype).float()


def _padded_bias(key_bias: Tensor, nq: int, dtype: torch.dtype) -> Tensor:
    """The per-key bias (B, H, Nk) as a (B, H, Nq, Nk) view broadcast over query rows (stride 0) of a
    buffer whose last dimension is padded to a multiple of 16 (the fused kernels' alignment; public
    SDPA pads masks the same way before calling them)."""
    b, h, nk = key_bias.shape
    padded = torch.zeros(b, h, 1, (nk + 15) // 16 * 16, dtype=dtype, device=key_bias.device)
    padded[..., :nk] = key_bias[:, :, None, :]
    return padded[..., :nk].expand(b, h, nq, nk)


def _cudnn_with_lse(
    q: Tensor, k: Tensor, v: Tensor, key_bias: Tensor, scale: float, cache: KernelCache | None
) -> tuple[Tensor, Tensor] | None:
    """cuDNN attention with the per-key bias, plus its row log-sum-exp (fp32); None where cuDNN refuses.

    cuDNN is what public SDPA runs for these shapes on Hopper (the memory-efficient kernel took 2.8 ms
    against cuDNN's 0.58 at SD3 size on an H200). The first call of each shape is checked against
    public SDPA with the same mask (bf16 tolerance; one host sync, once per ``cache``, the trace's memo)
    before the op is trusted.
    """
    key = (q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, q.device, scale)
    ok = cache.cudnn_ok if cache is not None else {}
    if not ok.get(key, True):
        return None
    try:
        out, lse = cudnn_with_lse(q, k, v, scale=scale, attn_bias=_padded_bias(key_bias, q.shape[-2], q.dtype))
    except RuntimeError:
        ok[key] = False
        return None
    lse = lse.float()
    if key not in ok:
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias[:, :, None, :].to(q.dtype), scale=scale)
        close = torch.allclose(out.float(), ref.float(), rtol=2e-2, atol=2e-2) and bool(torch.isfinite(lse).all())
        ok[key] = close
        if not close:
            return None
    return out, lse


def edited_attention_lse(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    scale: float,
    key_bias: Tensor,
    values: Tensor | None,
    cache: KernelCache | None = None,
) -> tuple[Tensor, Tensor | None]:
    """The edit over the whole scope with a per-key bias: (output, row log-sum-exp or None).

    On CUDA (fp16 / bf16) cuDNN returns the log-sum-exp with the output; elsewhere, or where cuDNN
    refuses the call, this is public SDPA with the bias as a mask, and None (the verification then
    computes the log-sum-exp itself).
    """
    vv = v if values is None else values
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] == vv.shape[-1]:
        res = _cudnn_with_lse(q, k, vv, key_bias, scale, cache)
        if res is not None:
            return res
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
