"""``tracer.trace``: run a diffusers pipeline once with a plan of records and edits.

Design
------
``trace(pipe, prompt, seed=..., store=..., **pipeline_kwargs)`` returns a ``Trace``, a context
manager. Its lifecycle runs on the engine (``interp.engine``; docs/design.md, The trace lifecycle):

1. construction: everything that can be checked without the plan is checked (the pipeline is
   supported, the store path is usable, one prompt, one image per prompt, the kernel choice);
2. ``__enter__`` opens a plan in the current context (seeded with ``plan=`` if given: sweeps build
   plans from configs); the ``with`` body declares records and edits;
3. ``__exit__`` (only if the body did not raise) closes the plan and hands it to
   ``engine.prepare``, which checks that it keeps the store's meaning, resolves its sites once and
   runs every other pre-generation check (a plan that cannot run raises here, before generation);
   an ``engine.Session`` then installs the step clock and the site hooks, the pipeline runs with a
   seeded CPU generator, and the session removes every hook in a ``finally`` block, so the pipeline
   is exactly as it was whatever happens;
4. the results are laid out by the schema (``trace.stats``) and, with ``store=``, appended to a
   Zarr store as one sample.

Observation never changes the computation: each site returns the original kernel call's output.

Precomputed embeddings: pass ``prompt_embeds=`` (and ``negative_prompt_embeds=``) together with
``prompt=`` (and ``negative_prompt=``); the texts then only label the token layout and are not passed
to the pipeline, so a sweep can encode a prompt once and reuse it across conditions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr

from interp.adapters import adapter_for
from interp.adapters.base import BRANCHES
from interp.clock import StepClock
from interp.engine import CallSpec, Observer, Prepared, Session, StoreTarget, prepare
from interp.engine.prepare import check_kernel
from interp.plan import Plan, PlanError, close_plan, open_plan
from interp.statistics import CATALOGUE
from interp.store.schema import plan_attrs, trace_dataset
from interp.store.zarr_io import TraceMeaning, append_trace, check_store_path


class AfterGenerationError(RuntimeError):
    """A step after the generation failed; the generated output is kept on the trace (``t.output``)."""


def _image_array(image: Any) -> np.ndarray | None:
    """The first output image as uint8 (H, W, 3), or None if the output is not an image; of a video (a
    list of frames or a (F, C, H, W) / (F, H, W, C) array), its first frame."""
    if isinstance(image, (list, tuple)):
        return _image_array(image[0]) if len(image) else None
    if hasattr(image, "ndim") and image.ndim == 4:  # a video's frames, else not an image (a video latent)
        if image.shape[1] not in (1, 3) and image.shape[-1] not in (1, 3):
            return None
        image = image[0]
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = image.detach().float().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3) or not np.issubdtype(arr.dtype, np.floating):
        return None if arr.dtype != np.uint8 else arr
    return (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)


class Trace:
    """One traced generation: ``image``, ``images``, ``output``, ``stats`` and ``sample`` after the block."""

    def __init__(
        self,
        pipe: Any,
        prompt: str | None = None,
        *,
        seed: int | None = 0,
        store: str | os.PathLike | None = None,
        condition: str = "baseline",
        tag: str = "",
        plan: Plan | None = None,
        kernel: str = "auto",
        allow_duplicate: bool = False,
        latents_hook: Callable[[torch.Tensor], None] | None = None,
        **pipeline_kwargs: Any,
    ) -> None:
        self.adapter = adapter_for(pipe)
        check_kernel(kernel)
        self.kernel = kernel
        self.latents_hook = latents_hook  # sees the latents pipe.prepare_latents returns (engine.LatentsProbe)
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError("trace() takes one prompt (a str); run one trace per prompt, or use a sweep")
        if prompt is None and "prompt_embeds" not in pipeline_kwargs:
            raise TypeError("trace() needs a prompt (or prompt_embeds)")
        if pipeline_kwargs.get("num_images_per_prompt", 1) != 1:
            raise ValueError("trace() records one image per trace: num_images_per_prompt must be 1")
        if seed is not None and "generator" in pipeline_kwargs:
            raise ValueError("pass either seed= or generator=, not both")
        self.pipe = pipe
        self.prompt = prompt
        self.seed = seed
        self.store = check_store_path(store) if store is not None else None
        self.condition = condition
        self.tag = tag
        self.allow_duplicate = allow_duplicate
        self.meaning: TraceMeaning | None = None
        self.pipeline_kwargs = pipeline_kwargs
        self.initial_plan = plan
        self.captured: dict = {}
        self.plan: Plan | None = None
        self.output: Any = None
        self.stats: xr.Dataset | None = None
        self.sample: int | None = None
        self.clock: StepClock | None = None
        self._token = None

    # --- context manager -------------------------------------------------------------------------
    def __enter__(self) -> Trace:
        self._token = open_plan(self.initial_plan)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.plan = close_plan(self._token)
        if exc_type is not None:
            return False
        self._run(
            prepare(self.pipe, self.plan, self._call(), kernel=self.kernel, store=self._target(), adapter=self.adapter)
        )
        return False

    def _call(self) -> CallSpec:
        return CallSpec(self.prompt, self.seed, self.pipeline_kwargs)

    def _target(self) -> StoreTarget | None:
        if self.store is None:
            return None
        return StoreTarget(self.store, self.condition, self.tag, self.allow_duplicate)

    # --- results ---------------------------------------------------------------------------------
    @property
    def images(self) -> list[Any]:
        if self.output is None:
            raise RuntimeError("the trace has not run yet: its results exist after the `with` block")
        out = self.output
        return list(out.images if hasattr(out, "images") else out.frames)  # video pipelines: one entry per video

    @property
    def image(self) -> Any:
        return self.images[0]

    # --- the run ---------------------------------------------------------------------------------
    def _run(self, prepared: Prepared) -> None:
        plan, pipe = prepared.plan, self.pipe
        self.meaning = prepared.meaning
        kwargs = dict(self.pipeline_kwargs)
        if self.seed is not None:
            kwargs["generator"] = torch.Generator("cpu").manual_seed(int(self.seed))
        if self.prompt is not None and "prompt_embeds" not in kwargs:
            kwargs["prompt"] = self.prompt
        if "negative_prompt_embeds" in kwargs:  # the text only labels the layout (None, not absent: PixArt
            kwargs["negative_prompt"] = None  # defaults an absent one to "" and then refuses both)
        # everything that does not need the generation is computed before it (provenance included)
        attrs = {
            **plan_attrs(plan.to_json()),
            **prepared.provenance,
            "seed_policy": "torch.Generator('cpu').manual_seed(seed) passed as the pipeline's generator",
        }
        with Session(prepared, latents_hook=self.latents_hook) as session:
            self.output = pipe(**kwargs)
        clock, observer = session.clock, session.observer
        self.clock = clock
        self.captured = observer.captured
        stage = "laying out the statistics"
        try:  # the generation is done: whatever fails now must not throw the sample away
            self.stats = self._dataset(plan, clock, observer, [r.site for r in prepared.requests], attrs)
            if self.store is not None:
                stage = f"writing to the store {self.store}"
                self.sample = append_trace(self.store, self.stats, self._sample_coords(), self.meaning)
        except Exception as exc:
            raise AfterGenerationError(
                f"the generation finished, but {stage} failed ({type(exc).__name__}: {exc}); the generated "
                "output is kept on the trace: `t.output` (images: `t.images`)"
                + ("; its statistics are on `t.stats`" if self.stats is not None else "")
            ) from exc

    def _sample_coords(self) -> dict[str, object]:
        return StoreTarget(self.store or "", self.condition, self.tag).sample_coords(self._call())

    def _dataset(
        self, plan: Plan, clock: StepClock, observer: Observer, sites: list, attrs: dict[str, Any]
    ) -> xr.Dataset:
        if clock.n_steps == 0:
            raise RuntimeError("the denoiser never ran: nothing to record")
        arrays = observer.buffer.arrays(clock.n_steps, max(clock.n_calls, 1), len(sites), len(BRANCHES))
        seen = sorted(clock.seen_branches or {"cond"}, key=BRANCHES.index)
        keep = [BRANCHES.index(b) for b in seen]
        arrays = {k: np.take(v, keep, axis=3) for k, v in arrays.items()}
        layouts = {k: v for k, v in observer.layouts.items() if k[1] in seen}
        ords = next((r.ord for r in plan.records if "act_norms" in r.stats), ("2", "inf"))
        var_attrs = _variable_attrs(plan)
        attrs = {**attrs, "denoiser_timestep_dtype": clock.received_dtype}
        return trace_dataset(
            arrays=arrays,
            sites=sites,
            site_shapes=observer.site_shapes,
            branches=seen,
            timesteps=clock.timesteps,
            sigmas=clock.sigmas,
            received=clock.received,
            received_dtype=clock.received_dtype,
            n_steps=clock.n_steps,
            n_calls=max(clock.n_calls, 1),
            layouts=layouts,
            ords=ords,
            var_attrs=var_attrs,
            attrs=attrs,
            image=_image_array(self.images[0]),
            edit_names=[e.name for e in plan.edits],
            edit_plans=[Plan((e,)).to_json() for e in plan.edits],
            map_index={p: tuple(t.cpu().numpy() for t in v) for p, v in observer.map_index_by_site().items()},
        )


def _variable_attrs(plan: Plan) -> dict[str, dict[str, Any]]:
    """Options that give each variable its meaning (query set, K, k), stored as its attributes."""
    out: dict[str, dict[str, Any]] = {}
    for rec in plan.records:
        for stat in rec.stats:
            for var in CATALOGUE[stat].variable_names:
                out[var] = out[var + "_before"] = {"queries": rec.queries, "top": rec.top, "k": rec.k}
    return out


def trace(
    pipe: Any,
    prompt: str | None = None,
    *,
    seed: int | None = 0,
    store: str | os.PathLike | None = None,
    condition: str = "baseline",
    tag: str = "",
    allow_duplicate: bool = False,
    latents_hook: Callable[[torch.Tensor], None] | None = None,
    **pipeline_kwargs: Any,
) -> Trace:
    """Open a trace of one generation; see the module docstring and ``docs/concepts.md``.

    With ``store=``, the trace must keep the store's meaning (model, records, the condition's edits and
    call options) and not repeat a done prompt/seed/condition unless ``allow_duplicate=True``; both are
    checked before generation (``interp.store.meaning``). ``latents_hook`` (optional) is called with the
    latents ``pipe.prepare_latents`` returns (the sweep hashes them to check seed pairing).
    """
    return Trace(
        pipe,
        prompt,
        seed=seed,
        store=store,
        condition=condition,
        tag=tag,
        allow_duplicate=allow_duplicate,
        latents_hook=latents_hook,
        **pipeline_kwargs,
    )


__all__ = ["AfterGenerationError", "Trace", "trace", "PlanError"]
