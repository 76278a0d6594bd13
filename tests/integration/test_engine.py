"""The engine's lifecycle on the built-in SD3 pipeline: prepare checks and touches nothing, the session
always removes what it installed (the latents probe included), edits never import the engine, and an
installed Triton launch configuration belongs to its thread."""

import ast
import threading
from pathlib import Path

import pytest
import torch

import interp
from interp import engine, mask_topk, record, tracer
from interp.kernels import triton_stats
from interp.kernels.triton_stats import LaunchConfig
from interp.plan import Plan, PlanError, close_plan, open_plan
from interp.sites.select import resolve_sites

ROOT = Path(interp.__file__).resolve().parent
CALL = {"num_inference_steps": 2, "output_type": "pt"}


@pytest.fixture
def pipe():
    return interp.pipelines.tiny("sd3")


def plan_of(fn) -> Plan:
    token = open_plan(None)
    try:
        fn()
    finally:
        plan = close_plan(token)
    return plan


def hooks_left(pipe) -> list[str]:
    return [
        name
        for name, m in pipe.transformer.named_modules()
        if m._forward_hooks or m._forward_pre_hooks or getattr(m, "_forward_hooks_always_called", {})
    ]


def test_prepare_resolves_every_site_once_and_installs_nothing(pipe):
    plan = plan_of(lambda: (record("mass", layers=[2, 0]), mask_topk(layer=1, k=1, name="m")))
    prepared = engine.prepare(pipe, plan, engine.CallSpec("a cat", 0, CALL))
    sites = prepared.adapter.sites(pipe)
    want = [s.path for s in resolve_sites([0, 1, 2], sites, prepared.adapter)]
    assert [r.site.path for r in prepared.requests] == want  # model order, one request per site
    assert [r.index for r in prepared.requests] == [0, 1, 2]
    (edited,) = [r for r in prepared.requests if r.edits]
    assert edited.site.path == resolve_sites(1, sites, prepared.adapter)[0].path and not edited.records
    assert prepared.texts == {"cond": "a cat", "uncond": ""}
    assert prepared.provenance["model_family"] == "sd3"
    assert hooks_left(pipe) == [] and "step" not in vars(pipe.scheduler)

    bad = plan_of(lambda: record("mass", layers=99))
    with pytest.raises(PlanError, match="unknown site index 99"):
        engine.prepare(pipe, bad, engine.CallSpec("a cat", 0, CALL))
    with pytest.raises(ValueError, match="unknown kernel"):
        engine.prepare(pipe, plan, engine.CallSpec("a cat", 0, CALL), kernel="fast")


def test_session_removes_hooks_and_latents_probe_also_after_a_failure(pipe):
    plan = plan_of(lambda: record("mass", "act_norms", layers="all"))
    prepared = engine.prepare(pipe, plan, engine.CallSpec("a cat", 0, CALL))
    seen = []
    with engine.Session(prepared, latents_hook=seen.append):
        assert hooks_left(pipe) and "prepare_latents" in vars(pipe) and "step" in vars(pipe.scheduler)
    assert hooks_left(pipe) == [] and "prepare_latents" not in vars(pipe) and "step" not in vars(pipe.scheduler)

    own = pipe.prepare_latents  # an instance-level override the user set must be put back as it was
    pipe.prepare_latents = own
    try:
        with pytest.raises(RuntimeError, match="boom"), engine.Session(prepared, latents_hook=seen.append):
            raise RuntimeError("boom")
        assert vars(pipe)["prepare_latents"] is own
    finally:
        del pipe.prepare_latents
    assert hooks_left(pipe) == [] and seen == []


def test_latents_hook_sees_the_initial_noise_and_changes_nothing(pipe):
    prompt = "a photo of a red bench"
    plain = pipe(prompt, generator=torch.Generator("cpu").manual_seed(3), **CALL).images
    seen: list[torch.Tensor] = []
    with tracer.trace(pipe, prompt, seed=3, latents_hook=lambda x: seen.append(x.clone()), **CALL) as t:
        record("mass", layers=0)
    assert torch.equal(t.images[0], plain[0]) and len(seen) == 1
    again: list[torch.Tensor] = []
    with tracer.trace(pipe, prompt, seed=3, latents_hook=lambda x: again.append(x.clone()), **CALL):
        record("entropy", layers=1)
    other: list[torch.Tensor] = []
    with tracer.trace(pipe, prompt, seed=4, latents_hook=lambda x: other.append(x.clone()), **CALL):
        record("entropy", layers=1)
    assert torch.equal(seen[0], again[0]) and not torch.equal(seen[0], other[0])
    assert "prepare_latents" not in vars(pipe)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("package", ["edits", "sites", "kernels", "store"])
def test_nothing_below_the_engine_imports_it(package):
    """Dependencies run one way (docs/design.md): the stages the engine joins never import it."""
    for path in sorted((ROOT / package).glob("*.py")):
        bad = {m for m in _imports(path) if m == "interp.engine" or m.startswith(("interp.engine.", "interp.tracer"))}
        assert not bad, f"{path.relative_to(ROOT.parent)} imports {sorted(bad)}"


def test_installed_launch_config_belongs_to_its_thread():
    q = torch.randn(1, 2, 37, 16)
    k = torch.randn(1, 2, 29, 16)
    default = triton_stats.current_config(q, k)
    mine = LaunchConfig(16, 16, 1, 16, 16, 1, 5)
    seen = {}
    try:
        triton_stats.set_gpu_config(mine)
        assert triton_stats.current_config(q, k) == mine
        worker = threading.Thread(target=lambda: seen.update(other=triton_stats.current_config(q, k)))
        worker.start()
        worker.join()
    finally:
        triton_stats.set_gpu_config(None)
    assert seen["other"] == default and triton_stats.current_config(q, k) == default
