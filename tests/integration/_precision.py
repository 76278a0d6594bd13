"""The precision matrix (issue 16): one check of a built-in family at one dtype in one mode.

``check(name, dtype, mode)`` runs the plain pipeline and a trace of it (2 steps, the family's fast call
arguments, latents out) and returns what held: the output bit-identical to the plain run (observe and
maps modes), the step labels equal to the loop's order and the received timesteps to the scheduler's,
and for the edit mode the edit applied (the output differs from the plain run, its keys selected in
its step only, nothing left on them: eta = 0). ``tests/integration/test_precision_matrix.py`` asserts
every cell; ``benchmarks/precision_matrix.py`` writes the table (``benchmarks/RESULTS-precision.md``).
"""

from __future__ import annotations

import numpy as np
import torch

import interp
from interp import mask_topk, record, tracer

PROMPT = "a photo of a red bench"
STEPS = 2
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("observe", "edit", "maps")
ALL_STATS = ("mass", "mass_full", "entropy", "mass_topk", "query_topk", "act_norms")
EDIT_LAYER = 0.5  # the middle block of every family (a fraction of depth)


def call_kwargs(name: str) -> dict:
    kw = interp.pipelines.tiny_call_kwargs(name)
    kw.update(num_inference_steps=STEPS, output_type="latent", height=32, width=32)
    if name == "sana":  # an empty negative prompt leaves SANA's uncond cross-attention one key: k=1 is refused
        kw["negative_prompt"] = "a blurry photo"
    return kw


def pixels(result) -> torch.Tensor:
    """A pipeline output's images, or a video pipeline's frames."""
    images = getattr(result, "images", None)
    return images if images is not None else result.frames


# pipelines that pass the denoiser 1 - t / 1000 instead of t / 1000 (read from their __call__ in diffusers 0.42)
REVERSED = {"Lumina2Pipeline", "ZImagePipeline"}


def plain(pipe, name: str) -> tuple[torch.Tensor, list[float]]:
    """The plain pipeline's output and the timestep of each denoiser call (own pre-hook)."""
    seen: list[float] = []
    denoiser = getattr(pipe, "transformer", None) or pipe.unet

    def pre(module, args, kwargs):
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        value = float(torch.as_tensor(t).reshape(-1)[0])
        seen.append(1.0 - value if type(pipe).__name__ in REVERSED else value)

    handle = denoiser.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        out = pixels(pipe(prompt=PROMPT, generator=torch.Generator("cpu").manual_seed(0), **call_kwargs(name)))
    finally:
        handle.remove()
    return out, seen


def plan_for(mode: str, name: str = ""):
    if mode == "observe":
        return lambda: record(*ALL_STATS, layers="all")
    if mode == "edit":
        return lambda: (record("mass", layers=EDIT_LAYER), mask_topk(layer=EDIT_LAYER, k=1, steps=(1, 1)))
    # Qwen-Image's cond and uncond texts differ in length and come first: only maps over every query and
    # key (one branch's rows a prefix of the other's) name the same tokens in both branches
    extra = {"queries": "all"} if name == "qwenimage" else {}
    return lambda: record("maps", layers=EDIT_LAYER, heads=[0], steps=[1], **extra)


def check(pipe, name: str, mode: str, reference: tuple | None = None) -> dict[str, bool]:
    """What held for this cell (see the module docstring); every value must be True. ``reference``:
    ``plain(pipe, name)`` if already run (it is the same for every mode)."""
    ref, seen = reference or plain(pipe, name)
    with tracer.trace(pipe, PROMPT, seed=0, **call_kwargs(name)) as t:
        plan_for(mode, name)()
    ds, clock = t.stats, t.clock
    scale = clock.adapter.timestep_scale
    labels = (
        ds.step.values.tolist() == list(range(STEPS))
        and sorted({s for s, _ in clock.received}) == list(range(STEPS))
        and [clock.received[(s, 0)] for s in range(STEPS)] == [v * scale for v in seen[:: len(seen) // STEPS]]
        and np.array_equal(ds.timestep.values, pipe.scheduler.timesteps.double().cpu().numpy())
    )
    out: dict[str, bool] = {"labels": bool(labels)}
    if mode == "edit":
        # over calls: families that run CFG as two denoiser calls (Chroma, Wan, ...) see one branch per call
        n = ds.edit_n_keys.isel(edit=0).max("call").values
        after = ds.edit_mass_after.isel(edit=0).values[1]
        out["edit_applied"] = bool(
            not torch.equal(pixels(t.output), ref)
            and (n[0] == -1).all()
            and (n[1] == 1).all()
            and np.all(after[np.isfinite(after)] == 0)
            and np.isfinite(ds.edit_mass_before.isel(edit=0).values[1]).any()
        )
    else:
        out["bit_identical"] = bool(torch.equal(pixels(t.output), ref))
        if mode == "observe":
            out["recorded"] = bool(all(np.isfinite(ds[v].values).any() for v in ("max_mass", "entropy")))
        else:
            maps = [v for v in ds.data_vars if "map" in v]
            out["recorded"] = bool(maps) and all(np.isfinite(ds[v].values).any() for v in maps)
    return out
