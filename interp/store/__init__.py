"""Zarr v3 stores of traces: the versioned schema (``schema``) and reading/writing (``zarr_io``)."""

from interp.store.schema import SCHEMA_VERSION, VARIABLES
from interp.store.zarr_io import StoreError, append_trace, check_store_path, open_store

__all__ = ["SCHEMA_VERSION", "VARIABLES", "StoreError", "append_trace", "check_store_path", "open_store"]
