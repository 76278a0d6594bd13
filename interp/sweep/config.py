"""The sweep config: a versioned TOML schema, parsed into frozen dataclasses and validated field by field.

Design
------
A config names the model, the sampler settings, the prompt set, the seed policy, the records shared by
every condition, and a list of named conditions. A condition is a plan (calls of plan functions by
name, see ``interp.sweep.plan_functions``) plus optional sampler overrides (steps, guidance scale,
scheduler, extra call arguments) and a seed offset. Example (``traces/sweeps/demo.toml``)::

    version = 1
    store = "../out/demo.zarr"          # relative paths are relative to this file
    [model]
    id = "tiny:sd3"                     # or a hub id / local folder for interp.pipelines.load
    [sampler]
    steps = 2
    guidance_scale = 5.0
    [prompts]
    source = "geneval"
    n = 8                               # balanced by tag, seeded
    [[records]]
    stats = ["mass", "entropy"]
    [[conditions]]
    name = "baseline"
    [[conditions]]
    name = "L2_top1"
    [[conditions.plan]]
    fn = "mask_topk"
    layer = 0.5
    k = 1

Validation happens in two stages, both before any generation: :func:`parse_config` checks everything
that needs no model (unknown or missing fields, types, ranges, duplicate condition names, unknown
plan functions or arguments, plan values, scheduler class names, prompt files); the runner then checks
what needs the loaded pipeline (sites such as layer 30 on a 24-layer model, scheduler compatibility).
Every error is a :class:`ConfigError` whose message starts with the field's path
(``conditions[2].plan[0]``, ``sampler.scheduler``).

Sampler overrides are limited to what keeps pairing meaningful and prompt embeddings reusable: image
size, negative prompt and text length are sweep-wide. The baseline condition (``baseline = "..."``,
default ``"baseline"``) must exist; it always runs first within a prompt, whatever its position.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from interp.sweep.plan_functions import PlanCall, PlanFunctionError, build_plan

CONFIG_VERSION = 1
PROMPT_SOURCES = ("geneval", "text", "jsonl")
SEED_POLICIES = ("prompt_index", "same")
KERNELS = ("auto", "lse", "reference")
DTYPES = ("float32", "float16", "bfloat16")
SAMPLER_OVERRIDES = ("steps", "guidance_scale", "scheduler", "scheduler_config", "call_kwargs")
SWEEP_WIDE_SAMPLER = {
    "height": "the image size is sweep-wide (stored images of one store share their pixel dims)",
    "width": "the image size is sweep-wide (stored images of one store share their pixel dims)",
    "negative_prompt": "prompt embeddings are computed once per prompt and shared by its conditions",
    "max_sequence_length": "prompt embeddings are computed once per prompt and shared by its conditions",
}
RESERVED_CALL_KWARGS = (
    "prompt",
    "negative_prompt",
    "prompt_embeds",
    "negative_prompt_embeds",
    "pooled_prompt_embeds",
    "negative_pooled_prompt_embeds",
    "generator",
    "latents",
    "num_images_per_prompt",
    "num_inference_steps",
    "guidance_scale",
    "height",
    "width",
    "max_sequence_length",
    "output_type",
    "return_dict",
)


class ConfigError(ValueError):
    """A config that cannot run; ``field`` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


Items = tuple[tuple[str, Any], ...]


def _items(mapping: Mapping[str, Any]) -> Items:
    """A table as sorted (key, value) pairs; values stay as TOML gave them (passed on unchanged)."""
    return tuple(sorted(mapping.items()))


@dataclass(frozen=True)
class ModelConfig:
    """``id``: ``tiny:<name>`` (built-in pipeline), or a hub id / local folder for ``pipelines.load``."""

    id: str
    dtype: str = "float32"
    device: str = "auto"
    revision: str | None = None

    @property
    def tiny_name(self) -> str | None:
        return self.id.split(":", 1)[1] if self.id.startswith("tiny:") else None


@dataclass(frozen=True)
class SamplerConfig:
    steps: int
    guidance_scale: float
    height: int | None = None
    width: int | None = None
    negative_prompt: str = ""
    max_sequence_length: int | None = None
    scheduler: str | None = None
    scheduler_config: Items = ()
    call_kwargs: Items = ()


@dataclass(frozen=True)
class PromptConfig:
    source: str = "geneval"
    path: Path | None = None
    text_field: str = "prompt"
    tag_field: str = "tag"
    tag: str = ""
    n: int | None = None
    per_tag: int | None = None
    subset_seed: int = 0


@dataclass(frozen=True)
class SeedConfig:
    """Seed of replicate r of prompt i (source index) under condition c.

    ``prompt_index``: ``base + i + r * n_source + c.seed_offset``; ``same``: ``base + r + c.seed_offset``.
    """

    base: int = 0
    per_prompt: int = 1
    policy: str = "prompt_index"


@dataclass(frozen=True)
class RunConfig:
    """How to run (never changes results): writer queue depth, progress bar, waits."""

    writer: str = "thread"
    writer_queue: int = 2
    progress: bool = True
    store_wait_s: float = 3600.0
    barrier_timeout_s: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Condition:
    name: str
    plan: tuple[PlanCall, ...] = ()
    sampler: Items = ()
    seed_offset: int = 0
    position: int = 0  # index in the config's [[conditions]] list (for error messages)

    @property
    def uses_baseline(self) -> bool:
        return any(c.uses_baseline for c in self.plan)


@dataclass(frozen=True)
class SweepConfig:
    version: int
    name: str
    store: Path
    model: ModelConfig
    sampler: SamplerConfig
    prompts: PromptConfig
    seeds: SeedConfig
    records: tuple[PlanCall, ...]
    conditions: tuple[Condition, ...]  # baseline first
    baseline: str = "baseline"
    kernel: str = "auto"  # the tracer's statistics kernel (tracer.trace(kernel=...))
    run: RunConfig = field(default_factory=RunConfig)
    source: Path | None = None

    def sampler_for(self, condition: Condition) -> SamplerConfig:
        """The sampler settings of ``condition``: the sweep's, with the condition's overrides."""
        over = dict(condition.sampler)
        if "call_kwargs" in over:
            over["call_kwargs"] = _items({**dict(self.sampler.call_kwargs), **dict(over["call_kwargs"])})
        if "scheduler" in over and "scheduler_config" not in over:
            over["scheduler_config"] = ()
        return replace(self.sampler, **over)

    def plan_calls(self, condition: Condition) -> tuple[PlanCall, ...]:
        return (*self.records, *condition.plan)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (paths as strings)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def identity(self) -> dict[str, Any]:
        """The parts that determine the results (what a resumed run must agree on)."""
        d = self.to_dict()
        for k in ("store", "run", "source", "name"):
            d.pop(k, None)
        for c in d["conditions"]:
            c.pop("position", None)
        d["prompts"].pop("path", None)  # the prompt list itself is part of the store's identity
        return d


def identity_hash(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


# --- parsing ---------------------------------------------------------------------------------------


def load_config(source: str | os.PathLike | Mapping[str, Any], *, base_dir: Path | None = None) -> SweepConfig:
    """Read and validate a config: a TOML file path, or an already parsed mapping."""
    if isinstance(source, Mapping):
        return parse_config(source, base_dir=base_dir or Path.cwd())
    path = Path(source)
    if not path.is_file():
        raise ConfigError("config", f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    return parse_config(data, base_dir=path.resolve().parent, source=path.resolve())


def _check_keys(table: Any, where: str, known: Sequence[str], required: Sequence[str] = ()) -> dict:
    if not isinstance(table, Mapping):
        raise ConfigError(where, f"expected a table, got {type(table).__name__}")
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}.{key}" if where else key, f"unknown field; known: {', '.join(known)}")
    for key in required:
        if key not in table:
            raise ConfigError(f"{where}.{key}" if where else key, "required field is missing")
    return dict(table)


def _int(value: Any, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(where, f"must be >= {minimum}, got {value}")
    return value


def _float(value: Any, where: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"expected a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(where, f"must be >= {minimum}, got {value}")
    return float(value)


def _str(value: Any, where: str, choices: Sequence[str] | None = None, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise ConfigError(where, f"expected a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(where, f"{value!r} is not one of: {', '.join(choices)}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(where, f"expected true or false, got {value!r}")
    return value


def _path(value: Any, where: str, base_dir: Path) -> Path:
    p = Path(os.path.expanduser(_str(value, where)))
    return p if p.is_absolute() else (base_dir / p)


def parse_config(data: Mapping[str, Any], *, base_dir: Path, source: Path | None = None) -> SweepConfig:
    """Validate a parsed config (see the module docstring); raises ``ConfigError`` naming the field."""
    top = _check_keys(
        data,
        "",
        (
            "version",
            "name",
            "store",
            "baseline",
            "kernel",
            "model",
            "sampler",
            "prompts",
            "seeds",
            "run",
            "records",
            "conditions",
        ),
        required=("version", "store", "model", "sampler", "conditions"),
    )
    version = _int(top["version"], "version")
    if version != CONFIG_VERSION:
        raise ConfigError("version", f"this interp reads sweep config version {CONFIG_VERSION}, got {version}")
    name = _str(top.get("name", "sweep"), "name")
    store = _path(top["store"], "store", base_dir)
    baseline = _str(top.get("baseline", "baseline"), "baseline")
    model = _parse_model(top["model"])
    sampler = _parse_sampler(top["sampler"], "sampler", full=True)
    prompts = _parse_prompts(top.get("prompts", {}), base_dir)
    seeds = _parse_seeds(top.get("seeds", {}))
    run = _parse_run(top.get("run", {}))
    records = _parse_records(top.get("records", []))
    conditions = _parse_conditions(top["conditions"], baseline)
    cfg = SweepConfig(
        version=version,
        name=name,
        store=store,
        model=model,
        sampler=sampler,
        prompts=prompts,
        seeds=seeds,
        records=records,
        conditions=conditions,
        baseline=baseline,
        kernel=_str(top.get("kernel", "auto"), "kernel", KERNELS),
        run=run,
        source=source,
    )
    for cond in cfg.conditions:
        check_plan(cfg, cond)
    _check_statistic_options(cfg)
    return cfg


def _parse_model(table: Any) -> ModelConfig:
    t = _check_keys(table, "model", ("id", "dtype", "device", "revision"), required=("id",))
    mid = _str(t["id"], "model.id")
    if mid.startswith("tiny:"):
        from interp.pipelines import SUPPORTED_TINY

        if mid[5:] not in SUPPORTED_TINY:
            raise ConfigError(
                "model.id",
                f"unknown built-in pipeline {mid!r}; known: tiny:" + ", tiny:".join(SUPPORTED_TINY),
            )
    return ModelConfig(
        id=mid,
        dtype=_str(t.get("dtype", "float32"), "model.dtype", DTYPES),
        device=_str(t.get("device", "auto"), "model.device"),
        revision=_str(t["revision"], "model.revision") if "revision" in t else None,
    )


def _parse_sampler(table: Any, where: str, *, full: bool) -> Any:
    known = (
        "steps",
        "guidance_scale",
        "height",
        "width",
        "negative_prompt",
        "max_sequence_length",
        "scheduler",
        "scheduler_config",
        "call_kwargs",
    )
    if not isinstance(table, Mapping):
        raise ConfigError(where, f"expected a table, got {type(table).__name__}")
    if not full:
        for key in table:
            if key in SWEEP_WIDE_SAMPLER:
                raise ConfigError(f"{where}.{key}", f"cannot be changed per condition: {SWEEP_WIDE_SAMPLER[key]}")
    t = _check_keys(table, where, known if full else SAMPLER_OVERRIDES, required=("steps",) if full else ())
    out: dict[str, Any] = {}
    if "steps" in t:
        out["steps"] = _int(t["steps"], f"{where}.steps", 1)
    if "guidance_scale" in t:
        out["guidance_scale"] = _float(t["guidance_scale"], f"{where}.guidance_scale", 0.0)
    for key in ("height", "width"):
        if key in t:
            out[key] = _int(t[key], f"{where}.{key}", 8)
    if "negative_prompt" in t:
        out["negative_prompt"] = _str(t["negative_prompt"], f"{where}.negative_prompt", empty=True)
    if "max_sequence_length" in t:
        out["max_sequence_length"] = _int(t["max_sequence_length"], f"{where}.max_sequence_length", 1)
    if "scheduler" in t:
        out["scheduler"] = _scheduler_name(t["scheduler"], f"{where}.scheduler")
    if "scheduler_config" in t:
        out["scheduler_config"] = _items(
            _check_keys(t["scheduler_config"], f"{where}.scheduler_config", tuple(t["scheduler_config"]))
        )
    if "call_kwargs" in t:
        ck = _check_keys(t["call_kwargs"], f"{where}.call_kwargs", tuple(t["call_kwargs"]))
        for key in ck:
            if key in RESERVED_CALL_KWARGS:
                raise ConfigError(
                    f"{where}.call_kwargs.{key}",
                    "is set by the sweep itself; use the sampler "
                    "fields (steps, guidance_scale, height, width, ...) or the prompt set",
                )
        out["call_kwargs"] = _items(ck)
    if full:
        out.setdefault("guidance_scale", 5.0)
        return SamplerConfig(**out)
    return _items(out) if out else ()


def _scheduler_name(value: Any, where: str) -> str:
    name = _str(value, where)
    import diffusers

    cls = getattr(diffusers, name, None)
    if not isinstance(cls, type) or not issubclass(cls, diffusers.SchedulerMixin):
        raise ConfigError(where, f"{name!r} is not a diffusers scheduler class (e.g. FlowMatchEulerDiscreteScheduler)")
    return name


def _parse_prompts(table: Any, base_dir: Path) -> PromptConfig:
    t = _check_keys(
        table, "prompts", ("source", "path", "text_field", "tag_field", "tag", "n", "per_tag", "subset_seed")
    )
    source = _str(t.get("source", "geneval"), "prompts.source", PROMPT_SOURCES)
    path = None
    if source == "geneval":
        if "path" in t:
            raise ConfigError("prompts.path", 'the GenEval prompts ship with interp; use source = "jsonl" for a file')
    else:
        if "path" not in t:
            raise ConfigError("prompts.path", f"required for source = {source!r}")
        path = _path(t["path"], "prompts.path", base_dir)
        if not path.is_file():
            raise ConfigError("prompts.path", f"prompt file {path} does not exist")
    if "n" in t and "per_tag" in t:
        raise ConfigError("prompts.per_tag", "give either n (subset size) or per_tag, not both")
    return PromptConfig(
        source=source,
        path=path,
        text_field=_str(t.get("text_field", "prompt"), "prompts.text_field"),
        tag_field=_str(t.get("tag_field", "tag"), "prompts.tag_field"),
        tag=_str(t.get("tag", ""), "prompts.tag", empty=True),
        n=_int(t["n"], "prompts.n", 1) if "n" in t else None,
        per_tag=_int(t["per_tag"], "prompts.per_tag", 1) if "per_tag" in t else None,
        subset_seed=_int(t.get("subset_seed", 0), "prompts.subset_seed", 0),
    )


def _parse_seeds(table: Any) -> SeedConfig:
    t = _check_keys(table, "seeds", ("base", "per_prompt", "policy"))
    return SeedConfig(
        base=_int(t.get("base", 0), "seeds.base", 0),
        per_prompt=_int(t.get("per_prompt", 1), "seeds.per_prompt", 1),
        policy=_str(t.get("policy", "prompt_index"), "seeds.policy", SEED_POLICIES),
    )


def _parse_run(table: Any) -> RunConfig:
    t = _check_keys(table, "run", ("writer", "writer_queue", "progress", "store_wait_s", "barrier_timeout_s"))
    return RunConfig(
        writer=_str(t.get("writer", "thread"), "run.writer", ("thread", "inline")),
        writer_queue=_int(t.get("writer_queue", 2), "run.writer_queue", 1),
        progress=_bool(t.get("progress", True), "run.progress"),
        store_wait_s=_float(t.get("store_wait_s", 3600.0), "run.store_wait_s", 0.0),
        barrier_timeout_s=_float(t.get("barrier_timeout_s", 7 * 24 * 3600.0), "run.barrier_timeout_s", 1.0),
    )


def _parse_call(table: Any, where: str, default_fn: str | None) -> PlanCall:
    if not isinstance(table, Mapping):
        raise ConfigError(where, f"expected a table, got {type(table).__name__}")
    kwargs = dict(table)
    fn = kwargs.pop("fn", default_fn)
    if fn is None:
        raise ConfigError(f"{where}.fn", 'required field is missing (the plan function to call, e.g. "record")')
    fn = _str(fn, f"{where}.fn")
    if default_fn is not None and fn != default_fn:
        raise ConfigError(f"{where}.fn", f"[[records]] entries call {default_fn!r}; put edits in a condition's plan")
    return PlanCall(fn=fn, kwargs=tuple((k, _thaw_list(v)) for k, v in kwargs.items()))


def _thaw_list(value: Any) -> Any:
    """TOML arrays become tuples (hashable, frozen); plan functions accept any sequence."""
    if isinstance(value, list):
        return tuple(_thaw_list(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _thaw_list(v) for k, v in value.items()}
    return value


def _parse_records(value: Any) -> tuple[PlanCall, ...]:
    if not isinstance(value, list):
        raise ConfigError("records", "expected an array of tables ([[records]])")
    return tuple(_parse_call(t, f"records[{i}]", "record") for i, t in enumerate(value))


def _parse_conditions(value: Any, baseline: str) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("conditions", "expected a non-empty array of tables ([[conditions]])")
    seen: dict[str, int] = {}
    out = []
    for i, table in enumerate(value):
        where = f"conditions[{i}]"
        t = _check_keys(table, where, ("name", "plan", "sampler", "seed_offset"), required=("name",))
        name = _str(t["name"], f"{where}.name")
        if name in seen:
            raise ConfigError(f"{where}.name", f"duplicate condition name {name!r} (also conditions[{seen[name]}])")
        seen[name] = i
        plan = t.get("plan", [])
        if not isinstance(plan, list):
            raise ConfigError(f"{where}.plan", "expected an array of tables ([[conditions.plan]])")
        calls = tuple(_parse_call(c, f"{where}.plan[{j}]", None) for j, c in enumerate(plan))
        sampler = _parse_sampler(t.get("sampler", {}), f"{where}.sampler", full=False)
        out.append(
            Condition(
                name=name,
                plan=calls,
                sampler=sampler,
                seed_offset=_int(t.get("seed_offset", 0), f"{where}.seed_offset"),
                position=i,
            )
        )
    base = next((c for c in out if c.name == baseline), None)
    if base is None:
        raise ConfigError(
            "conditions",
            f"no condition is named {baseline!r} (the baseline); add one with "
            f'[[conditions]] name = "{baseline}", or set baseline = "<name>"',
        )
    if base.seed_offset != 0:
        raise ConfigError(f"conditions[{base.position}].seed_offset", "the baseline condition keeps the prompt's seed")
    if base.uses_baseline:
        raise ConfigError(f"conditions[{base.position}].plan", 'the baseline cannot refer to itself ("@baseline")')
    return (base, *[c for c in out if c is not base])


def plan_field(cfg: SweepConfig, condition: Condition, index: int | None) -> str:
    """Config path of the plan call at ``index`` of ``cfg.plan_calls(condition)``."""
    if index is None:
        return f"conditions[{condition.position}] ({condition.name})"
    if index < len(cfg.records):
        return f"records[{index}]"
    return f"conditions[{condition.position}].plan[{index - len(cfg.records)}]"


def check_plan(cfg: SweepConfig, condition: Condition) -> None:
    """Build the condition's plan (``"@baseline"`` arguments stay placeholders) to run its validation."""
    try:
        build_plan(cfg.plan_calls(condition))
    except PlanFunctionError as exc:
        raise ConfigError(plan_field(cfg, condition, getattr(exc, "index", None)), str(exc)) from None


def _check_statistic_options(cfg: SweepConfig) -> None:
    """Every stored variable must have one meaning: a statistic's options agree across conditions."""
    from interp.plan import Record

    owner: dict[str, tuple[str, tuple]] = {}
    for cond in cfg.conditions:
        plan = build_plan(cfg.plan_calls(cond))
        for i, item in enumerate(plan.items):
            if not isinstance(item, Record):
                continue
            options = (item.queries, item.top, item.k, item.where, item.ord, item.steps)
            for stat in item.stats:
                if stat in owner and owner[stat][1] != options:
                    raise ConfigError(
                        plan_field(cfg, cond, i),
                        f"statistic {stat!r} is recorded with other options (queries, top, k, where, ord, "
                        f"steps) "
                        f"than in condition {owner[stat][0]!r}; one store gives each variable one meaning",
                    )
                owner.setdefault(stat, (cond.name, options))
