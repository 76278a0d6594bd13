"""``interp.sweep.run``: prompts x seeds x conditions through ``tracer.trace`` into one resumable store.

Design
------
1. Everything that can be wrong is checked before generation: the config (``config.parse_config``),
   the prompt set, then, with the pipeline loaded, every condition's plan against the model's sites,
   schedulers against the model's kind, call arguments against the pipeline's ``__call__``, and an
   existing store against this config (same results-determining fields and prompt list, or it is
   refused, naming the fields that differ: ``ConfigError``). The store's location comes first
   (``interp.store.safety.check_location``: not under a file, not something interp did not write,
   writable; ``StoreError``), then the launch lock (``interp.store.lock.writer_lock``: a second
   sweep on the store stops at once with ``StoreLocked``; a killed holder's lock is released by the OS).
2. Work is split by prompt across ranks (``distributed``); a prompt's samples (its seeds x conditions)
   run in one worker, baseline first, with the prompt's embeddings computed once and passed to every
   condition. Samples whose ``done`` flag is set are skipped (finished samples are never recomputed,
   except a finished baseline whose ``Trace`` a pending condition needs, which is regenerated in
   memory and not rewritten).
3. Pairing is checked, not assumed: the initial latents each generation draws are captured (the
   trace's ``latents_hook``, which the engine's session installs and removes with the site hooks:
   ``interp.engine.session.LatentsProbe``) and hashed; every condition that shares the
   baseline's seed must have drawn the same latents as the baseline, or the sweep stops. The hash is
   stored per sample (``noise_sha``).
4. Rank 0 creates the store from the layout of its first prompt's traces (``layout``); writes go
   through the background writer (``writer``), each sample's ``done`` flag last.
5. At the end (after a barrier when there are several ranks) rank 0 prints one summary line per
   condition, read back from the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from interp import engine, pipelines, tracer
from interp.adapters import adapter_for
from interp.plan import Plan, PlanError
from interp.sites.select import resolve_sites
from interp.store.lock import StoreLocked, writer_lock
from interp.store.safety import check_location, differences, is_zarr_store
from interp.store.zarr_io import append_trace
from interp.sweep import distributed, embeddings
from interp.sweep.config import Condition, ConfigError, SweepConfig, identity_hash, load_config, plan_field
from interp.sweep.layout import StoreLayout
from interp.sweep.plan_functions import PlanFunctionError, build_plan
from interp.sweep.prompts import Prompt, PromptSetError, balanced_subset, from_jsonl, from_text, geneval
from interp.sweep.samples import SampleSpec, index_coords, prompts_digest, sample_table
from interp.sweep.schedulers import SchedulerMismatch, build_scheduler, is_flow_matching
from interp.sweep.store import (
    SampleStore,
    create_store,
    open_sweep,
    remove_partials,
    remove_stale_creations,
    store_attrs,
    wait_for_store,
)
from interp.sweep.writer import BackgroundWriter, FaultHook, WriteJob, WriterStats


class SweepError(RuntimeError):
    """A sweep that cannot go on (pairing broken, store of another config, ...)."""


@dataclass
class ConditionSummary:
    name: str
    done: int
    total: int
    gen_seconds: float  # mean over done samples
    means: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        stats = "  ".join(f"{k} {v:.4g}" for k, v in self.means.items())
        return f"{self.name:<24} {self.done:>6}/{self.total:<6} done  {self.gen_seconds:7.3f} s/sample  {stats}"


@dataclass
class SweepResult:
    store: Path
    n_samples: int
    generated: int  # samples this process generated and wrote in this run
    skipped: int  # samples of this process already done before this run
    wall_s: float
    generate_s: float
    writer: WriterStats
    rank: int = 0
    world_size: int = 1
    conditions: dict[str, ConditionSummary] = field(default_factory=dict)  # rank 0 only

    @property
    def samples_per_hour(self) -> float:
        return 3600.0 * self.generated / self.wall_s if self.wall_s > 0 else float("nan")


# --- prompts and pipeline ---------------------------------------------------------------------------


def load_prompts(cfg: SweepConfig) -> tuple[list[Prompt], int]:
    """The sweep's prompts (a balanced subset if asked) and the size of their source."""
    p = cfg.prompts
    try:
        if p.source == "geneval":
            full = geneval()
        elif p.source == "text":
            assert p.path is not None
            full = from_text(p.path, tag=p.tag)
        else:
            assert p.path is not None
            full = from_jsonl(p.path, text_field=p.text_field, tag_field=p.tag_field)
        if p.n is not None or p.per_tag is not None:
            chosen = balanced_subset(full, n=p.n, per_tag=p.per_tag, seed=p.subset_seed)
        else:
            chosen = full
    except PromptSetError as exc:
        raise ConfigError("prompts", str(exc)) from None
    return chosen, len(full)


def load_pipeline(cfg: SweepConfig, device: torch.device) -> Any:
    m = cfg.model
    dtype = getattr(torch, m.dtype)
    if m.tiny_name is not None:
        pipe = pipelines.tiny(m.tiny_name, dtype=dtype)
        return pipe.to(device)
    kwargs = {"revision": m.revision} if m.revision else {}
    try:
        return pipelines.load(m.id, dtype=dtype, device=device, **kwargs)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError("model.id", str(exc)) from None


# --- checks that need the pipeline -------------------------------------------------------------------


@dataclass
class Prepared:
    plans: dict[str, Plan]  # built from the config ("@baseline" arguments as placeholders)
    per_sample: set[str]  # conditions whose plan is rebuilt per sample (they refer to the baseline)
    schedulers: dict[str, Any]  # condition -> scheduler object to swap in (absent: the model's own)
    call_kwargs: dict[str, dict[str, Any]]
    site_order: list[str]


def _site_fields(item: Any) -> list[tuple[str, Any]]:
    """Site addresses of a plan item: a record's ``layers``, an edit's ``scope.layers``."""
    if hasattr(item, "scope") and hasattr(item.scope, "layers"):
        return [("layer", item.scope.layers)]
    return [(name, getattr(item, name)) for name in ("layers", "layer", "sites") if hasattr(item, name)]


def prepare(cfg: SweepConfig, pipe: Any, probe: SampleSpec | None = None) -> Prepared:
    """Pipeline-dependent validation and per-condition setup; ``ConfigError`` naming the field.

    ``probe`` (the first sample) lets edit budgets be checked against a real token layout.
    """
    adapter = adapter_for(pipe)
    sites = adapter.sites(pipe)
    plans: dict[str, Plan] = {}
    for cond in cfg.conditions:
        plan = build_plan(cfg.plan_calls(cond))
        for i, item in enumerate(plan.items):
            for name, spec in _site_fields(item):
                try:
                    resolve_sites(spec, sites, adapter)
                except PlanError as exc:
                    raise ConfigError(f"{plan_field(cfg, cond, i)}.{name}", str(exc)) from None
        try:
            engine.resolve_requests(plan, pipe, adapter)
        except (PlanError, ValueError, RuntimeError) as exc:
            raise ConfigError(plan_field(cfg, cond, None), str(exc)) from None
        plans[cond.name] = plan
    schedulers: dict[str, Any] = {}
    call_params = inspect.signature(type(pipe).__call__).parameters
    call_kwargs: dict[str, dict[str, Any]] = {}
    for cond in cfg.conditions:
        s = cfg.sampler_for(cond)
        own = "scheduler" in dict(cond.sampler)
        where = f"conditions[{cond.position}].sampler" if own else "sampler"
        if s.scheduler:
            try:
                schedulers[cond.name] = build_scheduler(pipe.scheduler, s.scheduler, dict(s.scheduler_config))
            except SchedulerMismatch as exc:
                raise ConfigError(f"{where}.scheduler", str(exc)) from None
        kwargs: dict[str, Any] = {"num_inference_steps": s.steps, "guidance_scale": s.guidance_scale}
        if "guidance_scale" not in call_params:  # a guider component holds it (HunyuanVideo 1.5)
            held = getattr(getattr(pipe, "guider", None), "guidance_scale", None)
            if held is None or float(held) != s.guidance_scale:
                raise ConfigError(
                    f"{where}.guidance_scale",
                    f"{type(pipe).__name__}.__call__ takes no guidance_scale; its guider's scale is {held}: "
                    f"set guidance_scale to {held} (a sweep does not change the pipeline's guider)",
                )
            del kwargs["guidance_scale"]
        for name in ("height", "width", "max_sequence_length"):
            value = getattr(s, name)
            if value is not None:
                if name not in call_params:
                    raise ConfigError(f"sampler.{name}", f"{type(pipe).__name__} takes no {name!r}")
                kwargs[name] = value
        kwargs["negative_prompt"] = s.negative_prompt
        for name, value in s.call_kwargs:
            if name not in call_params and not any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in call_params.values()
            ):
                where_ck = (
                    "sampler" if name in dict(cfg.sampler.call_kwargs) else f"conditions[{cond.position}].sampler"
                )
                raise ConfigError(f"{where_ck}.call_kwargs.{name}", f"{type(pipe).__name__}.__call__ takes no {name!r}")
            kwargs[name] = value
        call_kwargs[cond.name] = kwargs
    if probe is not None:
        _check_edits(cfg, pipe, plans, call_kwargs, probe)
    per_sample = {c.name for c in cfg.conditions if c.uses_baseline}
    return Prepared(plans, per_sample, schedulers, call_kwargs, [s.path for s in sites])


def _check_edits(
    cfg: SweepConfig, pipe: Any, plans: Mapping[str, Plan], call_kwargs: Mapping[str, dict], probe: SampleSpec
) -> None:
    """The engine's own pre-generation checks (heads, budgets vs the token layout) on the probe's call,
    one edit at a time, so that an error names its plan entry."""
    adapter = adapter_for(pipe)
    for cond in cfg.conditions:
        plan = plans[cond.name]
        if cond.uses_baseline or not plan.edits:
            continue  # replay sources exist only once the baseline ran; checked at that trace
        call = engine.CallSpec(probe.prompt.text, probe.seed, call_kwargs[cond.name])
        edits = {id(e) for e in plan.edits}
        for i, item in enumerate(plan.items):
            if id(item) in edits:
                try:
                    engine.prepare(pipe, Plan((item,)), call, kernel=cfg.kernel, adapter=adapter)
                except (PlanError, ValueError) as exc:
                    raise ConfigError(plan_field(cfg, cond, i), str(exc)) from None


# --- running one sample -------------------------------------------------------------------------------


@contextlib.contextmanager
def swapped_scheduler(pipe: Any, scheduler: Any | None) -> Iterator[None]:
    if scheduler is None:
        yield
        return
    original = pipe.scheduler
    pipe.scheduler = scheduler
    try:
        yield
    finally:
        pipe.scheduler = original


def latents_digest(latents: torch.Tensor | None) -> str:
    if latents is None:
        return ""
    t = latents.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class Generated:
    spec: SampleSpec
    trace: Any
    noise_sha: str
    seconds: float

    def job(self) -> WriteJob:
        return WriteJob(self.spec.index, self.trace.stats, {"noise_sha": self.noise_sha, "gen_seconds": self.seconds})


def generate(
    pipe: Any,
    cfg: SweepConfig,
    prep: Prepared,
    spec: SampleSpec,
    embeds: Mapping[str, Any] | None,
    baseline: str | None = None,
) -> Generated:
    """Trace one sample. ``baseline``: the one-sample store of this prompt's baseline (for "@baseline")."""
    cond = spec.condition
    plan = prep.plans[cond.name]
    if cond.name in prep.per_sample:
        try:
            plan = build_plan(cfg.plan_calls(cond), baseline=baseline)
        except PlanFunctionError as exc:
            raise ConfigError(plan_field(cfg, cond, getattr(exc, "index", None)), str(exc)) from None
    kwargs = dict(prep.call_kwargs[cond.name])
    if embeds is not None:
        kwargs.update(embeds)
    box: dict[str, torch.Tensor] = {}

    def first_latents(latents: torch.Tensor) -> None:
        if "latents" not in box:
            box["latents"] = latents.detach().clone()

    with swapped_scheduler(pipe, prep.schedulers.get(cond.name)):
        t0 = time.perf_counter()
        with tracer.trace(
            pipe,
            spec.prompt.text,
            seed=spec.seed,
            condition=cond.name,
            tag=spec.prompt.tag,
            plan=plan,
            kernel=cfg.kernel,
            latents_hook=first_latents,
            **kwargs,
        ) as t:
            pass
        seconds = time.perf_counter() - t0
    return Generated(spec, t, latents_digest(box.get("latents")), seconds)


# --- the sweep --------------------------------------------------------------------------------------


def _as_config(config: SweepConfig | str | os.PathLike | Mapping[str, Any]) -> SweepConfig:
    return config if isinstance(config, SweepConfig) else load_config(config)


def _identity(cfg: SweepConfig, prompts: Sequence[Prompt]) -> dict[str, Any]:
    return {"config": cfg.identity(), "prompts_sha256": prompts_digest(prompts), "n_prompts": len(prompts)}


def check_existing_store(path: Path, identity: Mapping[str, Any]) -> None:
    """An existing store must be a sweep store made by a config with the same results-determining fields."""
    try:
        attrs = store_attrs(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable store is refused the same way
        raise ConfigError("store", f"{path} exists and is not a readable Zarr store: {exc}") from None
    if "sweep_identity" not in attrs:
        raise ConfigError("store", f"{path} exists and is not a sweep store; choose a new path")
    theirs = json.loads(attrs["sweep_identity"])
    if identity_hash(theirs) != identity_hash(identity):
        fields = differences(theirs, json.loads(json.dumps(identity)))
        raise ConfigError(
            "store",
            f"{path} was made by a sweep config that differs in {', '.join(fields)}; resume with the same "
            "config or write to a new store",
        )


def _stats_line(cfg: SweepConfig, info: distributed.DistInfo, result: SweepResult) -> str:
    w = result.writer
    share = 100.0 * w.blocked_s / result.wall_s if result.wall_s > 0 else 0.0
    per = (w.busy_s / w.written) if w.written else 0.0
    return (
        f"[{cfg.name}] rank {info.rank}/{info.world_size}: generated {result.generated} samples "
        f"({result.skipped} already done) in {result.wall_s:.1f} s, {result.samples_per_hour:.0f} samples/h; "
        f"generation {result.generate_s:.1f} s; writer busy {w.busy_s:.2f} s ({per * 1000:.0f} ms/sample), "
        f"generation blocked by the writer {w.blocked_s:.2f} s ({share:.1f}% of wall time)"
    )


def summarize(path: Path, conditions: Sequence[Condition]) -> dict[str, ConditionSummary]:
    """Per-condition counts, mean generation time and headline statistics of the done samples."""
    ds = open_sweep(path)
    done = np.asarray(ds["done"].values, dtype=bool)
    names = np.asarray([str(c) for c in ds["condition"].values])
    out = {}
    for cond in conditions:
        rows = np.flatnonzero(names == cond.name)
        ok = rows[done[rows]]
        means = {}
        for var in ("max_mass", "entropy"):
            if var in ds and len(ok):  # reduced chunk by chunk (dask): a full sweep never sits in memory
                means[var] = float(ds[var].isel(sample=ok).mean(skipna=True).compute())
        secs = float(ds["gen_seconds"].isel(sample=ok).mean().compute()) if len(ok) else float("nan")
        out[cond.name] = ConditionSummary(cond.name, int(len(ok)), int(len(rows)), secs, means)
    return out


def run(
    config: SweepConfig | str | os.PathLike | Mapping[str, Any],
    *,
    store: str | os.PathLike | None = None,
    pipe: Any = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    fault: FaultHook | None = None,
) -> SweepResult:
    """Run (or resume) a sweep; see the module docstring. ``pipe`` reuses an already built pipeline;
    ``fault`` (tests) is called at each point of each sample's write (``writer.FAULT_POINTS``)."""
    t_start = time.perf_counter()
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    cfg = _as_config(config)
    path = Path(store) if store is not None else cfg.store
    info = distributed.from_env()
    prompts, n_source = load_prompts(cfg)
    table = sample_table(cfg, prompts, n_source)
    identity = _identity(cfg, prompts)
    _check_store(path, identity)
    created_group = distributed.init_process_group(info, cfg.run.barrier_timeout_s)
    try:
        with _launch_lock(path, cfg, info):
            _check_store(path, identity)  # again: another sweep may have made it before we held the lock
            if pipe is None:
                pipe = load_pipeline(cfg, distributed.device_for(info, cfg.model.device))
            prep = prepare(cfg, pipe, probe=table[0])
            return _run(cfg, pipe, prep, path, info, prompts, table, identity, progress, say, t_start, fault)
    finally:
        distributed.destroy(created_group)


def _check_store(path: Path, identity: Mapping[str, Any]) -> None:
    """Location (not under a file, writable) and type (a sweep store) of the store, or StoreError; its config,
    or ConfigError."""
    check_location(path, kind="sweep")
    if is_zarr_store(path):
        check_existing_store(path, identity)


@contextlib.contextmanager
def _launch_lock(path: Path, cfg: SweepConfig, info: distributed.DistInfo) -> Iterator[None]:
    """One sweep launch writes a store at a time: rank 0 holds the store's lock (``interp.store.lock``)
    for the whole launch and tells the other ranks whether it got it, so the ranks of one launch never
    contend and every rank of a second launch stops at once with the same message."""
    refusal: str | None = None
    with contextlib.ExitStack() as stack:
        if info.is_main:
            try:
                stack.enter_context(writer_lock(path, f"sweep {cfg.name!r} (rank 0 of {info.world_size})"))
            except StoreLocked as exc:
                refusal = str(exc)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            box = [refusal]
            torch.distributed.broadcast_object_list(box, src=0)
            refusal = box[0]
        if refusal is not None:
            raise StoreLocked(refusal)  # every rank: `interp sweep` exits with EXIT_BUSY (3) and this one line
        yield


def _run(
    cfg: SweepConfig,
    pipe: Any,
    prep: Prepared,
    path: Path,
    info: distributed.DistInfo,
    prompts: Sequence[Prompt],
    table: Sequence[SampleSpec],
    identity: Mapping[str, Any],
    progress: bool | None,
    say: Callable[[str], None],
    t_start: float,
    fault: FaultHook | None = None,
) -> SweepResult:
    n = len(table)
    existing = is_zarr_store(path)
    if existing:
        sample_store = SampleStore(path)
        if sample_store.n_samples != n:
            raise ConfigError("store", f"{path} holds {sample_store.n_samples} samples, this sweep {n}")
        done = sample_store.done()
        owned = {s.index for s in table if info.owns(s.position)}
        remove_partials(path, lambda i: bool(i >= n or done[i] or i in owned))
    else:
        sample_store = None
        done = np.zeros(n, dtype=bool)
        if info.is_main:
            remove_stale_creations(path)
    groups: dict[int, list[SampleSpec]] = {}
    for spec in table:
        if info.owns(spec.position):
            groups.setdefault(spec.position, []).append(spec)
    pending = sum(1 for g in groups.values() for s in g if not done[s.index])
    skipped = sum(1 for g in groups.values() for s in g if done[s.index])
    show = cfg.run.progress if progress is None else progress
    bar = tqdm(total=pending, unit="sample", desc=cfg.name, disable=not (show and info.is_main), dynamic_ncols=True)

    def open_for_writing() -> SampleStore:
        wait_for_store(path, cfg.run.store_wait_s)
        return SampleStore(path)

    generate_s = 0.0
    generated = 0
    writer = BackgroundWriter(
        open_for_writing, maxsize=cfg.run.writer_queue, inline=cfg.run.writer == "inline", fault=fault
    )
    with writer:
        for specs in groups.values():
            todo = [s for s in specs if not done[s.index]]
            if not todo:
                continue
            prompt = specs[0].prompt
            embeds = embeddings.encode(pipe, prompt.text, cfg.sampler.negative_prompt, prep.call_kwargs[cfg.baseline])
            results: list[Generated] = []
            for rep in sorted({s.replicate for s in specs}):
                rep_specs = [s for s in specs if s.replicate == rep]
                results += _run_replicate(cfg, pipe, prep, rep_specs, done, embeds, path, bar, sample_store)
            generate_s += sum(r.seconds for r in results)
            generated += len(results)
            if info.is_main and not is_zarr_store(path):  # other ranks' writers wait for it to appear
                capacity = adapter_for(pipe).key_capacity(pipe, prep.call_kwargs[cfg.baseline])
                layout = StoreLayout.from_traces([r.trace.stats for r in results], prep.site_order, capacity)
                create_store(path, layout, n, index_coords(cfg, table), _attrs(cfg, identity, prep))
            for r in results:
                writer.submit(r.job())
    bar.close()
    result = SweepResult(
        store=path,
        n_samples=n,
        generated=generated,
        skipped=skipped,
        wall_s=time.perf_counter() - t_start,
        generate_s=generate_s,
        writer=writer.stats,
        rank=info.rank,
        world_size=info.world_size,
    )
    say(_stats_line(cfg, info, result))
    distributed.barrier()
    if info.is_main and is_zarr_store(path):
        result.conditions = summarize(path, cfg.conditions)
        for summary in result.conditions.values():
            say(summary.line())
    return result


def _run_replicate(
    cfg: SweepConfig,
    pipe: Any,
    prep: Prepared,
    specs: Sequence[SampleSpec],
    done: np.ndarray,
    embeds: Mapping[str, Any] | None,
    path: Path,
    bar: Any,
    reader: SampleStore | None = None,
) -> list[Generated]:
    """One prompt x seed: the baseline first, then every pending condition; pairing checked."""
    base_spec = specs[0]
    assert base_spec.condition.name == cfg.baseline
    todo = [s for s in specs if not done[s.index]]
    needs_trace = any(s.condition.name in prep.per_sample for s in todo)
    out: list[Generated] = []
    base: Generated | None = None
    if not done[base_spec.index] or needs_trace:
        base = generate(pipe, cfg, prep, base_spec, embeds)
        if not done[base_spec.index]:
            out.append(base)
            bar.update(1)
    if base is not None:
        base_sha = base.noise_sha
    else:  # the baseline was finished by an earlier run: compare with what it stored
        assert reader is not None, "a done baseline implies an existing store"
        base_sha = str(reader.read("noise_sha", [base_spec.index])[0])
    base_sched = prep.schedulers.get(cfg.baseline)
    flow = is_flow_matching(type(pipe.scheduler).__name__, pipe.scheduler.config)
    with _baseline_store(path, base, cfg) as base_path:
        for spec in todo:
            if spec is base_spec:
                continue
            g = generate(pipe, cfg, prep, spec, embeds, baseline=base_path)
            comparable = flow or prep.schedulers.get(spec.condition.name) is base_sched
            if spec.seed == base_spec.seed and comparable and g.noise_sha != base_sha:
                raise SweepError(
                    f"condition {spec.condition.name!r} of prompt {spec.prompt.index} (seed {spec.seed}) did not "
                    f"start from the baseline's initial noise (latents sha {g.noise_sha[:12]} vs "
                    f"{base_sha[:12]}); pairing is broken, so the sweep stops"
                )
            out.append(g)
            bar.update(1)
    return out


@contextlib.contextmanager
def _baseline_store(path: Path, base: Generated | None, cfg: SweepConfig) -> Iterator[str | None]:
    """A temporary one-sample store of the baseline trace (what "@baseline" replays), removed afterwards."""
    if base is None or not any(c.uses_baseline for c in cfg.conditions):
        yield None
        return
    tmp = path.with_name(f".{path.name}.baseline-{os.getpid()}.zarr")
    shutil.rmtree(tmp, ignore_errors=True)
    spec = base.spec
    append_trace(
        tmp,
        base.trace.stats,
        {
            "prompt": spec.prompt.text,
            "negative_prompt": cfg.sampler.negative_prompt,
            "seed": spec.seed,
            "condition": spec.condition.name,
            "tag": spec.prompt.tag,
        },
    )
    try:
        yield str(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _attrs(cfg: SweepConfig, identity: Mapping[str, Any], prep: Prepared) -> dict[str, Any]:
    conditions = []
    for cond in cfg.conditions:
        plan = prep.plans[cond.name]
        conditions.append(
            {
                "name": cond.name,
                "plan": json.loads(plan.to_json()),
                "plan_per_sample": cond.name in prep.per_sample,
                "plan_calls": [{"fn": c.fn, **c.arguments} for c in cfg.plan_calls(cond)],
                "sampler": json.loads(json.dumps(cfg.sampler_for(cond).__dict__, default=str)),
                "seed_offset": cond.seed_offset,
            }
        )
    return {
        "sweep_name": cfg.name,
        "sweep_config": json.dumps(cfg.to_dict(), sort_keys=True),
        "sweep_identity": json.dumps(identity, sort_keys=True),
        "sweep_conditions": json.dumps(conditions, default=str),
        "sweep_baseline": cfg.baseline,
        "sweep_model_id": cfg.model.id,
        "seed_policy": (
            f"seeds.policy={cfg.seeds.policy}, base={cfg.seeds.base}, per_prompt={cfg.seeds.per_prompt}: "
            "seed = base + prompt_index + replicate * n_source + seed_offset (prompt_index) or "
            "base + replicate + seed_offset (same); torch.Generator('cpu').manual_seed(seed) is the "
            "pipeline's generator"
        ),
    }
