"""Sweep configs: parsed into frozen dataclasses; every bad field is refused with its path, before generation."""

import copy
import tomllib
from pathlib import Path

import pytest

from interp.plan import Plan, Record
from interp.sweep import plan_functions
from interp.sweep.config import ConfigError, load_config, parse_config
from interp.sweep.plan_functions import PlanCall, PlanFunctionError, build_plan

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "version": 1,
    "store": "out/s.zarr",
    "model": {"id": "tiny:sd3"},
    "sampler": {"steps": 2, "guidance_scale": 5.0, "height": 32, "width": 32, "max_sequence_length": 8},
    "prompts": {"source": "geneval", "n": 6},
    "records": [{"stats": ["mass", "entropy"], "layers": "all"}],
    "conditions": [
        {"name": "steps_3", "sampler": {"steps": 3}},
        {"name": "baseline"},
        {"name": "extra", "plan": [{"fn": "record", "stats": ["query_topk"], "layers": 0.5, "k": 3}]},
    ],
}


def _with(path, value):
    cfg = copy.deepcopy(GOOD)
    *head, last = path
    node = cfg
    for key in head:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return cfg


_DELETE = object()


def test_good_config_parses_with_baseline_first(tmp_path):
    cfg = parse_config(GOOD, base_dir=tmp_path)
    assert [c.name for c in cfg.conditions] == ["baseline", "steps_3", "extra"]
    assert [c.position for c in cfg.conditions] == [1, 0, 2]
    assert cfg.store == tmp_path / "out/s.zarr"
    assert cfg.sampler_for(cfg.conditions[1]).steps == 3
    assert cfg.sampler_for(cfg.conditions[0]).steps == 2
    plan = build_plan(cfg.plan_calls(cfg.conditions[2]))
    assert [type(i) for i in plan.items] == [Record, Record]
    assert plan.items[1].stats == ("query_topk",) and plan.items[1].layers == 0.5 and plan.items[1].k == 3


def test_plan_from_config_equals_a_hand_written_plan():
    from interp.plan import close_plan, open_plan, record

    token = open_plan()
    record("mass", "entropy", layers=[0, 2], queries="image")
    by_hand = close_plan(token)
    call = PlanCall("record", (("stats", ("mass", "entropy")), ("layers", (0, 2)), ("queries", "image")))
    assert build_plan([call]) == by_hand
    assert Plan.from_json(build_plan([call]).to_json()) == by_hand


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (("colour",), "red", "colour", "unknown field"),
        (("version",), 2, "version", "version 1"),
        (("sampler", "stepz"), 3, "sampler.stepz", "unknown field"),
        (("sampler", "steps"), _DELETE, "sampler.steps", "required"),
        (("sampler", "steps"), 0, "sampler.steps", ">= 1"),
        (("sampler", "guidance_scale"), "high", "sampler.guidance_scale", "number"),
        (("sampler", "scheduler"), "NoSuchScheduler", "sampler.scheduler", "not a diffusers scheduler"),
        (("sampler", "call_kwargs"), {"generator": 1}, "sampler.call_kwargs.generator", "set by the sweep"),
        (("model", "id"), "tiny:nope", "model.id", "unknown built-in"),
        (("model", "dtype"), "float8", "model.dtype", "not one of"),
        (("prompts", "source"), "web", "prompts.source", "not one of"),
        (("prompts", "source"), "text", "prompts.path", "required"),
        (("prompts", "per_tag"), 2, "prompts.per_tag", "not both"),
        (("seeds",), {"policy": "random"}, "seeds.policy", "not one of"),
        (("conditions", 1, "name"), "steps_3", "conditions[1].name", "duplicate condition name"),
        (("conditions", 1, "name"), "base", "conditions", "no condition is named 'baseline'"),
        (("conditions", 0, "sampler"), {"height": 64}, "conditions[0].sampler.height", "sweep-wide"),
        (
            ("conditions", 0, "sampler"),
            {"max_sequence_length": 9},
            "conditions[0].sampler.max_sequence_length",
            "embeddings",
        ),
        (("conditions", 0, "colour"), 1, "conditions[0].colour", "unknown field"),
        (("conditions", 1, "seed_offset"), 1, "conditions[1].seed_offset", "baseline"),
        (("conditions", 2, "plan"), [{"fn": "nope"}], "conditions[2].plan[0]", "unknown plan function"),
        (("conditions", 2, "plan"), [{"layers": 1}], "conditions[2].plan[0].fn", "required"),
        (
            ("conditions", 2, "plan"),
            [{"fn": "record", "stats": ["mass"], "layerz": 1}],
            "conditions[2].plan[0]",
            "layerz",
        ),
        (
            ("conditions", 2, "plan"),
            [{"fn": "record", "stats": ["masss"]}],
            "conditions[2].plan[0]",
            "unknown statistic",
        ),
        (
            ("conditions", 2, "plan"),
            [{"fn": "record", "stats": ["mass"], "queries": "image"}],
            "conditions[2].plan[0]",
            "other options",
        ),
        (("records",), [{"fn": "mask_topk", "k": 1}], "records[0].fn", "put edits in a condition"),
        (("records",), [{"stats": ["mass"], "top": 0}], "records[0]", "positive integer"),
    ],
)
def test_bad_fields_are_named(tmp_path, path, value, field, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(_with(path, value), base_dir=tmp_path)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_missing_prompt_file_names_the_field(tmp_path):
    cfg = _with(("prompts",), {"source": "text", "path": "missing.txt"})
    with pytest.raises(ConfigError, match="does not exist") as info:
        parse_config(cfg, base_dir=tmp_path)
    assert info.value.field == "prompts.path"


def test_toml_file_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.txt").write_text("a cat\na dog\n")
    (tmp_path / "sub" / "s.toml").write_text(
        'version = 1\nstore = "o.zarr"\n[model]\nid = "tiny:sd3"\n[sampler]\nsteps = 2\n'
        '[prompts]\nsource = "text"\npath = "p.txt"\n[[conditions]]\nname = "baseline"\n'
    )
    cfg = load_config(tmp_path / "sub" / "s.toml")
    assert cfg.prompts.path == tmp_path / "sub" / "p.txt"
    assert cfg.store == tmp_path / "sub" / "o.zarr"
    assert cfg.name == "s"
    (tmp_path / "bad.toml").write_text("version = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_identity_ignores_how_to_run_but_not_what_runs(tmp_path):
    a = parse_config(GOOD, base_dir=tmp_path)
    b = parse_config(
        {**GOOD, "store": "elsewhere.zarr", "run": {"writer_queue": 5, "progress": False}}, base_dir=tmp_path
    )
    c = parse_config(_with(("sampler", "steps"), 4), base_dir=tmp_path)
    assert a.identity() == b.identity()
    assert a.identity() != c.identity()


def test_registered_function_and_unavailable_name():
    calls = []

    def probe(x, *, scale=1):
        calls.append((x, scale))
        return None

    plan_functions.register("probe_fn", probe)
    plan_functions.register("missing_fn", "definitely_not_in_interp")
    try:
        build_plan([PlanCall("probe_fn", (("x", 3), ("scale", 2)))])
        assert calls == [(3, 2)]
        with pytest.raises(PlanFunctionError, match="does not exist in this version"):
            build_plan([PlanCall("missing_fn", ())])
        with pytest.raises(PlanFunctionError, match="scale"):
            build_plan([PlanCall("probe_fn", (("y", 1),))])
    finally:
        del plan_functions.PLAN_FUNCTIONS["probe_fn"], plan_functions.PLAN_FUNCTIONS["missing_fn"]


def test_baseline_reference_is_substituted():
    seen = []
    plan_functions.register("takes_trace", lambda source=None: seen.append(source))
    try:
        call = PlanCall("takes_trace", (("source", "@baseline"),))
        assert call.uses_baseline
        marker = object()
        build_plan([call], baseline=marker)
        assert seen == [marker]
    finally:
        del plan_functions.PLAN_FUNCTIONS["takes_trace"]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "traces" / "sweeps").glob("*.toml")))
def test_shipped_configs_are_valid(name):
    path = ROOT / "traces" / "sweeps" / name
    tomllib.loads(path.read_text())
    try:
        load_config(path)
    except ConfigError as exc:
        if "does not exist in this version" in str(exc):
            pytest.skip(f"{name} uses an edit function the tracing core does not export yet: {exc}")
        raise


def test_cli_reports_a_bad_config_with_its_field_and_exit_status_2(tmp_path, capsys):
    import argparse

    from interp.sweep.cli import add_sweep_command

    (tmp_path / "bad.toml").write_text(
        'version = 1\nstore = "s.zarr"\n[model]\nid = "tiny:sd3"\n[sampler]\nsteps = 0\n'
        '[[conditions]]\nname = "baseline"\n'
    )
    parser = argparse.ArgumentParser()
    add_sweep_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sweep", str(tmp_path / "bad.toml")])
    assert args.func(args) == 2
    assert "sampler.steps: must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()
