"""The catalogue of statistics is the one source every stage reads: plan checks, kernel requests,
store schema, variable attributes, interop and the kernels' outputs agree with it."""

from __future__ import annotations

from typing import get_args

import pytest
import torch

import interp
from interp import record, tracer
from interp.interop import SITE_STATISTICS
from interp.kernels.reference import StatRequest, attention_stats
from interp.plan import STATISTICS, PlanError, Record
from interp.statistics import CATALOGUE, CORE, KERNEL_STATISTICS, StatisticName, statistic_of, variables
from interp.store.schema import VARIABLES


def test_literal_and_plan_names_are_the_catalogue():
    assert get_args(StatisticName) == tuple(CATALOGUE)
    assert tuple(STATISTICS) == tuple(CATALOGUE)
    for name in CATALOGUE:
        Record(stats=(name,))
    with pytest.raises(PlanError, match="unknown statistic"):
        Record(stats=("not_a_statistic",))


def test_schema_holds_every_catalogue_variable_and_its_before_twin():
    for name, var in variables().items():
        assert VARIABLES[name].dims == var.dims
        assert (name + "_before" in VARIABLES) == var.before
        assert statistic_of(name).name in CATALOGUE


def test_interop_offers_the_statistics_computed_at_the_kernel_call():
    assert set(SITE_STATISTICS) == {n for n, s in CATALOGUE.items() if s.at_kernel_call}
    assert set(KERNEL_STATISTICS) <= set(SITE_STATISTICS)


def test_stat_request_refuses_what_the_kernels_do_not_compute():
    with pytest.raises(TypeError, match="not kernel statistics"):
        StatRequest({"act_norms"})
    with pytest.raises(TypeError, match="not kernel statistics"):
        StatRequest(maps=True)
    assert StatRequest(mass=True, entropy=False) == StatRequest({"mass"})


@pytest.mark.parametrize("name", KERNEL_STATISTICS)
def test_reference_kernel_returns_exactly_the_catalogue_variables(name):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 7, 4, generator=g), torch.randn(2, 3, 9, 4, generator=g)
    out = attention_stats(q, k, scale=0.5, query_rows=torch.arange(7), request=StatRequest({name}, top=3, k=2))
    assert set(out) == set(CATALOGUE[name].variable_names)
    for var, value in out.items():
        trailing = VARIABLES[var].dims[len(CORE) :]  # (B, H) stand for (step, call, site, branch, head)
        assert value.shape[:2] == (2, 3) and value.ndim == 2 + len(trailing), var


def test_a_trace_stores_exactly_the_catalogue_variables_with_their_options():
    pipe = interp.pipelines.tiny("sd3")
    stats = ("mass", "mass_full", "entropy", "mass_topk", "query_topk", "act_norms")
    with tracer.trace(pipe, "a red bench", seed=0, **interp.pipelines.tiny_call_kwargs("sd3")) as t:
        record(*stats, layers=[0, 1], queries="image", top=3, k=2)
    expected = {v for s in stats for v in CATALOGUE[s].variable_names}
    assert set(t.stats.data_vars) - {"image", "timestep_received"} == expected  # plus the clock's record
    for var in expected:
        assert t.stats[var].dims == VARIABLES[var].dims
        assert (t.stats[var].attrs["queries"], t.stats[var].attrs["top"], t.stats[var].attrs["k"]) == ("image", 3, 2)
