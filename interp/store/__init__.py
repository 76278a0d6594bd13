"""Zarr v3 stores of traces: the versioned schema (``schema``), reading/writing (``zarr_io``), what a
store may be (``safety``), what it means (``meaning``) and who writes it (``lock``).

Names are imported on first use (PEP 562), so the light checks (``safety``, ``lock``) do not load xarray.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SCHEMA_VERSION": "interp.store.schema",
    "VARIABLES": "interp.store.schema",
    "StoreError": "interp.store.safety",
    "append_trace": "interp.store.zarr_io",
    "check_store_path": "interp.store.zarr_io",
    "open_store": "interp.store.zarr_io",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'interp.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
