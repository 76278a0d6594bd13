"""Choosing launch shapes for the Triton statistics kernels: candidates, timings, the fastest pair.

Design
------
``triton_stats`` runs the kernels with a ``LaunchConfig`` looked up per call shape on the host
(``set_gpu_config`` installs one); this module finds one. ``candidates(kernel)`` lists block shapes,
warps and pipeline stages for the stats pass and the LSE pass, pruned of shapes whose tiles would not
fit in shared memory. ``tune_report(q, k, ...)`` compiles every candidate (in parallel threads, where
Triton allows), checks each one's output against the current configuration's, times it with CUDA
events (``timer``), and returns every timing, the registers and spills Triton reports, and the fastest
(stats, LSE) pair; ``tune`` returns only that pair, and ``install=True`` installs it for the shape.
It is a separate module because it is a tool (``benchmarks/triton_tune.py`` runs it), not part of the
statistics path: nothing here runs unless asked.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.kernels.triton_stats import (
    ConfigKey,
    LaunchConfig,
    PassConfig,
    _head_dim_block,
    _launch_lse,
    _launch_stats,
    _prepare,
    _row_lse,
    _stats_buffers,
    set_gpu_config,
)

SMEM_BUDGET = 160 * 1024
"""Shared memory a candidate may plan for (H100/H200: 227 KiB per block; Triton adds its own)."""


def candidates(kernel: str, *, head_dim: int = 64, dtype: torch.dtype = torch.bfloat16) -> list[PassConfig]:
    """The launch shapes ``tune`` tries for ``kernel`` ("stats" or "lse"), pruned of the obviously
    poor or invalid: tiles of fewer than 16 logits per thread (idle warps) and pipelines whose
    operand buffers (the resident tile plus ``stages`` streamed tiles) exceed ``SMEM_BUDGET``."""
    if kernel == "stats":
        shapes = [(bm, bn) for bn in (64, 128) for bm in (32, 64, 128)]
    elif kernel == "lse":
        shapes = [(bm, bn) for bm in (64, 128) for bn in (32, 64, 128)]
    else:
        raise ValueError(f"kernel must be 'stats' or 'lse', not {kernel!r}")
    row_bytes = _head_dim_block(head_dim) * torch.empty((), dtype=dtype).element_size()
    out = []
    for bm, bn in shapes:
        resident, streamed = (bn, bm) if kernel == "stats" else (bm, bn)
        for warps in (4, 8):
            for stages in (2, 3, 4):
                if bm * bn < 16 * 32 * warps or (resident + stages * streamed) * row_bytes > SMEM_BUDGET:
                    continue
                out.append(PassConfig(bm, bn, warps, stages))
    return out


@dataclass(frozen=True)
class Timing:
    """One candidate's time per launch (ms: the median of 3 rounds of ``reps`` back-to-back launches;
    inf where it failed to compile or run, or disagreed with the reference configuration)."""

    kernel: str
    config: PassConfig
    ms: float
    registers: int | None = None
    spills: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class TuneReport:
    """Every candidate's timing for one call shape, and the fastest pair."""

    key: ConfigKey
    timings: tuple[Timing, ...]
    best: LaunchConfig
    device: str

    def markdown(self) -> str:
        dtype, b, h, nq, nk, d, n_rows = self.key
        lines = [f"B={b} H={h} Nq={nq} Nk={nk} D={d} {dtype}, {n_rows} query rows ({self.device})", ""]
        for kernel, chosen in (("stats", self.best.stats), ("lse", self.best.lse)):
            lines += [f"{kernel} pass", "", "| config | ms | registers | spills | note |", "|---|---:|---:|---:|---|"]
            rows = sorted((t for t in self.timings if t.kernel == kernel), key=lambda t: t.ms)
            for t in rows:
                label = f"**{t.config.label()}**" if t.config == chosen else t.config.label()
                ms = f"{t.ms:.4f}" if math.isfinite(t.ms) else "-"
                regs = "" if t.registers is None else str(t.registers)
                spills = "" if t.spills is None else str(t.spills)
                note = "chosen" if t.config == chosen else (t.error or "").replace("|", "/").replace("\n", " ")[:120]
                lines.append(f"| {label} | {ms} | {regs} | {spills} | {note} |")
            lines.append("")
        lines.append(f"chosen: stats {self.best.stats.label()}, lse {self.best.lse.label()}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "key": list(self.key),
            "device": self.device,
            "best": {"stats": self.best.stats._asdict(), "lse": self.best.lse._asdict()},
            "timings": [
                {"kernel": t.kernel, **t.config._asdict(), "ms": t.ms if math.isfinite(t.ms) else None,
                 "registers": t.registers, "spills": t.spills, "error": t.error}
                for t in self.timings
            ],
        }  # fmt: skip


def timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    def time_ms(fn: Callable[[], object], reps: int) -> float:
        rounds = []
        for _ in range(3):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    fn()
                end.record()
                end.synchronize()
                rounds.append(start.elapsed_time(end) / reps)
            else:
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                rounds.append((time.perf_counter() - t0) * 1e3 / reps)
        return statistics.median(rounds)

    return time_ms


def _precompile(jobs: Mapping[str, list[Callable[[], object]]], device: torch.device) -> None:
    """Compile the candidates (``jobs``: per kernel, launches with ``warmup=True``) in parallel threads:
    Triton's compiler releases the GIL for most of its work (on 2 cores, 2 threads compile a dozen of
    these kernels in half the time). Best effort and public API only: a candidate that fails to
    compile here is left out of the JIT cache, compiles again when it is timed, and is recorded then."""

    def job_on_device(job: Callable[[], object]) -> None:
        with torch.cuda.device(device), contextlib.suppress(Exception):  # threads start on device 0
            job()

    rest = []
    for kernel_jobs in jobs.values():
        if kernel_jobs:
            job_on_device(kernel_jobs[0])  # alone: it creates the kernel's per-device JIT caches
            rest += kernel_jobs[1:]
    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as pool:
        list(pool.map(job_on_device, rest))


def _kernel_info(ck: Any) -> tuple[int | None, int | None]:
    try:
        return getattr(ck, "n_regs", None), getattr(ck, "n_spills", None)
    except Exception:
        return None, None


def tune_report(
    q: Tensor,
    k: Tensor,
    *,
    rows: Tensor | None = None,
    configs: Mapping[str, Iterable[PassConfig | tuple[int, int, int, int]]] | None = None,
    reps: int = 20,
    scale: float | None = None,
    bias: Tensor | None = None,
    install: bool = False,
) -> TuneReport:
    """Time each kernel's candidates (``configs``: {"stats": [...], "lse": [...]}, each kernel
    ``candidates()`` where absent) on these inputs and return every timing and the fastest pair.

    Each candidate's output is compared with the current configuration's (column sums, entropy
    partials summed, log-sum-exp); one that disagrees counts as failed. The stats pass is timed given
    the log-sum-exp (the one-pass case). ``install``: ``set_gpu_config(best, config_key(q, k, rows))``.
    Meant for CUDA; under the interpreter it runs (wall-clock times, meaningless) so tests cover it.
    Synchronises with the device, of course: call it once per shape, outside timed code.
    """
    c = _prepare(q, k, rows, bias)
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    scale = c.q.shape[-1] ** -0.5 if scale is None else scale
    cand = {name: candidates(name, head_dim=c.q.shape[-1], dtype=c.q.dtype) for name in ("stats", "lse")}
    for name, cfgs in (configs or {}).items():
        if name not in cand:
            raise ValueError(f"configs takes 'stats' and 'lse' lists, not {name!r}")
        cand[name] = [PassConfig(*x) for x in cfgs]
    device = c.q.device
    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        base = c.config()
        lse_ref = _row_lse(c, scale, base.lse)
        col_ref, ent_ref = _stats_buffers(c, base.stats, True, True)
        _launch_stats(c, lse_ref, col_ref, ent_ref, scale, base.stats)
        ent_ref = ent_ref.sum(-1)
        rows_idx = torch.arange(c.q.shape[2], device=device) if c.rows is None else c.rows.long()
        lse_ref_rows = lse_ref.index_select(2, rows_idx)

        lse_out = torch.empty_like(lse_ref)
        bufs = {pc: _stats_buffers(c, pc, True, True) for pc in cand["stats"]}
        if not c.interpret:
            jobs = {
                "lse": [functools.partial(_launch_lse, c, lse_out, scale, pc, True) for pc in cand["lse"]],
                "stats": [
                    functools.partial(_launch_stats, c, lse_ref, *bufs[pc], scale, pc, True) for pc in cand["stats"]
                ],
            }
            _precompile(jobs, device)

        time_ms = timer(device)
        timings: list[Timing] = []

        def run(
            kernel: str,
            pc: PassConfig,
            outs: tuple[Tensor, ...],
            launch: Callable[[], Any],
            check: Callable[[], str | None],
        ) -> None:
            try:
                for out in outs:  # NaN until written: a candidate that writes nothing fails its check
                    out.fill_(math.nan)
                ck = launch()  # compiles here where the parallel pre-compilation did not
                regs, spills = _kernel_info(ck)
                error = check()
                ms = math.inf if error else time_ms(launch, reps)
            except Exception as exc:  # a candidate that does not compile or launch: record, go on
                regs, spills, error, ms = None, None, f"{type(exc).__name__}: {exc}"[:500], math.inf
            timings.append(Timing(kernel, pc, ms, regs, spills, error))

        def close(name: str, got: Tensor, want: Tensor) -> str | None:
            ok = torch.allclose(got, want, rtol=1e-4, atol=1e-5)
            return None if ok else f"{name} differs from the reference configuration's"

        for pc in cand["lse"]:
            run("lse", pc, (lse_out,), functools.partial(_launch_lse, c, lse_out, scale, pc),
                lambda: close("lse", lse_out.index_select(2, rows_idx), lse_ref_rows))  # fmt: skip
        for pc in cand["stats"]:
            col, ent = bufs[pc]

            def check(col: Tensor = col, ent: Tensor = ent) -> str | None:
                return close("column sums", col, col_ref) or close("entropy", ent.sum(-1), ent_ref)

            run("stats", pc, (col, ent), functools.partial(_launch_stats, c, lse_ref, col, ent, scale, pc), check)

    best = {}
    for kernel in ("stats", "lse"):
        ok = [t for t in timings if t.kernel == kernel and math.isfinite(t.ms)]
        if not ok:
            errors = "; ".join(f"{t.config.label()}: {t.error}" for t in timings if t.kernel == kernel)[:2000]
            raise RuntimeError(f"no {kernel} candidate ran: {errors}")
        best[kernel] = min(ok, key=lambda t: t.ms).config
    cfg = LaunchConfig.from_passes(best["stats"], best["lse"])
    if install:
        set_gpu_config(cfg, c.key)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu, Triton interpreter"
    return TuneReport(c.key, tuple(timings), cfg, name)


def tune(
    q: Tensor,
    k: Tensor,
    *,
    rows: Tensor | None = None,
    configs: Mapping[str, Iterable[PassConfig | tuple[int, int, int, int]]] | None = None,
    reps: int = 20,
    scale: float | None = None,
    bias: Tensor | None = None,
    install: bool = False,
) -> LaunchConfig:
    """The fastest launch configuration for calls shaped like these inputs (``tune_report``'s best)."""
    return tune_report(q, k, rows=rows, configs=configs, reps=reps, scale=scale, bias=bias, install=install).best


__all__ = ["SMEM_BUDGET", "Timing", "TuneReport", "candidates", "timer", "tune", "tune_report"]
