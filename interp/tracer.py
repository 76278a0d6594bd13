"""``tracer.trace``: run a diffusers pipeline once with a plan of records and edits.

Design
------
``trace(pipe, prompt, seed=..., store=..., **pipeline_kwargs)`` returns a ``Trace``, a context
manager. Its lifecycle:

1. construction: everything that can be checked without the plan is checked (the pipeline is
   supported, the store path is usable, one prompt, one image per prompt);
2. ``__enter__`` opens a plan in the current context (seeded with ``plan=`` if given: sweeps build
   plans from configs); the ``with`` body declares records;
3. ``__exit__`` (only if the body did not raise) closes the plan, checks that it keeps the store's
   meaning (``interp.store.meaning``: model, records, the condition's edits and options, no duplicate
   sample), resolves its sites (bad sites,
   statistics or query sets raise here, before generation), checks each site's attention backend,
   installs the step clock and the site hooks, runs the pipeline with a seeded CPU generator, and
   removes every hook in a ``finally`` block, so the pipeline is exactly as it was whatever happens;
4. the results are laid out by the schema (``trace.stats``) and, with ``store=``, appended to a
   Zarr store as one sample.

Observation never changes the computation: each site returns the original kernel call's output.

Precomputed embeddings: pass ``prompt_embeds=`` (and ``negative_prompt_embeds=``) together with
``prompt=`` (and ``negative_prompt=``); the texts then only label the token layout and are not passed
to the pipeline, so a sweep can encode a prompt once and reuse it across conditions.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np
import torch
import xarray as xr

from interp.adapters import adapter_for
from interp.adapters.base import BRANCHES
from interp.clock import StepClock
from interp.edits.validate import validate_edits
from interp.maps_budget import check_map_budget
from interp.observe import Observer, site_requests
from interp.plan import Plan, PlanError, close_plan, open_plan
from interp.provenance import provenance
from interp.sites.compiled import check_compiled
from interp.sites.intercept import Installation, SiteHooks, check_backend
from interp.statistics import CATALOGUE
from interp.store.meaning import check_trace_fits, condition_entry, trace_identity
from interp.store.schema import plan_attrs, trace_dataset
from interp.store.zarr_io import TraceMeaning, append_trace, check_store_path


class AfterGenerationError(RuntimeError):
    """A step after the generation failed; the generated output is kept on the trace (``t.output``)."""


def _image_array(image: Any) -> np.ndarray | None:
    """The first output image as uint8 (H, W, 3), or None if the output is not an image."""
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
        **pipeline_kwargs: Any,
    ) -> None:
        self.adapter = adapter_for(pipe)
        if kernel not in ("auto", "lse", "reference"):
            raise ValueError(f"unknown kernel {kernel!r}; use 'auto', 'lse' or 'reference'")
        self.kernel = kernel
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
        self._check_store(self.plan)
        self._run(self.plan)
        return False

    def _check_store(self, plan: Plan) -> None:
        """Before generation: the store's meaning (model, records, this condition) fits this trace."""
        if self.store is None:
            return
        plan_json = plan.to_json()
        denoiser = self.adapter.denoiser(self.pipe)
        dtype = str(getattr(denoiser, "dtype", ""))
        self.meaning = TraceMeaning(
            identity=trace_identity(plan_json, provenance(self.pipe, self.adapter.name, denoiser), dtype),
            condition=self.condition,
            entry=condition_entry(plan_json, self.pipeline_kwargs),
            allow_duplicate=self.allow_duplicate,
        )
        check_trace_fits(
            self.store,
            self.meaning.identity,
            self.condition,
            self.meaning.entry,
            self._sample_coords(),
            allow_duplicate=self.allow_duplicate,
        )

    # --- results ---------------------------------------------------------------------------------
    @property
    def images(self) -> list[Any]:
        if self.output is None:
            raise RuntimeError("the trace has not run yet: its results exist after the `with` block")
        return list(self.output.images)

    @property
    def image(self) -> Any:
        return self.images[0]

    # --- the run ---------------------------------------------------------------------------------
    def _texts(self) -> dict[str, str | None]:
        if self.prompt is None:
            return {"cond": None, "uncond": None}
        neg = self.pipeline_kwargs.get("negative_prompt")
        if isinstance(neg, str):
            neg_text: str | None = neg
        else:
            neg_text = None if "negative_prompt_embeds" in self.pipeline_kwargs else ""
        return {"cond": self.prompt, "uncond": neg_text}

    def _run(self, plan: Plan) -> None:
        pipe, adapter = self.pipe, self.adapter
        denoiser = adapter.denoiser(pipe)
        sites = adapter.sites(pipe)
        requests = site_requests(plan, sites, adapter)
        for req in requests:
            check_backend(req.site.path, denoiser.get_submodule(req.site.path))
        replay = validate_edits(plan, requests, denoiser, adapter, pipe, self)
        check_map_budget(plan, requests, denoiser, adapter, pipe, self.pipeline_kwargs, self._texts())
        clock = StepClock(adapter, pipe)
        observer = Observer(
            pipe,
            adapter,
            clock,
            requests,
            self._texts(),
            self.pipeline_kwargs,
            BRANCHES,
            kernel=self.kernel,
            seed=-1 if self.seed is None else int(self.seed),
            replay=replay,
        )
        kwargs = dict(self.pipeline_kwargs)
        if self.seed is not None:
            kwargs["generator"] = torch.Generator("cpu").manual_seed(int(self.seed))
        if self.prompt is not None and "prompt_embeds" not in kwargs:
            kwargs["prompt"] = self.prompt
        if "negative_prompt_embeds" in kwargs:  # the text only labels the layout (None, not absent: PixArt
            kwargs["negative_prompt"] = None  # defaults an absent one to "" and then refuses both)
        check_compiled(denoiser, requests)
        # everything that does not need the generation is computed before it (provenance included)
        attrs = {
            **plan_attrs(plan.to_json()),
            **provenance(pipe, adapter.name, denoiser),
            "seed_policy": "torch.Generator('cpu').manual_seed(seed) passed as the pipeline's generator",
        }
        with Installation() as inst:
            clock.install(inst, denoiser)
            for req in requests:
                path = req.site.path
                wants_post = req.norm_record is not None and "post_out" in req.norm_record.where
                inst.add_site(
                    SiteHooks(
                        path,
                        denoiser.get_submodule(path),
                        partial(observer.on_sdpa, path),
                        partial(observer.on_output, path) if wants_post else None,
                    )
                )
            self.output = pipe(**kwargs)
        self.clock = clock
        self.captured = observer.captured
        stage = "laying out the statistics"
        try:  # the generation is done: whatever fails now must not throw the sample away
            self.stats = self._dataset(plan, clock, observer, [r.site for r in requests], attrs)
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
        neg = self.pipeline_kwargs.get("negative_prompt")
        return {
            "prompt": self.prompt or "",
            "negative_prompt": neg if isinstance(neg, str) else "",
            "seed": -1 if self.seed is None else int(self.seed),
            "condition": self.condition,
            "tag": self.tag,
        }

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
            n_steps=clock.n_steps,
            n_calls=max(clock.n_calls, 1),
            layouts=layouts,
            ords=ords,
            var_attrs=var_attrs,
            attrs=attrs,
            image=_image_array(self.images[0]),
            edit_names=[e.name for e in plan.edits],
            edit_plans=[Plan((e,)).to_json() for e in plan.edits],
            map_index={p: tuple(t.cpu().numpy() for t in v) for p, v in observer.map_index.items()},
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
    **pipeline_kwargs: Any,
) -> Trace:
    """Open a trace of one generation; see the module docstring and ``docs/concepts.md``.

    With ``store=``, the trace must keep the store's meaning (model, records, the condition's edits and
    call options) and not repeat a done prompt/seed/condition unless ``allow_duplicate=True``; both are
    checked before generation (``interp.store.meaning``).
    """
    return Trace(
        pipe,
        prompt,
        seed=seed,
        store=store,
        condition=condition,
        tag=tag,
        allow_duplicate=allow_duplicate,
        **pipeline_kwargs,
    )


__all__ = ["AfterGenerationError", "Trace", "trace", "PlanError"]
