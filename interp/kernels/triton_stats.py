"""Fused Triton kernels for incoming mass and entropy: one extra QK^T pass given the row log-sum-exp.

Design
------
For logits s_ij = scale * q_i . k_j + b_ij (``b``: an optional per-key bias, finite or -inf, such as
an edit's log eta or a padding mask) and the row log-sum-exp lse_i of those logits (the forward's,
when the caller has it), the attention probabilities are A_ij = exp(s_ij - lse_i) and

- the column sums c_j = sum_{i in Q} A_ij give the incoming mass m_j = c_j / |Q|,
- the entropy sum is sum_{i in Q} H_i = sum_{i in Q} lse_i - sum_{i in Q} sum_j A_ij s_ij
  (docs/design.md, Statistics and their identities; terms with A_ij = 0 contribute 0, so -inf biases are safe).

``_stats_kernel`` makes one pass over QK^T for both: each program owns one block of BLOCK_N keys of
one (batch row, head), loads those keys once, and walks every block of BLOCK_M query rows in Q. It
computes the logits tile *transposed*, s^T = K Q^T of shape [BLOCK_N keys, BLOCK_M queries], so that
the sums over queries that both statistics need are sums along the tile's rows. In the tensor-core
(MMA) layouts a row of the accumulator lives in the registers of one thread and its three neighbours
of a quad (when the warps split the tile by rows, BLOCK_N >= 16 x warps; otherwise partial sums also
cross warps through shared memory), so a row reduction is in-thread adds and two shuffles, and each
step folds its tile straight into two [BLOCK_N] fp32 vectors (column sums and sum_i A_ij s_ij per
key). An earlier
version computed s = Q K^T [queries, keys] and, to avoid a cross-warp column reduction per step,
kept two full [BLOCK_M, BLOCK_N] fp32 accumulator tiles alive across the loop on top of the logits
and probability tiles: at 64 x 128 with 4 warps that is 64 fp32 registers per thread per tile and
the kernel sat at the 255-register limit (at most two programs, 8 warps, per SM to hide latency).
The transposed kernel needs about half the registers at the same tile (ptxas, sm_90: 128 vs 254).
The query tile is loaded [BLOCK_M, D] and fed to ``tl.dot(k, tl.trans(q))``, the usual spelling;
loading it as [D, BLOCK_M] directly compiles to the same instructions (Triton 3.8, sm_90).

Keys whose bias is -inf, and keys past the end of a partial last block, get the finite base-2 logit
bias -1e30 instead of -inf: exp2(-1e30 - lse) is exactly 0 as exp2(-inf) is, and p * s is then 0
rather than 0 * -inf = NaN, so the loop needs no per-element guard. Query rows past the end of a
partial block read lse = +inf, which makes their p exactly 0 as well. Each program writes the column
sums of its keys and one partial entropy sum; a ``torch.sum`` over the (few dozen) partials finishes
the entropy. No atomics, so the result is deterministic and re-running a launch is harmless.

When the caller has no log-sum-exp (the original attention call ran through public SDPA, which does
not return it, or the logits carry an edit's bias), ``_lse_kernel`` computes it first: a row-parallel
online log-sum-exp over the keys (a QK^T pass without the P V product; the key bias, -inf past the
end, enters with the scale as one multiply-add per logit). Query rows may be a subset (``rows``,
unique indices): they are gathered inside the kernels, nothing is copied.

Both kernels accumulate in fp32; the QK^T product uses the inputs' dtype on the tensor cores (bf16 or
fp16 products are exact in fp32) and full fp32 ("ieee") for fp32 inputs. Logits are carried in base
2 (``exp2``) and converted back to nats on output. On CPU the same kernel bodies run under Triton's
interpreter (used by the tests); ``triton`` is optional: ``available()`` says whether it is installed.

Launch configurations
---------------------
Block sizes, warps and pipeline stages of the two kernels (``LaunchConfig``) are chosen per call on
the host from the call's shape alone (``config_key``: dtype, B, H, Nq, Nk, D, query rows), so the
choice never synchronises with the device. Precedence: a ``gpu_config(cfg, key)`` block, then a
configuration installed with ``set_gpu_config(cfg, key)``, each first for the call's own key and then
for ``key=None`` (every call), then the module default ``GPU_CONFIG`` (``INTERPRETER_CONFIG`` under
the interpreter). Neither is process-global: both are context variables holding immutable tables
(``set_gpu_config`` replaces the current context's table with a new one), so an installation belongs
to the thread or task that made it, like the open plan, and a trace in another thread is unaffected
(a thread that should use a tuning installs it, or runs in ``contextvars.copy_context()``).
``benchmarks/triton_tuning.py`` (a tool, not the library) finds a configuration for a shape (``tune``);
``benchmarks/triton_tune.py`` runs it at SD3 size.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

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


# --- launch configurations -----------------------------------------------------------------------
class PassConfig(NamedTuple):
    """One kernel's launch shape. Stats pass: ``block_n`` keys per program, ``block_m`` query rows per
    step; LSE pass: ``block_m`` query rows per program, ``block_n`` keys per step."""

    block_m: int
    block_n: int
    warps: int
    stages: int

    def label(self) -> str:
        return f"M{self.block_m} N{self.block_n} w{self.warps} s{self.stages}"


def _pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


@dataclass(frozen=True)
class LaunchConfig:
    """Block sizes, warps and pipeline stages of the two kernels (``stats_block_n``: keys per stats
    program; ``lse_block_m``: query rows per LSE program). ``stages`` applies to both kernels unless
    ``lse_stages`` / ``stats_stages`` say otherwise."""

    lse_block_m: int = 128
    lse_block_n: int = 64
    lse_warps: int = 4
    stats_block_m: int = 64
    stats_block_n: int = 128
    stats_warps: int = 8
    stages: int = 3
    lse_stages: int | None = None
    stats_stages: int | None = None

    def __post_init__(self) -> None:
        blocks = (self.lse_block_m, self.lse_block_n, self.stats_block_m, self.stats_block_n)
        if not all(_pow2(x) and x >= 16 for x in blocks):
            raise ValueError(f"block sizes must be powers of two >= 16 (tl.dot needs 16); got {blocks}")
        if not all(_pow2(w) and w <= 32 for w in (self.lse_warps, self.stats_warps)):
            raise ValueError(f"warps must be powers of two <= 32; got {self.lse_warps}, {self.stats_warps}")
        stages = [s for s in (self.stages, self.lse_stages, self.stats_stages) if s is not None]
        if not all(s >= 1 for s in stages):
            raise ValueError(f"pipeline stages must be >= 1; got {stages}")

    @property
    def lse(self) -> PassConfig:
        st = self.stages if self.lse_stages is None else self.lse_stages
        return PassConfig(self.lse_block_m, self.lse_block_n, self.lse_warps, st)

    @property
    def stats(self) -> PassConfig:
        st = self.stages if self.stats_stages is None else self.stats_stages
        return PassConfig(self.stats_block_m, self.stats_block_n, self.stats_warps, st)

    @classmethod
    def from_passes(cls, stats: PassConfig, lse: PassConfig) -> LaunchConfig:
        """The configuration that launches the stats pass as ``stats`` and the LSE pass as ``lse``."""
        return cls(
            lse_block_m=lse.block_m, lse_block_n=lse.block_n, lse_warps=lse.warps,
            stats_block_m=stats.block_m, stats_block_n=stats.block_n, stats_warps=stats.warps,
            stages=stats.stages, lse_stages=lse.stages, stats_stages=stats.stages,
        )  # fmt: skip


GPU_CONFIG = LaunchConfig(stats_block_m=128, stats_block_n=128, stats_warps=4, stages=3)
"""Default on CUDA: the fastest shapes ``benchmarks/triton_tune.py`` measured for the transposed stats
kernel at SD3 size on an H200 (B=2, H=24, 4429 keys, 4096 image query rows, bf16): stats 128 x 128
with 4 warps 0.40 ms (the untransposed kernel's best was 0.536 ms), lse 128 x 64 with 4 warps 0.40 ms,
against 0.588 ms for public SDPA on the same tensors. ``set_gpu_config`` installs another tuning."""
INTERPRETER_CONFIG = LaunchConfig(16, 16, 1, 16, 16, 1, 1)

ConfigKey = tuple[str, int, int, int, int, int, int]
"""(dtype, B, H, Nq, Nk, D, query rows) of a call: what a launch configuration is chosen by."""

LaunchTable = Mapping[ConfigKey | None, LaunchConfig]
_EMPTY: LaunchTable = MappingProxyType({})
_INSTALLED: contextvars.ContextVar[LaunchTable] = contextvars.ContextVar("interp_triton_installed", default=_EMPTY)
_SCOPED: contextvars.ContextVar[Mapping[ConfigKey | None, LaunchConfig] | None] = contextvars.ContextVar(
    "interp_triton_launch_config", default=None
)


def config_key(q: Tensor, k: Tensor, rows: Tensor | None = None) -> ConfigKey:
    """The shape key of a call (host metadata only: no device synchronisation)."""
    b, h, nq, d = q.shape
    n_rows = nq if rows is None else int(rows.numel())
    return (str(q.dtype).removeprefix("torch."), b, h, nq, k.shape[-2], d, n_rows)


def set_gpu_config(cfg: LaunchConfig | None, key: ConfigKey | None = None) -> None:
    """Install ``cfg`` in the current context (thread or task) for the calls of shape ``key``
    (``config_key``; None: every call without a configuration of its own); ``cfg=None`` removes what
    was installed for ``key``. The table is replaced, never mutated: readers hold a consistent one."""
    table = dict(_INSTALLED.get())
    if cfg is None:
        table.pop(key, None)
    else:
        table[key] = cfg
    _INSTALLED.set(MappingProxyType(table))


@contextlib.contextmanager
def gpu_config(cfg: LaunchConfig, key: ConfigKey | None = None) -> Iterator[LaunchConfig]:
    """Launch with ``cfg`` inside the block (for the calls of shape ``key``; None: every call)."""
    token = _SCOPED.set({**(_SCOPED.get() or {}), key: cfg})
    try:
        yield cfg
    finally:
        _SCOPED.reset(token)


def _lookup(key: ConfigKey, interpret: bool) -> LaunchConfig:
    for table in (_SCOPED.get() or _EMPTY, _INSTALLED.get()):
        for k in (key, None):
            if k in table:
                return table[k]
    return INTERPRETER_CONFIG if interpret else GPU_CONFIG


def current_config(q: Tensor, k: Tensor, rows: Tensor | None = None) -> LaunchConfig:
    """The launch configuration a call with these inputs would use now."""
    return _lookup(config_key(q, k, rows), interpreting())


# --- kernel bodies (decorated lazily: see _kernels) ----------------------------------------------
def _lse_body(
    Q, K, BIAS, ROWS, LSE,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_bb, stride_bh,
    stride_lb, stride_lh,
    H, n_rows, n_keys, head_dim, scale_log2,
    HAS_ROWS: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr, EVEN_D: tl.constexpr, UPCAST: tl.constexpr,
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
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    k_base = K + b * stride_kb + h * stride_kh
    for start in range(0, n_keys, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_keys
        k = tl.load(
            k_base + offs_n[:, None] * stride_kn + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :], other=0.0
        )
        if UPCAST:
            k = k.to(tl.float32)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        # the key bias (-inf past the end) enters with the scale as one multiply-add per logit
        if HAS_BIAS:
            bias2 = tl.load(BIAS + b * stride_bb + h * stride_bh + offs_n, mask=n_ok, other=float("-inf"))
            bias2 = bias2 * 1.4426950408889634
        else:
            bias2 = tl.where(n_ok, 0.0, float("-inf"))
        s = s * scale_log2 + bias2[None, :]
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
    NEED_COL: tl.constexpr, NEED_ENT: tl.constexpr, EVEN_D: tl.constexpr, UPCAST: tl.constexpr,
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
    if UPCAST:
        k = k.to(tl.float32)
    # keys with a -inf bias and keys past the end get a finite -1e30 (base 2): their p = exp2(-1e30 - lse)
    # is exactly 0 all the same, and p * s is 0 rather than NaN, with no per-element guard in the loop
    if HAS_BIAS:
        bias2 = tl.load(BIAS + b * stride_bb + h * stride_bh + offs_n, mask=n_ok, other=float("-inf"))
        bias2 = tl.maximum(bias2 * 1.4426950408889634, -1.0e30)
    else:
        bias2 = tl.where(n_ok, 0.0, -1.0e30)
    col_acc = tl.zeros([BLOCK_N], tl.float32)
    ent_acc = tl.zeros([BLOCK_N], tl.float32)
    q_base = Q + b * stride_qb + h * stride_qh
    l_base = LSE + b * stride_lb + h * stride_lh
    for start in range(0, n_rows, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M)
        m_ok = offs_m < n_rows
        if HAS_ROWS:
            rows = tl.load(ROWS + offs_m, mask=m_ok, other=0).to(tl.int64)
        else:
            rows = offs_m.to(tl.int64)
        q = tl.load(q_base + rows[:, None] * stride_qm + offs_d[None, :], mask=m_ok[:, None] & d_ok[None, :], other=0.0)
        if UPCAST:
            q = q.to(tl.float32)
        # rows past the end read lse = +inf, so their p is exactly 0 (and p * s too: s is finite)
        lse2 = tl.load(l_base + rows, mask=m_ok, other=float("inf")) * 1.4426950408889634
        # the transposed tile: keys are its rows, so the sums over queries are row reductions
        if IEEE:
            s = tl.dot(k, tl.trans(q), input_precision="ieee")
        else:
            s = tl.dot(k, tl.trans(q))
        s = s * scale_log2 + bias2[:, None]
        p = tl.exp2(s - lse2[None, :])
        if NEED_COL:
            col_acc += tl.sum(p, 1)
        if NEED_ENT:
            ent_acc += tl.sum(p * s, 1)
    if NEED_COL:
        tl.store(COL + pid_bh.to(tl.int64) * n_keys + offs_n, col_acc, mask=n_ok)
    if NEED_ENT:
        tl.store(ENT + pid_bh * tl.num_programs(0) + pid_n, tl.sum(ent_acc, 0) * 0.6931471805599453)


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


@dataclass(frozen=True)
class _Call:
    """A checked call: inputs with unit stride in D, int32 rows (None: all), fp32 per-key bias."""

    q: Tensor
    k: Tensor
    rows: Tensor | None
    kb: Tensor | None
    interpret: bool
    key: ConfigKey = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", config_key(self.q, self.k, self.rows))

    @property
    def n_rows(self) -> int:
        return self.q.shape[2] if self.rows is None else int(self.rows.numel())

    def config(self) -> LaunchConfig:
        return _lookup(self.key, self.interpret)


def _prepare(q: Tensor, k: Tensor, rows: Tensor | None, bias: Tensor | None) -> _Call:
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
    return _Call(q, k, rows, kb, interpret)


def _upcast(c: _Call) -> bool:
    """bf16 tiles go to fp32 before ``tl.dot`` under the interpreter, whose dot multiplies bf16 bit
    patterns as integers (Triton 3.x); bf16 products are exact in fp32, so the results are the GPU's."""
    return c.interpret and c.q.dtype == torch.bfloat16


def _launch_lse(c: _Call, lse: Tensor, scale: float, pc: PassConfig, warmup: bool = False) -> Any:
    """Write the rows' log-sum-exp into ``lse`` (B, H, Nq); ``warmup``: compile only, launch nothing.
    Returns Triton's compiled kernel (where it gives one)."""
    lse_kernel, _ = _kernels()
    q, k, kb, rows = c.q, c.k, c.kb, c.rows
    b, h, _, d = q.shape
    dummy = lse  # placeholder pointer for absent optional inputs (never read)
    grid = (triton.cdiv(c.n_rows, pc.block_m), b * h)
    extra = {} if c.interpret else {"num_warps": pc.warps, "num_stages": pc.stages}
    args = (
        q, k, kb if kb is not None else dummy, rows if rows is not None else dummy, lse,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        kb.stride(0) if kb is not None else 0, kb.stride(1) if kb is not None else 0,
        lse.stride(0), lse.stride(1),
        h, c.n_rows, k.shape[-2], d, scale * LOG2E,
    )  # fmt: skip
    kwargs = dict(
        HAS_ROWS=rows is not None, HAS_BIAS=kb is not None, IEEE=q.dtype == torch.float32,
        EVEN_D=_head_dim_block(d) == d, UPCAST=_upcast(c), D=_head_dim_block(d), BLOCK_M=pc.block_m,
        BLOCK_N=pc.block_n, **extra,
    )  # fmt: skip
    if warmup:
        return lse_kernel.warmup(*args, grid=grid, **kwargs)
    return lse_kernel[grid](*args, **kwargs)


def _stats_buffers(c: _Call, pc: PassConfig, need_mass: bool, need_entropy: bool) -> tuple[Tensor | None, ...]:
    b, h, _, _ = c.q.shape
    nk = c.k.shape[-2]
    n_blocks = triton.cdiv(nk, pc.block_n)
    dev = c.q.device
    col = torch.empty(b, h, nk, dtype=torch.float32, device=dev) if need_mass else None
    ent = torch.empty(b * h, n_blocks, dtype=torch.float32, device=dev) if need_entropy else None
    return col, ent


def _launch_stats(
    c: _Call, lse: Tensor, col: Tensor | None, ent: Tensor | None, scale: float, pc: PassConfig, warmup: bool = False
) -> Any:
    """Write the column sums into ``col`` (B, H, Nk) and the per-program entropy partials into ``ent``
    (B * H, key blocks); either may be None (not computed). ``lse``: fp32, contiguous."""
    _, stats_kernel = _kernels()
    q, k, kb, rows = c.q, c.k, c.kb, c.rows
    b, h, _, d = q.shape
    nk = k.shape[-2]
    dummy = lse
    extra = {} if c.interpret else {"num_warps": pc.warps, "num_stages": pc.stages}
    grid = (triton.cdiv(nk, pc.block_n), b * h)
    args = (
        q, k, kb if kb is not None else dummy, rows if rows is not None else dummy, lse,
        col if col is not None else dummy, ent if ent is not None else dummy,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        kb.stride(0) if kb is not None else 0, kb.stride(1) if kb is not None else 0,
        lse.stride(0), lse.stride(1),
        h, c.n_rows, nk, d, scale * LOG2E,
    )  # fmt: skip
    kwargs = dict(
        HAS_ROWS=rows is not None, HAS_BIAS=kb is not None, IEEE=q.dtype == torch.float32,
        NEED_COL=col is not None, NEED_ENT=ent is not None, EVEN_D=_head_dim_block(d) == d, UPCAST=_upcast(c),
        D=_head_dim_block(d), BLOCK_M=pc.block_m, BLOCK_N=pc.block_n, **extra,
    )  # fmt: skip
    if warmup:
        return stats_kernel.warmup(*args, grid=grid, **kwargs)
    return stats_kernel[grid](*args, **kwargs)


def _entropy_sum(c: _Call, lse: Tensor, ent: Tensor) -> Tensor:
    b, h = c.q.shape[:2]
    lse_rows = lse if c.rows is None else lse.index_select(2, c.rows.long())
    return lse_rows.sum(-1) - ent.view(b, h, -1).sum(-1)


def _row_lse(c: _Call, scale: float, pc: PassConfig) -> Tensor:
    b, h, nq, _ = c.q.shape
    lse = torch.empty(b, h, nq, dtype=torch.float32, device=c.q.device)
    _launch_lse(c, lse, scale, pc)
    return lse


def row_lse(q: Tensor, k: Tensor, *, scale: float, rows: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    """Row log-sum-exp (fp32, natural log) of scale * q k^T + bias, shape (B, H, Nq); only the
    ``rows`` (unique indices; None: all) are written, the other entries are left unset."""
    c = _prepare(q, k, rows, bias)
    return _row_lse(c, scale, c.config().lse)


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
    c = _prepare(q, k, rows, bias)
    cfg = c.config()
    b, h, nq, _ = c.q.shape
    if lse is None:
        lse = _row_lse(c, scale, cfg.lse)
    if lse.shape != (b, h, nq):
        raise ValueError(f"lse must be (B, H, Nq) = {(b, h, nq)}; got {tuple(lse.shape)}")
    lse = lse.float().contiguous()  # the CPU flash kernel returns it with strides of (B, Nq, H)
    col, ent = _stats_buffers(c, cfg.stats, need_mass, need_entropy)
    _launch_stats(c, lse, col, ent, scale, cfg.stats)
    return col, (_entropy_sum(c, lse, ent) if ent is not None else None)


def flops_per_pass(b: int, h: int, nq: int, nk: int, d: int) -> float:
    """Multiply-add FLOPs of one QK^T pass (for benchmarks' roofline notes)."""
    return 2.0 * b * h * nq * nk * d


__all__ = [
    "GPU_CONFIG",
    "INTERPRETER_CONFIG",
    "ConfigKey",
    "LaunchConfig",
    "PassConfig",
    "available",
    "config_key",
    "current_config",
    "flops_per_pass",
    "gpu_config",
    "mass_entropy_sums",
    "per_key_bias",
    "row_lse",
    "set_gpu_config",
]
