"""Replay: apply the key sets a baseline trace recorded, instead of selecting them online.

The source is a store path (and a sample index when the store holds several samples). Everything is
checked when the trace starts, before generation: the store exists, the sample is the same prompt and
seed as this trace, it recorded ``topk_keys`` with at least ``k`` ranks at every site the edit needs.
The recorded sets are then looked up per (site, step, call, branch) during the run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from interp.plan import PlanError


class ReplaySource:
    def __init__(
        self, path: str, sample: int | None, *, prompt: str | None, seed: int | None, k: int, sites: list[str]
    ) -> None:
        from interp.store.zarr_io import open_store

        p = Path(path)
        if not p.exists():
            raise PlanError(f"replay source {p} does not exist")
        ds = open_store(p, done_only=False)  # sample indices are the store's own
        n = ds.sizes["sample"]
        if sample is None:
            if n != 1:
                raise PlanError(f"replay source {p} holds {n} samples: give replay_sample=")
            sample = 0
        if not (0 <= sample < n):
            raise PlanError(f"replay_sample={sample} is out of range: {p} holds {n} samples")
        one = ds.isel(sample=sample)
        if "done" in one and not bool(one.done.values):
            raise PlanError(f"replay source {p} sample {sample} is not finished (its done flag is unset)")
        if prompt is not None and str(one.prompt.values) != prompt:
            raise PlanError(
                f"replay source sample {sample} is the prompt {str(one.prompt.values)!r}, not this trace's {prompt!r}"
            )
        if seed is not None and int(one.seed.values) != seed:
            raise PlanError(f"replay source sample {sample} has seed {int(one.seed.values)}, not {seed}")
        if "topk_keys" not in one:
            raise PlanError(f"replay source {p} recorded no topk_keys: trace the baseline with record('mass', ...)")
        ranks = int(one.sizes["rank"])
        if ranks < k:
            raise PlanError(
                f"replay source {p} recorded {ranks} top keys per head, fewer than k={k}: record the "
                f"baseline with record('mass', top={k})"
            )
        recorded = [str(s) for s in one.site.values]
        missing = [s for s in sites if s not in recorded]
        if missing:
            raise PlanError(f"replay source {p} did not record sites {missing}")
        self.keys = one.topk_keys.load()
        self.branches = [str(b) for b in one.branch.values]

    def lookup(self, site: str, step: int, call: int, branches: list[str]) -> Tensor:
        """(B, H, ranks) recorded top keys for this call's batch rows; -1 where none were recorded."""
        arr = self.keys.sel(site=site)
        if step >= arr.sizes["step"] or call >= arr.sizes["call"]:
            raise PlanError(f"replay source has no record of {site} at step {step}, call {call}")
        rows = [np.asarray(arr.isel(step=step, call=call).sel(branch=b).values) for b in branches]
        out = torch.as_tensor(np.stack(rows)).long()
        if (out < 0).all(dim=-1).any():
            raise PlanError(f"replay source has no recorded keys for {site} at step {step}, call {call}")
        return out
