"""Traces written to a Zarr v3 store survive the round trip; appending never rewrites earlier samples."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import interp
from interp import record, tracer
from interp.plan import Plan
from interp.store.safety import StoreError
from interp.store.schema import SCHEMA_VERSION


def snapshot(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


def traced(pipe, prompt, seed, store, **kw):
    with tracer.trace(pipe, prompt, seed=seed, store=store, num_inference_steps=3, tag="colors", **kw) as t:
        record("mass", "entropy", "mass_full", layers=[0, "transformer_blocks.3.attn"], top=4)
        record("act_norms", layers=0.5, ord=["inf"])
    return t


def test_round_trip_and_append(tmp_path):
    pipe = interp.pipelines.tiny("sd3")
    store = tmp_path / "traces.zarr"
    t0 = traced(pipe, "a photo of a green bench", 1, store)
    assert t0.sample == 0
    before = snapshot(store)
    chunk_files_0 = {k: v for k, v in before.items() if "/c/" in k and k.split("/c/")[1].startswith("0")}
    assert chunk_files_0

    ds = xr.open_zarr(store, consolidated=True)
    one = ds.isel(sample=0).load()
    for name in t0.stats.data_vars:
        np.testing.assert_array_equal(one[name].values, t0.stats[name].values, err_msg=name)
    for name in ("key_token_str", "key_modality", "key_is_pad", "timestep", "sigma", "t_over_T"):
        np.testing.assert_array_equal(one[name].values, t0.stats[name].values, err_msg=name)
    assert [str(s) for s in ds.site.values] == [str(s) for s in t0.stats.site.values]
    assert str(one.prompt.values) == "a photo of a green bench" and int(one.seed) == 1
    assert str(one.tag.values) == "colors" and str(one.condition.values) == "baseline"
    assert ds.attrs["schema_version"] == SCHEMA_VERSION
    assert Plan.from_json(ds.attrs["plan"]) == t0.plan
    assert ds.attrs["version_diffusers"] and ds.attrs["pipeline_class"] == "StableDiffusion3Pipeline"
    assert ds.done.values.tolist() == [True]
    assert ds.image.dtype == np.uint8 and ds.image.shape[1:] == (64, 64, 3)
    # the timestep the denoiser received (fp32 SD3: exactly the scheduler's), with its dtype
    assert one.timestep_received.dims == ("step", "call") and one.timestep_received.dtype == np.float64
    assert one.timestep_received.attrs["received_dtype"] == "torch.float32"
    np.testing.assert_array_equal(one.timestep_received.isel(call=0).values, t0.stats.timestep.values)

    t1 = traced(pipe, "a photo of two cats", 2, store)
    assert t1.sample == 1
    after = snapshot(store)
    for key, content in chunk_files_0.items():
        assert after[key] == content, f"sample 0 chunk {key} was rewritten"
    ds2 = interp.open_store(store)
    assert ds2.sizes["sample"] == 2 and ds2.done.values.tolist() == [True, True]
    np.testing.assert_array_equal(ds2.max_mass.isel(sample=0).values, one.max_mass.values)
    np.testing.assert_array_equal(ds2.max_mass.isel(sample=1).values, t1.stats.max_mass.values)
    np.testing.assert_array_equal(ds2.timestep_received.isel(sample=1).values, t1.stats.timestep_received.values)
    assert [str(p) for p in ds2.prompt.values] == ["a photo of a green bench", "a photo of two cats"]


def test_incompatible_trace_is_refused(tmp_path):
    """Another plan (one layer instead of all) is refused before generation, naming what differs (it used
    to fail later, at the write, on the site axis); the store is left as it was."""
    pipe = interp.pipelines.tiny("sd3")
    store = tmp_path / "s.zarr"
    traced(pipe, "a photo of a cat", 0, store)
    before = snapshot(store)
    with (
        pytest.raises(StoreError, match=r"another plan \(differs in records\.0\.layers"),
        tracer.trace(pipe, "a dog", store=store, num_inference_steps=3) as _,
    ):
        record("mass", layers=1)
    assert snapshot(store) == before
    # a longer schedule (its own condition: a condition's call options are fixed) does not fit the store's
    # step axis: refused before generation
    with (
        pytest.raises(StoreError, match="has room for 3 denoising steps, this trace asks for 5"),
        tracer.trace(pipe, "a dog", store=store, num_inference_steps=5, condition="long") as t,
    ):
        record("mass", "entropy", "mass_full", layers=[0, 3], top=4)
        record("act_norms", layers=0.5, ord=["inf"])
    assert t.output is None and interp.open_store(store).sizes["sample"] == 1


def test_shorter_trace_is_padded(tmp_path):
    pipe = interp.pipelines.tiny("sd3")
    store = tmp_path / "s.zarr"
    traced(pipe, "a photo of a cat", 0, store)
    with tracer.trace(pipe, "a dog", store=store, num_inference_steps=2, condition="short") as t:
        record("mass", "entropy", "mass_full", layers=[0, 3], top=4)
        record("act_norms", layers=0.5, ord=["inf"])
    ds = interp.open_store(store).isel(sample=1)
    np.testing.assert_array_equal(ds.entropy.isel(step=slice(0, 2)).values, t.stats.entropy.values)
    assert np.isnan(ds.entropy.isel(step=2).values).all()
    assert (ds.argmax_key.isel(step=2).values == -1).all()
    np.testing.assert_array_equal(ds.timestep_received.isel(step=slice(0, 2)).values, t.stats.timestep_received)
    assert np.isnan(ds.timestep_received.isel(step=2).values).all()


def test_a_store_created_before_timestep_received_opens_and_takes_new_traces(tmp_path):
    """A store written before the schema gained ``timestep_received`` (made here by writing a store without
    it) keeps its variables: it opens, and a new trace is appended without the variable."""
    pipe = interp.pipelines.tiny("sd3")
    new_store, old_store = tmp_path / "new.zarr", tmp_path / "old.zarr"
    t0 = traced(pipe, "a photo of a cat", 0, new_store)
    old = xr.open_zarr(new_store, consolidated=True).drop_vars("timestep_received")
    old.to_zarr(old_store, zarr_format=3, consolidated=True)
    t1 = traced(pipe, "a dog", 1, old_store)
    assert t1.sample == 1 and "timestep_received" in t1.stats
    ds = interp.open_store(old_store)
    assert "timestep_received" not in ds.variables and ds.sizes["sample"] == 2
    np.testing.assert_array_equal(ds.max_mass.isel(sample=0).values, t0.stats.max_mass.values)
    np.testing.assert_array_equal(ds.max_mass.isel(sample=1).values, t1.stats.max_mass.values)
