"""Activation norms of one site call in a fixed, small number of launches (issue 20).

Design
------
``reference.activation_norms`` is the oracle: per stream of token rows, it gathers the per-token norms,
sorts them and reads the maximum and the 95th percentile (linear interpolation between order
statistics, numpy's default), about ten small kernel launches per stream. On the GPU a site call is
host-bound, so the launch count is the cost. Here every stream is handled at once:

- ``NormIndex.build`` (once per trace and site shape, on the host, then one copy to the device) lays
  the streams out as rows of a padded (streams, n_max) table of token indices, padding with the index
  of one extra ``-inf`` column; it also records, per stream, the flat positions of the order
  statistics that the percentile and the maximum need in that table once sorted (the pads sort first),
  the interpolation fraction, and 0 or NaN (an empty stream gives NaN);
- ``activation_norms`` then runs: the norms per order (one reduction each), one gather of the padded
  table, ONE sort along its last dimension for every stream, one gather of the order statistics, and
  the interpolation: about a dozen launches whatever the number of streams, with no host sync.

The sorted values of a stream are the same multiset as the oracle's (plus leading ``-inf`` pads), and
the interpolation is the same fp32 arithmetic, so the results are bit-identical to
``reference.activation_norms`` (tested), NaN norms included (they sort last in both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # shapes for readers and type checkers (jaxtyping's convention); no runtime checks
    from jaxtyping import Float


@dataclass(frozen=True)
class NormIndex:
    """Device-side positions for ``activation_norms`` of one site shape (build once, reuse every call).

    ``gather``: (S * n_max,) token indices, pads = N (the ``-inf`` column); ``picks``: (S * 3,) flat
    positions of (lo, hi, last) in the sorted table; ``frac``: (S,) interpolation fractions;
    ``empty``: (S,) 0 or NaN; ``n_tokens``: N, the token count the index was built for."""

    gather: Tensor
    picks: Tensor
    frac: Tensor
    empty: Tensor
    n_streams: int
    n_max: int
    n_tokens: int

    @classmethod
    def build(cls, rows_by_stream: Mapping[str, np.ndarray | Tensor], n_tokens: int, device: torch.device) -> NormIndex:
        """From host row indices per stream (in the order of the output's stream axis)."""
        rows = [np.asarray(r.cpu() if isinstance(r, Tensor) else r, dtype=np.int64) for r in rows_by_stream.values()]
        n_max = max(1, *(len(r) for r in rows))
        gather = np.full((len(rows), n_max), n_tokens, dtype=np.int64)
        picks = np.zeros((len(rows), 3), dtype=np.int64)
        frac = np.zeros(len(rows), dtype=np.float32)
        empty = np.zeros(len(rows), dtype=np.float32)
        for s, r in enumerate(rows):
            n = len(r)
            if n == 0:
                empty[s] = np.nan
                continue
            pad = n_max - n
            gather[s, pad:] = r
            pos = 0.95 * (n - 1)  # as reference.activation_norms: numpy's linear interpolation
            lo = int(pos)
            hi = min(lo + 1, n - 1)
            frac[s] = pos - lo
            picks[s] = (s * n_max + pad + lo, s * n_max + pad + hi, s * n_max + n_max - 1)
        as_dev = lambda a: torch.as_tensor(a).to(device)  # noqa: E731
        return cls(
            as_dev(gather.reshape(-1)), as_dev(picks.reshape(-1)), as_dev(frac), as_dev(empty), len(rows), n_max,
            n_tokens,
        )  # fmt: skip


def activation_norms(
    x: Float[Tensor, "*lead n d"], index: NormIndex, ords: tuple[str, ...]
) -> tuple[Float[Tensor, "*lead streams ords"], Float[Tensor, "*lead streams ords"]]:
    """Max and 95th percentile over tokens of per-token norms, per stream and norm order; the contract
    of ``reference.activation_norms`` (same values, bit for bit) with the streams given as a ``NormIndex``."""
    if x.shape[-2] != index.n_tokens:
        raise ValueError(f"this NormIndex was built for {index.n_tokens} tokens, the call has {x.shape[-2]}")
    lead = x.shape[:-2]
    n_ords = len(ords)
    norms = torch.stack(
        [
            torch.linalg.vector_norm(x, ord=float("inf") if o == "inf" else 2.0, dim=-1, dtype=torch.float32)
            for o in ords
        ],
        dim=-2,
    )  # (*lead, n_ords, N)
    padded = torch.cat([norms, norms.new_full((*lead, n_ords, 1), float("-inf"))], dim=-1)
    table = padded.index_select(-1, index.gather).view(*lead, n_ords, index.n_streams, index.n_max)
    srt = table.sort(dim=-1).values.view(*lead, n_ords, index.n_streams * index.n_max)
    lo, hi, last = srt.index_select(-1, index.picks).view(*lead, n_ords, index.n_streams, 3).unbind(-1)
    mx = last + index.empty
    p95 = lo + index.frac * (hi - lo) + index.empty
    return mx.transpose(-1, -2), p95.transpose(-1, -2)


__all__ = ["NormIndex", "activation_norms"]
