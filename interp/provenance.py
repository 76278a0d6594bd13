"""Provenance attributes stored with every trace: model, library versions, git commit of interp."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import interp

LIBRARIES = ("torch", "diffusers", "transformers", "xarray", "zarr", "numpy")


@cache
def _git_commit() -> str:
    root = Path(interp.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(pipe: Any, family: str, denoiser: Any) -> dict[str, str]:
    """Provenance of one trace, computed before generation (nothing in it depends on the output).

    ``denoiser`` is the adapter's denoiser as the pipeline holds it: a ``torch.compile`` wrapper
    (``OptimizedModule``) is unwrapped to the model it compiles, whose config is recorded, and the
    compilation is recorded as ``denoiser_compiled``."""
    inner = getattr(denoiser, "_orig_mod", denoiser)
    compiled = inner is not denoiser or getattr(inner, "_compiled_call_impl", None) is not None
    denoiser_cfg = getattr(inner, "config", None) or {}
    return {
        "model_family": family,
        "pipeline_class": type(pipe).__name__,
        "model_id": str(getattr(pipe, "name_or_path", None) or getattr(pipe.config, "_name_or_path", "") or ""),
        "denoiser_config": json.dumps(
            {k: v for k, v in dict(denoiser_cfg).items() if k != "_use_default_values"}, sort_keys=True, default=str
        ),
        "denoiser_compiled": "torch.compile" if compiled else "no",
        "interp_version": interp.__version__,
        "interp_git_commit": _git_commit(),
        **{f"version_{n}": _version(n) for n in LIBRARIES},
    }
