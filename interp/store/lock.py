"""One writer per store: the sibling ``<store>.lock`` file, held by a trace append or a whole sweep launch.

Design
------
The lock is an OS advisory lock (``flock``) on ``<store>.lock``, taken through ``filelock`` (the
maintained library diffusers and transformers already depend on) rather than by hand. An OS lock
belongs to the open file: when its process dies, however it dies (SIGKILL, OOM, a crashed node's
process on this host), the kernel releases it, so a crashed writer never leaves a stale lock that
blocks a resume. The file itself stays (removing it would race with a process that has it open);
while held, it holds one JSON line naming the holder, for the refusal message.

- :func:`append_lock` serialises single-trace appends (short; waits).
- :func:`writer_lock` is a sweep launch's lock: taken once, at once or not at all (a second sweep on
  the same store is refused immediately, naming the holder), and held until the sweep ends. Under
  ``torchrun`` only rank 0 takes it and tells the other ranks the outcome (``interp.sweep.runner``),
  so ranks of one launch writing disjoint regions of one store never contend for it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import filelock


class StoreLocked(RuntimeError):
    """Another process is writing to this store."""


def lock_path(store: str | os.PathLike) -> Path:
    p = Path(store)
    return p.with_name(p.name + ".lock")


def holder(store: str | os.PathLike) -> str:
    """Who holds the lock, as recorded in the lock file ("unknown" if it says nothing readable)."""
    try:
        info = json.loads(lock_path(store).read_text().strip() or "{}")
    except (OSError, ValueError):
        return "unknown"
    if not info:
        return "unknown"
    return f"{info.get('what', 'a writer')} (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"


def _record(lock: Path, what: str) -> None:
    info = {
        "what": what,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    with contextlib.suppress(OSError), open(lock, "w") as fh:
        fh.write(json.dumps(info) + "\n")


def _clear(lock: Path) -> None:
    with contextlib.suppress(OSError), open(lock, "w"):
        pass


@contextlib.contextmanager
def append_lock(store: str | os.PathLike) -> Iterator[None]:
    """Exclusive lock for one append (waits for another append or a sweep to finish)."""
    lock = lock_path(store)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(lock)):
        yield


@contextlib.contextmanager
def writer_lock(store: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold the store's lock for a whole run; ``StoreLocked`` at once if another process holds it."""
    lock = lock_path(store)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fl = filelock.FileLock(str(lock), timeout=0)
    try:
        fl.acquire()
    except filelock.Timeout:
        raise StoreLocked(
            f"store {store} is being written by another process: {holder(store)}; wait for it to finish "
            "(a killed writer releases its lock)"
        ) from None
    try:
        _record(lock, what)
        yield
    finally:
        _clear(lock)
        fl.release()
