"""Load a real diffusers checkpoint (hub id or local folder) for tracing.

A thin layer over ``DiffusionPipeline.from_pretrained``, the ordinary loading path, so whatever diffusers
loads (and however it resolves files) is what gets traced. What it adds: a local folder is loaded without
touching the network (``local_files_only=True``), a string that is neither an existing path nor a valid
hub id is refused with a clear error before anything is attempted, and every module comes back in eval
mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

ORGANISM_ID = "interp:organism"


def load(
    id_or_path: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    **from_pretrained_kwargs,
) -> DiffusionPipeline:
    """Load a diffusers pipeline from a hub id or a local folder, components in eval mode.

    Args:
        id_or_path: ``"interp:organism"`` (the trained model organism shipped with the package), a hub id
            (``"stabilityai/stable-diffusion-3-medium-diffusers"``) or the path of a folder
            written by ``save_pretrained`` (it holds ``model_index.json``). An existing path is loaded with
            ``local_files_only=True``; an ``os.PathLike`` is always taken as a local path.
        dtype: passed as ``dtype`` (None: the checkpoint's own dtype).
        device: if given, the pipeline is moved there with ``pipe.to(device)``.
        **from_pretrained_kwargs: passed on to ``DiffusionPipeline.from_pretrained`` (``revision``,
            ``variant``, ``cache_dir``, ...); they override the defaults above.
    """
    if os.fspath(id_or_path) == ORGANISM_ID:  # the trained organism shipped in the package
        from interp.organism import load_organism

        pipe = load_organism(dtype or torch.float32)
        return pipe.to(device) if device is not None else pipe
    kwargs = dict(from_pretrained_kwargs)
    if dtype is not None:
        kwargs.setdefault("dtype", dtype)  # diffusers >= 0.42 deprecates torch_dtype
    path = Path(os.fspath(id_or_path)).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "model_index.json").is_file():
            raise ValueError(
                f"{str(path)!r} exists but is not a diffusers pipeline folder (no model_index.json in it); "
                "pass a folder written by `pipe.save_pretrained(...)` or a hub id"
            )
        kwargs.setdefault("local_files_only", True)
        source: str = str(path)
    else:
        source = os.fspath(id_or_path)
        looks_local = isinstance(id_or_path, os.PathLike) or source.startswith(("/", ".", "~", "\\"))
        try:
            validate_repo_id(source)
        except HFValidationError:
            looks_local = True
        if looks_local:
            raise FileNotFoundError(
                f"{source!r} does not exist and is not a Hugging Face hub id ('owner/name'); pass the folder "
                "of a saved pipeline or a hub id"
            )
    pipe = DiffusionPipeline.from_pretrained(source, **kwargs)
    if device is not None:
        pipe.to(device)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipe
