"""Fused Triton kernels for incoming mass and entropy: one extra QK^T pass given the row log-sum-exp.

Design
------
For logits s_ij = scale * q_i . k_j + b_ij (``b``: an optional per-key bias, finite or -inf, such as
an edit's log eta or a padding mask) and the row log-sum-exp lse_i of those logits (the forward's,
when the caller has it), the attention probabilities are A_ij = exp(s_ij - lse_i) and

- the column sums c_j = sum_{i in Q} A_ij give the incoming mass m_j = c_j / |Q|,
- the entropy sum is sum_{i in Q} H_i = sum_{i in Q} lse_i - sum_{i in Q} sum_j A_ij s_ij
  (DESIGN.md section 3; terms with A_ij = 0 contribute 0, so -inf biases are safe).

``_stats_kernel`` makes one pass over QK^T for both: each program owns one block of keys of one
(batch row, head), loads those keys once, and walks every block of query rows in Q, accumulating
A and A * s element-wise in two register tiles that are reduced once at the end (reducing across
query rows inside the loop would cost a cross-warp reduction per step). It writes the column sums
of its keys and one partial entropy sum; a ``torch.sum`` over the (few dozen) partials finishes the
entropy. No atomics, so the result is deterministic and re-running a launch is harmless.

When the caller has no log-sum-exp (the original attention call ran through public SDPA, which does
not return it, or the logits carry an edit's bias), ``_lse_kernel`` computes it first: a row-parallel
online log-sum-exp over the keys (a QK^T pass without the P V product). Query rows may be a subset
(``rows``, unique indices): they are gathered inside the kernels, nothing is copied.

Both kernels accumulate in fp32; the QK^T product uses the inputs' dtype on the tensor cores (bf16 or
fp16 products are exact in fp32) and full fp32 ("ieee") for fp32 inputs. Logits are carried in base
2 (``exp2``) and converted back to nats on output. On CPU the same kernel bodies run under Triton's
interpreter (used by the tests); ``triton`` is optional: ``available()`` says whether it is installed.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# Triton is optional (the CUDA fallback and the CPU paths do not need it) and imported on first use,
# so that a process can still choose the interpreter (``TRITON_INTERPRET=1`` must be set before
# ``triton.language`` is first imported: its own helpers such as ``tl.sum`` are decorated then).
triton: Any = None
tl: Any = None

LOG2E = 1.4426950408889634


def available() -> bool:
    """Whether Triton is installed (the kernels then run on CUDA, or on CPU under the interpreter)."""
    return triton is not None or importlib.util.find_spec("triton") is not None


def _import_triton() -> None:
    global triton, tl
    if triton is None:
        if not available():
            raise RuntimeError("triton is not installed: use the 'lse' or 'reference' kernels")
        import triton as _triton
        import triton.language as _tl

        triton, tl = _triton, _tl


def interpreting() -> bool:
    """Whether Triton runs in interpreter mode in this process (its helpers were built for it)."""
    _import_triton()
    return type(tl.sum).__name__ == "InterpretedFunction"


@dataclass(frozen=True)
class LaunchConfig:
    """Block sizes and warps of the two kernels (``BLOCK_N``: keys per stats program)."""

    lse_block_m: int = 128
    lse_block_n: int = 64
    lse_warps: int = 4
    stats_block_m: int = 64
    stats_block_n: int = 128
    stats_warps: int = 8
    stages: int = 3


GPU_CONFIG = LaunchConfig(stats_warps=4)
"""Fastest of the shapes tried at SD3 size on an H200 (benchmarks/RESULTS-gpu.md): stats pass 64 x 128
with 4 warps 0.536 ms (8 warps: 0.789 ms), lse pass 128 x 64 with 4 warps 0.449 ms."""
INTERPRETER_CONFIG = LaunchConfig(16, 16, 1, 16, 16, 1, 1)


# --- kernel bodies (decorated lazily: see _kernels) ----------------------------------------------
def _lse_body(
    Q, K, BIAS, ROWS, LSE,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_bb, stride_bh,
    stride_lb, stride_lh,
    H, n_rows, n_keys, head_dim, scale_log2,
    HAS_ROWS: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr, EVEN_D: tl.constexpr,
    D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < n_rows
    if HAS_ROWS:
        rows = tl.load(ROWS + offs_m, mask=m_ok, other=0).to(tl.int64)
    else:
        rows = offs_m.to(tl.int64)
    offs_d = tl.arange(0, D)
    d_ok = (offs_d < head_dim) | EVEN_D  # EVEN_D: no padded head dims, the mask folds away
    q = tl.load(
        Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qm + offs_d[None, :],
        mask=m_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    k_base = K + b * stride_kb + h * stride_kh
    for start in range(0, n_keys, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_keys
        k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :],
                    other=0.0)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = s * scale_log2
        if HAS_BIAS:
            bias = tl.load(BIAS + b * stride_bb + h * stride_bh + offs_n, mask=n_ok, other=float("-inf"))
            s = s + bias[None, :] * 1.4426950408889634
        else:
            s = tl.where(n_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_i = l_i * tl.exp2(m_i - m_safe) + tl.sum(tl.exp2(s - m_safe[:, None]), 1)
        m_i = m_new
    lse = (m_i + tl.log2(l_i)) * 0.6931471805599453
    tl.store(LSE + b * stride_lb + h * stride_lh + rows, lse, mask=m_ok)


def _stats_body(
    Q, K, BIAS, ROWS, LSE, COL, ENT,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_bb, stride_bh,
    stride_lb, stride_lh,
    H, n_rows, n_keys, head_dim, scale_log2,
    HAS_ROWS: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
    NEED_COL: tl.constexpr, NEED_ENT: tl.constexpr, EVEN_D: tl.constexpr,
    D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < n_keys
    offs_d = tl.arange(0, D)
    d_ok = (offs_d < head_dim) | EVEN_D  # EVEN_D: no padded head dims, the mask folds away
    k = tl.load(
        K + b * stride_kb + h * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :],
        mask=n_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    kt = tl.trans(k)
    if HAS_BIAS:
        bias2 = tl.load(BIAS + b * stride_bb + h * stride_bh + offs_n, mask=n_ok, other=float("-inf"))
        bias2 = bias2 * 1.4426950408889634
    else:
        bias2 = tl.where(n_ok, 0.0, float("-inf"))
    col = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    ent = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    q_base = Q + b * stride_qb + h * stride_qh
    l_base = LSE + b * stride_lb + h * stride_lh
    for start in range(0, n_rows, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M)
        m_ok = offs_m < n_rows
        if HAS_ROWS:
            rows = tl.load(ROWS + offs_m, mask=m_ok, other=0).to(tl.int64)
        else:
            rows = offs_m.to(tl.int64)
        q = tl.load(q_base + rows[:, None] * stride_qm + offs_d[None, :], mask=m_ok[:, None] & d_ok[None, :],
                    other=0.0)
        lse2 = tl.load(l_base + rows, mask=m_ok, other=float("inf")) * 1.4426950408889634
        if IEEE:
            s = tl.dot(q, kt, input_precision="ieee")
        else:
            s = tl.dot(q, kt)
        s = s * scale_log2 + bias2[None, :]
        p = tl.exp2(s - lse2[:, None])
        if NEED_COL:
            col += p
        if NEED_ENT:
            ent += p * tl.where(p > 0.0, s, 0.0)
    if NEED_COL:
        tl.store(COL + pid_bh.to(tl.int64) * n_keys + offs_n, tl.sum(col, 0), mask=n_ok)
    if NEED_ENT:
        tl.store(ENT + pid_bh * tl.num_programs(0) + pid_n, tl.sum(tl.sum(ent, 1), 0) * 0.6931471805599453)


@functools.cache
def _kernels() -> tuple[Callable, Callable]:
    """The two kernels: JIT-compiled for the GPU, or interpreted where ``interpreting()``."""
    _import_triton()
    return triton.jit(_lse_body), triton.jit(_stats_body)


# --- launchers -----------------------------------------------------------------------------------
def _head_dim_block(d: int) -> int:
    return max(16, 1 << (d - 1).bit_length())


def per_key_bias(bias: Tensor | None, b: int, h: int, nk: int) -> Tensor | None:
    """A bias broadcastable to (B, H, Nq, Nk) that is constant over query rows, as fp32 (B, H, Nk)
    (broadcast dimensions keep stride 0); raises ``ValueError`` for a bias that varies over rows."""
    if bias is None:
        return None
    if bias.ndim > 4:
        raise ValueError(f"bias has {bias.ndim} dims; expected at most 4 (B, H, Nq, Nk)")
    b4 = bias.reshape((1,) * (4 - bias.ndim) + tuple(bias.shape))
    if b4.shape[-2] != 1 or b4.shape[-1] != nk or b4.shape[0] not in (1, b) or b4.shape[1] not in (1, h):
        raise ValueError(f"the fused kernel takes a per-key bias (B|1, H|1, 1, {nk}); got {tuple(bias.shape)}")
    out = b4[:, :, 0, :].float()
    if out.stride(-1) != 1:
        out = out.contiguous()
    return out.expand(b, h, nk)


def _check(q: Tensor, k: Tensor) -> None:
    if q.ndim != 4 or k.ndim != 4 or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q (B, H, Nq, D) and k (B, H, Nk, D) must agree; got {tuple(q.shape)}, {tuple(k.shape)}")
    if q.dtype != k.dtype:
        raise ValueError(f"q and k must share a dtype; got {q.dtype} and {k.dtype}")
    if q.device.type not in ("cuda", "cpu"):
        raise ValueError(f"the Triton kernels run on CUDA (or on CPU under the interpreter), not {q.device}")


def _last_contiguous(x: Tensor) -> Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _prepare(q: Tensor, k: Tensor, rows: Tensor | None, bias: Tensor | None):
    _check(q, k)
    b, h, nq, d = q.shape
    nk = k.shape[-2]
    q, k = _last_contiguous(q), _last_contiguous(k)
    if rows is not None and rows.numel() == nq:
        rows = None  # unique indices covering every row: the same set, read in order
    if rows is not None:
        rows = rows.to(device=q.device, dtype=torch.int32)
    kb = per_key_bias(bias, b, h, nk)
    interpret = interpreting()
    if q.device.type == "cpu" and not interpret:
        raise RuntimeError(
            "the Triton kernels run on CPU only under Triton's interpreter: set TRITON_INTERPRET=1 before "
            "triton is first imported (in this process it was imported without it)"
        )
    cfg = INTERPRETER_CONFIG if interpret else GPU_CONFIG
    return q, k, rows, kb, interpret, cfg


def row_lse(
    q: Tensor, k: Tensor, *, scale: float, rows: Tensor | None = None, bias: Tensor | None = None
) -> Tensor:
    """Row log-sum-exp (fp32, natural log) of scale * q k^T + bias, shape (B, H, Nq); only the
    ``rows`` (unique indices; None: all) are written, the other entries are left unset."""
    q, k, rows, kb, interpret, cfg = _prepare(q, k, rows, bias)
    b, h, nq, d = q.shape
    n_rows = nq if rows is None else int(rows.numel())
    lse = torch.empty(b, h, nq, dtype=torch.float32, device=q.device)
    lse_kernel, _ = _kernels()
    dummy = lse  # placeholder pointer for absent optional inputs (never read)
    grid = (triton.cdiv(n_rows, cfg.lse_block_m), b * h)
    extra = {} if interpret else {"num_warps": cfg.lse_warps, "num_stages": cfg.stages}
    lse_kernel[grid](
        q, k, kb if kb is not None else dummy, rows if rows is not None else dummy, lse,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        kb.stride(0) if kb is not None else 0, kb.stride(1) if kb is not None else 0,
        lse.stride(0), lse.stride(1),
        h, n_rows, k.shape[-2], d, scale * LOG2E,
        HAS_ROWS=rows is not None, HAS_BIAS=kb is not None, IEEE=q.dtype == torch.float32,
        EVEN_D=_head_dim_block(d) == d, D=_head_dim_block(d), BLOCK_M=cfg.lse_block_m, BLOCK_N=cfg.lse_block_n,
        **extra,
    )  # fmt: skip
    return lse


def mass_entropy_sums(
    q: Tensor,
    k: Tensor,
    *,
    scale: float,
    rows: Tensor | None = None,
    bias: Tensor | None = None,
    lse: Tensor | None = None,
    need_mass: bool = True,
    need_entropy: bool = True,
) -> tuple[Tensor | None, Tensor | None]:
    """Column sums of A over the query rows (B, H, Nk) and the sum of their entropies (B, H), fp32.

    ``lse`` (B, H, Nq), natural log, must be the log-sum-exp of the same biased logits (the forward's
    where it exists); without it ``row_lse`` computes it first (one more pass). ``rows``: unique
    query-row indices (None: all rows).
    """
    if not (need_mass or need_entropy):
        return None, None
    q, k, rows, kb, interpret, cfg = _prepare(q, k, rows, bias)
    b, h, nq, d = q.shape
    nk = k.shape[-2]
    if lse is None:
        lse = row_lse(q, k, scale=scale, rows=rows, bias=bias)
    if lse.shape != (b, h, nq):
        raise ValueError(f"lse must be (B, H, Nq) = {(b, h, nq)}; got {tuple(lse.shape)}")
    lse = lse.float().contiguous()  # the CPU flash kernel returns it with strides of (B, Nq, H)
    n_rows = nq if rows is None else int(rows.numel())
    n_blocks = triton.cdiv(nk, cfg.stats_block_n)
    col = torch.empty(b, h, nk, dtype=torch.float32, device=q.device) if need_mass else None
    ent = torch.empty(b * h, n_blocks, dtype=torch.float32, device=q.device) if need_entropy else None
    _, stats_kernel = _kernels()
    dummy = lse
    extra = {} if interpret else {"num_warps": cfg.stats_warps, "num_stages": cfg.stages}
    stats_kernel[(n_blocks, b * h)](
        q, k, kb if kb is not None else dummy, rows if rows is not None else dummy, lse,
        col if col is not None else dummy, ent if ent is not None else dummy,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        kb.stride(0) if kb is not None else 0, kb.stride(1) if kb is not None else 0,
        lse.stride(0), lse.stride(1),
        h, n_rows, nk, d, scale * LOG2E,
        HAS_ROWS=rows is not None, HAS_BIAS=kb is not None, IEEE=q.dtype == torch.float32,
        NEED_COL=need_mass, NEED_ENT=need_entropy, EVEN_D=_head_dim_block(d) == d,
        D=_head_dim_block(d), BLOCK_M=cfg.stats_block_m, BLOCK_N=cfg.stats_block_n,
        **extra,
    )  # fmt: skip
    ent_sum = None
    if ent is not None:
        lse_rows = lse if rows is None else lse.index_select(2, rows.long())
        ent_sum = lse_rows.sum(-1) - ent.view(b, h, n_blocks).sum(-1)
    return col, ent_sum


def flops_per_pass(b: int, h: int, nq: int, nk: int, d: int) -> float:
    """Multiply-add FLOPs of one QK^T pass (for benchmarks' roofline notes)."""
    return 2.0 * b * h * nq * nk * d


__all__ = [
    "GPU_CONFIG",
    "INTERPRETER_CONFIG",
    "LaunchConfig",
    "available",
    "flops_per_pass",
    "mass_entropy_sums",
    "per_key_bias",
    "row_lse",
]
