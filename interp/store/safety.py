"""What a store path may be before anything is generated or deleted: location, type, writability.

Design
------
An *interp store* is a Zarr v3 group whose root attributes were written by interp: every trace and
sweep store carries ``schema_version`` and ``interp_version`` (``interp.store.schema`` and
``interp.provenance``), sweep stores also ``sweep_format``. :func:`root_attributes` reads them from the
root ``zarr.json`` with the standard library (no zarr import, no chunk read), so the check is cheap
enough to run before every generation and every deletion.

:func:`check_location` is the one pre-generation check of a path a store will be written to: no
ancestor is a file, an existing path is an interp store (of the expected kind), and the place the
store will be created (the path, or its nearest existing ancestor) accepts a new folder. Writability
is *probed* (a hidden folder is created and removed) rather than read from permission bits: root
ignores the bits, and read-only mounts or pseudo file systems only show when a write is tried.

:func:`remove_store` is the only way interp deletes a store: it refuses anything that is not an interp
store (a folder of the user's files, a plain Zarr group, a file), so ``--overwrite`` can never remove
what interp did not write. Callers run it after all their other checks passed.

Every failure is a :class:`StoreError` (a ``ValueError``) with a one-line message naming the path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

Kind = Literal["trace", "sweep", "any"]


class StoreError(ValueError):
    """A store path or content that cannot be written, appended to or removed as asked."""


def is_zarr_store(path: str | os.PathLike) -> bool:
    return (Path(path) / "zarr.json").is_file()


def root_attributes(path: str | os.PathLike) -> dict[str, Any] | None:
    """The root group's attributes of a Zarr v3 store, or None if ``path`` is not a readable one."""
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        return None
    attrs = meta.get("attributes", {})
    return attrs if isinstance(attrs, dict) else {}


def store_kind(path: str | os.PathLike) -> str | None:
    """``"sweep"`` or ``"trace"`` for a store interp wrote, None for anything else."""
    attrs = root_attributes(path)
    if attrs is None or "schema_version" not in attrs or "interp_version" not in attrs:
        return None
    return "sweep" if "sweep_format" in attrs else "trace"


def is_interp_store(path: str | os.PathLike) -> bool:
    return store_kind(path) is not None


def _describe(p: Path) -> str:
    if p.is_file():
        return "a file"
    if is_zarr_store(p):
        return "a Zarr store that interp did not write (no schema_version / interp_version attributes)"
    if p.is_dir():
        n = sum(1 for _ in p.iterdir())
        entries = f"{n} entr{'y' if n == 1 else 'ies'}"
        return f"a folder that is not an interp store ({entries}, no zarr.json)" if n else "an empty folder"
    return "not a regular folder"


def _probe_writable(folder: Path) -> str | None:
    """None if a new folder can be made in ``folder``, else the OS's reason."""
    try:
        probe = tempfile.mkdtemp(prefix=".interp-write-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.rmdir(probe)
    return None


def check_location(path: str | os.PathLike, *, kind: Kind = "any") -> Path:
    """Refuse, before any generation, a store path that cannot hold the store; returns it as a Path.

    ``kind``: an existing store must be of this kind (``"trace"`` stores are appended to by traces,
    ``"sweep"`` stores are filled by their sweep); an empty existing folder is accepted (it is replaced
    by the new store only if empty).
    """
    p = Path(path)
    for parent in [p, *p.parents]:
        if parent.exists():
            if parent != p and not parent.is_dir():
                raise StoreError(f"store path {p} is under {parent}, which is a file, not a folder")
            break
    if p.exists():
        found = store_kind(p)
        empty_dir = p.is_dir() and not any(p.iterdir())
        if found is None and not empty_dir:
            raise StoreError(f"store path {p} exists and is {_describe(p)}; choose a new path or an interp store")
        if found is not None and kind != "any" and found != kind:
            how = "a sweep fills only its own store" if found == "sweep" else "a sweep writes only a new store"
            raise StoreError(f"store path {p} is a {found} store, not a {kind} store ({how}); choose a new path")
        reason = _probe_writable(p)
        if reason is not None:
            raise StoreError(f"store {p} is not writable ({reason}); choose a writable location")
        return p
    existing = next(a for a in p.parents if a.exists())
    reason = _probe_writable(existing)
    if reason is not None:
        raise StoreError(f"cannot create store {p}: {existing} is not writable ({reason})")
    return p


def remove_store(path: str | os.PathLike) -> None:
    """Delete an interp store (and its sibling lock file); refuse anything interp did not write."""
    p = Path(path)
    if not p.exists():
        return
    if p.is_symlink() or not is_interp_store(p):
        raise StoreError(f"refusing to delete {p}: it is {_describe(p)}, not a store written by interp")
    shutil.rmtree(p)
    p.with_name(p.name + ".lock").unlink(missing_ok=True)


def differences(theirs: Any, ours: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON-like values differ (dict keys recursively, anything else as a whole)."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        out: list[str] = []
        for k in sorted(set(theirs) | set(ours)):
            out += differences(theirs.get(k), ours.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if theirs == ours else [prefix or "(root)"]
