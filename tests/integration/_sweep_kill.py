"""Run a sweep that SIGKILLs its own process at chosen write points (the kill-and-resume tests).

    python tests/integration/_sweep_kill.py CONFIG STORE POINT:SAMPLE[,POINT:SAMPLE...]

The same as ``interp sweep CONFIG --store STORE --no-progress``, with a fault hook injected into the
runner (``interp.sweep.run(..., fault=...)``); also runs under ``torch.distributed.run``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from interp.sweep import load_config, run
from interp.sweep.writer import FAULT_POINTS


def kill_at(spec: str) -> Callable[[str, int], None]:
    """A fault hook that SIGKILLs the process at each ``point:sample`` of ``spec``."""
    targets: set[tuple[str, int]] = set()
    for part in spec.split(","):
        point, _, sample = part.strip().partition(":")
        if point not in FAULT_POINTS or not sample.strip().isdigit():
            raise ValueError(f"{spec!r}: expected <point>:<sample> with point in {FAULT_POINTS}")
        targets.add((point, int(sample)))

    def hook(point: str, sample: int) -> None:
        if (point, sample) in targets:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


if __name__ == "__main__":
    config, store, spec = sys.argv[1:4]
    run(load_config(config), store=store, progress=False, fault=kill_at(spec))
