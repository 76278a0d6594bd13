"""The background writer: sample writes overlap generation; errors surface in the generating thread.

Design
------
One thread per process owns the store handle and writes jobs from a bounded queue (``maxsize``
samples in flight besides the one being written), so generation runs ahead by at most that many
samples and memory stays bounded. ``submit`` blocks while the queue is full and returns how long it
blocked (the writer's visible overhead); it raises at once if the writer has failed. ``close``
flushes the queue, joins the thread and re-raises the writer's error, so a sweep never reports
success with samples missing. ``inline=True`` writes in the caller's thread (for measuring overhead
and for debugging). Conforming a trace to the store's layout is done in the writer too.

The store is opened lazily by the first job (``open_store``, which may wait for rank 0 to create it),
so a rank's first generation overlaps the wait.

Fault injection (tests): ``fault``, a callable the caller injects (``runner.run(..., fault=...)``),
is called with ``(point, sample)`` at each point of a sample's write; the kill-and-resume tests pass one
that SIGKILLs the process (``tests/integration/_sweep_kill.py``). Points (``FAULT_POINTS``):
``before_data``, ``mid_data`` (after half of the sample's arrays), ``before_done`` (all data written,
flag not yet) and ``after_done``. Library code never reads an environment variable to kill itself.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from interp.sweep.layout import per_sample_names
from interp.sweep.store import SampleStore

FAULT_POINTS = ("before_data", "mid_data", "before_done", "after_done")
"""Where a sample's write calls the injected ``fault`` hook."""

FaultHook = Callable[[str, int], None]
"""``fault(point, sample)``: called at each of ``FAULT_POINTS`` while ``sample`` is written (tests)."""


@dataclass
class WriteJob:
    index: int
    stats: xr.Dataset
    extra: Mapping[str, Any]  # sweep bookkeeping: noise_sha, gen_seconds


@dataclass
class WriterStats:
    written: int = 0
    busy_s: float = 0.0  # time the writer spent conforming and writing
    store_wait_s: float = 0.0  # time the writer waited for the store to exist and opened it
    blocked_s: float = 0.0  # time the generating thread waited for the writer (queue full, final flush)
    per_sample_s: list[float] = field(default_factory=list)


class BackgroundWriter:
    def __init__(
        self,
        open_store: Callable[[], SampleStore],
        *,
        maxsize: int = 2,
        inline: bool = False,
        on_written: Callable[[int], None] | None = None,
        fault: FaultHook | None = None,
    ) -> None:
        self._open_store = open_store
        self._store: SampleStore | None = None
        self._fault = fault
        self._on_written = on_written
        self.inline = inline
        self.stats = WriterStats()
        self._error: BaseException | None = None
        self._queue: queue.Queue[WriteJob | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._loop, name="interp-sweep-writer", daemon=True)
            self._thread.start()

    # --- writer side --------------------------------------------------------------------------------
    def _write(self, job: WriteJob) -> None:
        if self._store is None:
            t_open = time.perf_counter()
            self._store = self._open_store()
            self.stats.store_wait_s += time.perf_counter() - t_open
        t0 = time.perf_counter()
        arrays = self._store.layout.conform(job.stats)
        missing = set(arrays) - set(per_sample_names(job.stats))
        for name, value in job.extra.items():
            arrays[name] = np.asarray(value)
        self._store.write_sample(job.index, arrays, self._fault, missing=missing)
        dt = time.perf_counter() - t0
        self.stats.busy_s += dt
        self.stats.per_sample_s.append(dt)
        self.stats.written += 1
        if self._on_written is not None:
            self._on_written(job.index)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    self._write(job)
            except BaseException as exc:  # re-raised in the generating thread
                self._error = exc
            finally:
                self._queue.task_done()

    # --- generating side ----------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the sweep's background writer failed: {self._error!r}") from self._error

    def submit(self, job: WriteJob) -> float:
        """Queue one sample (write it now if inline); returns the seconds the caller was blocked."""
        self._raise_if_failed()
        t0 = time.perf_counter()
        if self.inline:
            self._write(job)
        else:
            while True:
                try:
                    self._queue.put(job, timeout=0.5)
                    break
                except queue.Full:
                    self._raise_if_failed()
        blocked = time.perf_counter() - t0
        self.stats.blocked_s += blocked
        return blocked

    def close(self) -> None:
        """Flush every queued sample, stop the thread, and raise the writer's error if it had one."""
        t0 = time.perf_counter()
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.stats.blocked_s += time.perf_counter() - t0
        self._raise_if_failed()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        # The body failed: still flush what was generated (those samples are complete); the body's
        # exception is the one to report.
        with contextlib.suppress(Exception):
            self.close()
