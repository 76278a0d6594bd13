"""Moving a trace's statistics off the GPU with one synchronisation instead of one per tensor.

Design
------
A trace produces thousands of small result tensors (a few hundred bytes each: per head, per branch)
that stay on the device until the trace ends. ``tensor.cpu()`` on each would cost one blocking copy
and one host-device synchronisation per tensor (about 10-20 us each, thousands per trace). A
``HostCopier`` instead:

- takes tensors as they are produced (``push``); CPU tensors pass through untouched;
- copies *large* device tensors (full per-key mass vectors, ``large_bytes`` and up) right away with a
  non-blocking copy into pinned host memory, queued on the current stream after the kernel that
  produced them, so they need no device memory until the end of the trace and the copy overlaps
  the rest of the generation;
- at ``finish``, concatenates the small ones per (device, dtype) on the device (one ``torch.cat``),
  copies each concatenation with one non-blocking copy into one pinned buffer, synchronises *once*
  with each device's current stream, and hands back numpy views of the pinned buffers (no further
  copies).

Nothing here calls ``.item()``. Reusing a pinned buffer is left to PyTorch's caching host allocator
(``pin_memory=True``), which recycles pinned blocks across traces.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import Tensor


class HostCopier:
    """Collects tensors (``push`` returns an index) and returns them as numpy arrays (``finish``)."""

    def __init__(self, large_bytes: int = 1 << 20) -> None:
        self.large_bytes = large_bytes
        self._host: list[Tensor | None] = []
        self._pending: dict[tuple[str, torch.dtype], list[tuple[int, Tensor]]] = defaultdict(list)
        self._devices: set[torch.device] = set()
        self._done = False

    def push(self, t: Tensor) -> int:
        if self._done:
            raise RuntimeError("this HostCopier has finished; start a new one")
        t = t.detach()
        idx = len(self._host)
        if t.device.type == "cpu":
            self._host.append(t)
            return idx
        self._devices.add(t.device)
        if t.numel() * t.element_size() >= self.large_bytes:
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            host.copy_(t, non_blocking=True)
            self._host.append(host)
        else:
            self._host.append(None)
            self._pending[(str(t.device), t.dtype)].append((idx, t))
        return idx

    def finish(self) -> list[np.ndarray]:
        """Every pushed tensor as a numpy array, in push order, after one sync per device."""
        self._done = True
        for (_, dtype), items in self._pending.items():
            flat = torch.cat([t.reshape(-1) for _, t in items])
            host = torch.empty(flat.shape, dtype=dtype, pin_memory=True)
            host.copy_(flat, non_blocking=True)
            offset = 0
            for idx, t in items:
                n = t.numel()
                self._host[idx] = host[offset : offset + n].view(t.shape)
                offset += n
        self._pending.clear()
        for dev in self._devices:
            torch.cuda.current_stream(dev).synchronize()
        out = [t.numpy() for t in self._host if t is not None]
        if len(out) != len(self._host):  # pragma: no cover - every index is filled above
            raise RuntimeError("HostCopier lost a tensor")
        return out


def to_host(tensors: list[Tensor], large_bytes: int = 1 << 20) -> list[np.ndarray]:
    """Numpy copies of ``tensors`` with one synchronisation per device (see ``HostCopier``)."""
    copier = HostCopier(large_bytes)
    for t in tensors:
        copier.push(t)
    return copier.finish()


__all__ = ["HostCopier", "to_host"]
