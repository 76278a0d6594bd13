"""Per-trace memo of the kernels: what a trace learns once and reuses at every step.

Design
------
Some kernel facts are worth computing once per shape rather than once per call: the seeded query-row
subsample of ``query_topk`` on the GPU (a host-to-device copy syncs), whether the aten op that returns
the log-sum-exp is bit-identical to public SDPA for a shape (one host sync to check), whether cuDNN
takes an edit's biased call. They live in a :class:`KernelCache` that the caller owns: the trace's
observer creates one per trace, so device tensors are freed with the trace and nothing is process-wide.
A kernel called without a cache computes (and, for the checks, verifies) afresh: correct, only slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class KernelCache:
    """``sample_positions``: (n, size, seed, device) -> subsample positions on the device;
    ``lse_verified``: call key -> whether the LSE-returning op matched public SDPA bit for bit;
    ``cudnn_ok``: call key -> whether cuDNN took the edit's biased call and matched SDPA."""

    sample_positions: dict[tuple, Tensor] = field(default_factory=dict)
    lse_verified: dict[tuple, bool] = field(default_factory=dict)
    cudnn_ok: dict[tuple, bool] = field(default_factory=dict)
