"""Every model family in the registry (``interp.adapters.ADAPTERS``) declares everything interp needs,
and its declarations match its built-in pipeline (``docs/adding_a_family.md``)."""

from __future__ import annotations

import inspect

import pytest

import interp
from interp.adapters import ADAPTERS, adapter_for
from interp.adapters.base import Adapter
from interp.adapters.generic import GenericAdapter
from interp.pipelines import SUPPORTED_TINY
from interp.sites.intercept import DISPATCH_PROCESSORS, SDPA_PROCESSORS

METHODS = ("sites", "layout", "planned_layout", "split_output")


def _built_in(adapter: type[Adapter]):
    if adapter.tiny_variants:
        name = adapter.tiny_variants[0]
        return interp.pipelines.tiny(name), interp.pipelines.tiny_call_kwargs(name)
    return interp.pipelines.organism(), {}


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_family_declares_everything(adapter):
    assert adapter.name and adapter.pipeline_classes and adapter.processors
    assert set(adapter.dispatch_processors) <= set(adapter.processors)
    assert set(adapter.processors) <= SDPA_PROCESSORS and set(adapter.dispatch_processors) <= DISPATCH_PROCESSORS
    for method in METHODS:
        assert getattr(adapter, method) is not getattr(Adapter, method), f"{adapter.name} lacks {method}()"
    assert (adapter.tiny_module is None) == (not adapter.tiny_variants)
    assert set(adapter.tiny_variants) <= set(SUPPORTED_TINY)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_declarations_match_the_built_in_pipeline(adapter):
    pipe, call_kwargs = _built_in(adapter)
    found = adapter_for(pipe)
    assert type(found) is adapter
    sites = found.sites(pipe)
    assert sites and "all" in found.groups(sites)
    denoiser = found.denoiser(pipe)
    for site in sites:
        processor = type(denoiser.get_submodule(site.path).processor).__name__
        declared = adapter.linear_processors if site.linear else adapter.processors
        assert processor in declared, f"{site.path}: {processor} not declared by {adapter.name}"
        for name in {site.key_layout, site.query_layout}:
            planned = found.planned_layout(pipe, name, "a photo of a blue square", call_kwargs)
            if adapter is GenericAdapter:  # generic labels are known only from what the sites see
                assert planned is None
                continue
            assert planned is not None and len(planned) > 0, f"{adapter.name} plans no layout {name!r}"
    if adapter.prompt_embeds is not None:
        params = inspect.signature(type(pipe).__call__).parameters
        assert hasattr(pipe, "encode_prompt")
        assert all(n in params for n in adapter.prompt_embeds if n is not None)


def test_tiny_registry_is_the_adapters_declarations():
    assert tuple(v for a in ADAPTERS for v in a.tiny_variants) == SUPPORTED_TINY
