"""Sweep store layout, creation, region writes, partial-file cleanup and the background writer.

Traces are synthesised with the tracing core's own schema function, so no pipeline runs here. The
oracle for placing a trace into a larger store is xarray's own ``reindex`` (label axes) and ``pad``
(positional axes), an implementation independent of ``StoreLayout.conform``.
"""

import os

import numpy as np
import pytest
import xarray as xr

from interp.adapters.base import SiteInfo, TokenLayout, image_layout
from interp.store.schema import trace_dataset
from interp.sweep.layout import LayoutError, StoreLayout, fill_value
from interp.sweep.store import (
    SampleStore,
    SweepStoreError,
    create_store,
    open_sweep,
    remove_partials,
    remove_stale_creations,
)
from interp.sweep.writer import FAULT_POINTS, BackgroundWriter, WriteJob

SITES = [SiteInfo(f"blocks.{i}.attn", i, "joint", True, "joint", "joint") for i in range(3)]
ORDER = [s.path for s in SITES]


def small_trace(steps=2, sites=(0, 1), branches=("uncond", "cond"), heads=2, keys=6, seed=0, top=3):
    rng = np.random.default_rng(seed)
    chosen = [SITES[i] for i in sites]
    core = (steps, 1, len(chosen), len(branches), heads)
    text = TokenLayout(
        modality=np.array(["text"] * 2),
        encoder=np.array(["T5"] * 2),
        token_id=np.array([5, 1]),
        token_str=np.array([f"w{seed}", "</s>"]),
        is_bos=np.zeros(2, bool),
        is_eos=np.array([False, True]),
        is_pad=np.zeros(2, bool),
        image_row=np.full(2, -1),
        image_col=np.full(2, -1),
    )
    layout = TokenLayout.concat([image_layout(2, (keys - 2) // 2), text])
    arrays = {
        "max_mass": rng.random(core, dtype=np.float32),
        "argmax_key": rng.integers(0, keys, core).astype(np.int32),
        "topk_keys": rng.integers(0, keys, (*core, top)).astype(np.int32),
        "topk_mass": rng.random((*core, top), dtype=np.float32),
    }
    return trace_dataset(
        arrays=arrays,
        sites=chosen,
        site_shapes={s.path: (heads, keys) for s in chosen},
        branches=list(branches),
        timesteps={i: 1000.0 - 100 * i for i in range(steps)},
        sigmas={i: 1.0 - 0.1 * i for i in range(steps)},
        n_steps=steps,
        n_calls=1,
        layouts={("joint", b): layout for b in branches},
        ords=["2", "inf"],
        var_attrs={},
        attrs={"plan": "[]"},
        image=rng.integers(0, 256, (4, 4, 3), dtype=np.uint8),
        received={(i, 0): 1000.0 - 100 * i + 0.5 for i in range(steps)},
        received_dtype="torch.bfloat16",
    )


def oracle(ds, layout, name):
    """``ds[name]`` placed in the store's shape with xarray's reindex (labels) and pad (positions)."""
    var = ds[name].reset_coords(drop=True) if name in ds.data_vars else ds[name].variable
    var = xr.DataArray(var) if not isinstance(var, xr.DataArray) else var
    var = var.assign_coords({d: ds[d].values for d in var.dims if d in ds.coords})
    fill = fill_value(layout.variables[name].dtype)
    labels = {d: list(layout.labels[d]) for d in var.dims if d in layout.labels}
    var = var.reindex(labels, fill_value=fill) if labels else var
    pads = {d: (0, layout.sizes[d] - var.sizes[d]) for d in var.dims if d not in layout.labels}
    pads = {d: p for d, p in pads.items() if p[1] > 0}
    if pads:
        var = var.drop_vars([d for d in pads if d in var.coords]).pad(pads, constant_values=fill)
    return np.asarray(var.values).astype(layout.variables[name].dtype)


def _equal(a, b):
    if a.dtype.kind == "T":
        return a.shape == b.shape and bool((a == b).all())
    return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def test_union_layout_and_conform_match_xarray_reindex_and_pad():
    a = small_trace(steps=2, sites=(0, 1), seed=1)
    b = small_trace(steps=3, sites=(2, 1), branches=("cond",), seed=2)
    layout = StoreLayout.from_traces([a, b], ORDER)
    assert layout.labels["site"] == tuple(ORDER)
    assert layout.labels["branch"] == ("uncond", "cond")
    assert layout.sizes["step"] == 3
    for ds in (a, b):
        placed = layout.conform(ds)
        assert set(placed) == set(layout.variables)
        for name in layout.variables:
            assert _equal(placed[name], oracle(ds, layout, name)), name


def test_a_store_created_before_timestep_received_takes_traces_without_it():
    """A layout without ``timestep_received`` (a store created before the schema gained it) leaves it out of
    new traces; a variable the store lacks that is not a later schema addition is still refused."""
    old = small_trace().drop_vars("timestep_received")
    layout = StoreLayout.from_traces([old], ORDER)
    assert "timestep_received" in small_trace() and "timestep_received" not in layout.variables
    placed = layout.conform(small_trace(seed=3))
    assert set(placed) == set(layout.variables)
    with pytest.raises(LayoutError, match="entropy"):
        layout.conform(small_trace().assign(entropy=small_trace().max_mass))


def test_traces_that_do_not_fit_are_refused():
    layout = StoreLayout.from_traces([small_trace(sites=(0, 1))], ORDER)
    with pytest.raises(LayoutError, match="site"):
        layout.conform(small_trace(sites=(2,)))
    with pytest.raises(LayoutError, match="'step'"):
        layout.conform(small_trace(steps=5))
    with pytest.raises(LayoutError, match="site_heads"):
        layout.conform(small_trace(heads=1))
    extra = small_trace().assign(entropy=small_trace()["max_mass"])
    with pytest.raises(LayoutError, match="entropy"):
        layout.conform(extra)
    other = small_trace()
    other["max_mass"].attrs["queries"] = "image"
    with pytest.raises(LayoutError, match="one meaning"):
        StoreLayout.from_traces([small_trace(), other], ORDER)


def _new_store(tmp_path, traces, n=4):
    layout = StoreLayout.from_traces(traces, ORDER)
    path = tmp_path / "s.zarr"
    index = {"condition": np.array([f"c{i}" for i in range(n)], dtype=object), "seed": np.arange(n) + 10}
    create_store(path, layout, n, index, {"note": "x"})
    return path, layout


def _extra():
    return {"noise_sha": np.asarray("abc"), "gen_seconds": np.asarray(0.5)}


def test_region_write_reads_back_and_done_is_per_sample(tmp_path):
    a, b = small_trace(seed=1), small_trace(steps=3, sites=(1, 2), seed=2)
    path, layout = _new_store(tmp_path, [a, b])
    store = SampleStore(path)
    store.write_sample(2, {**store.layout.conform(b), **_extra()})
    ds = open_sweep(path)
    assert ds.attrs["note"] == "x"
    assert [str(c) for c in ds["condition"].values] == ["c0", "c1", "c2", "c3"]
    assert list(ds["seed"].values) == [10, 11, 12, 13]
    assert list(ds["done"].values) == [False, False, True, False]
    for name in layout.variables:
        assert _equal(np.asarray(ds[name].isel(sample=2).values), oracle(b, layout, name)), name
    assert str(ds["noise_sha"].values[2]) == "abc"
    # every per-sample array is one chunk per sample
    for name in [*layout.variables, "done"]:
        assert ds[name].encoding["chunks"][0] == 1, name


class Boom(Exception):
    pass


@pytest.mark.parametrize("point", ["before_data", "mid_data", "before_done"])
def test_done_flag_is_written_last(tmp_path, point):
    a = small_trace(seed=1)
    path, layout = _new_store(tmp_path, [a])
    store = SampleStore(path)

    def fault(p, i):
        if p == point:
            raise Boom

    with pytest.raises(Boom):
        store.write_sample(1, {**store.layout.conform(a), **_extra()}, fault)
    assert not SampleStore(path).done().any()
    store.write_sample(1, {**store.layout.conform(a), **_extra()})
    assert list(SampleStore(path).done()) == [False, True, False, False]


def test_remove_partials_only_touches_removable_samples(tmp_path):
    path, _ = _new_store(tmp_path, [small_trace()])
    files = {
        1: path / "max_mass" / "c" / "1" / "0" / "0.abc.partial",
        3: path / "image" / "c" / "3" / "0" / "0.def.partial",
        None: path / "condition" / "c" / "0.ghi.partial",
    }
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    assert remove_partials(path, lambda i: i == 1) == 2
    assert not files[1].exists() and not files[None].exists() and files[3].exists()


def test_creation_is_all_or_nothing(tmp_path):
    path, layout = _new_store(tmp_path, [small_trace()])
    with pytest.raises(SweepStoreError, match="exists"):
        create_store(path, layout, 4, {}, {})
    stale = tmp_path / ".s.zarr.creating-123"
    stale.mkdir()
    remove_stale_creations(path)
    assert not stale.exists() and path.exists()
    assert not list(tmp_path.glob(".s.zarr.creating-*"))


@pytest.mark.parametrize("inline", [False, True])
def test_writer_flushes_everything_on_close(tmp_path, inline):
    traces = [small_trace(seed=i) for i in range(4)]
    path, layout = _new_store(tmp_path, traces[:1])
    written = []
    with BackgroundWriter(lambda: SampleStore(path), maxsize=1, inline=inline, on_written=written.append) as w:
        for i, t in enumerate(traces):
            w.submit(WriteJob(i, t, _extra()))
    assert sorted(written) == [0, 1, 2, 3] and w.stats.written == 4
    ds = open_sweep(path)
    assert ds["done"].values.all()
    for i, t in enumerate(traces):
        assert _equal(np.asarray(ds["max_mass"].isel(sample=i).values), oracle(t, layout, "max_mass"))


def test_writer_errors_reach_the_generating_thread(tmp_path):
    def broken():
        raise SweepStoreError("disk on fire")

    w = BackgroundWriter(broken, maxsize=1)
    w.submit(WriteJob(0, small_trace(), _extra()))
    with pytest.raises(RuntimeError, match="disk on fire"):
        w.close()
    w2 = BackgroundWriter(broken, maxsize=1)
    w2.submit(WriteJob(0, small_trace(), _extra()))
    w2._thread.join(timeout=0.01)  # let the writer fail; later submits then raise at once
    w2._queue.join()
    with pytest.raises(RuntimeError, match="disk on fire"):
        w2.submit(WriteJob(1, small_trace(), _extra()))


def test_kill_hook_spec_is_validated():
    from tests.integration._sweep_kill import kill_at

    with pytest.raises(ValueError, match="point"):
        kill_at("somewhere:3")
    hook = kill_at("mid_data:3, after_done:7")
    hook("mid_data", 4)  # not a target: returns


@pytest.mark.parametrize("inline", [False, True])
def test_writer_calls_the_injected_fault_hook_at_every_point(tmp_path, inline):
    traces = [small_trace(seed=i) for i in range(2)]
    path, _ = _new_store(tmp_path, traces[:1])
    seen = []
    hook = lambda p, i: seen.append((p, i))  # noqa: E731
    with BackgroundWriter(lambda: SampleStore(path), maxsize=1, inline=inline, fault=hook) as w:
        for i, t in enumerate(traces):
            w.submit(WriteJob(i, t, _extra()))
    assert seen == [(p, i) for i in range(2) for p in FAULT_POINTS]


def test_xarray_reads_a_sweep_store_like_a_trace_store(tmp_path):
    a = small_trace(seed=1)
    path, _ = _new_store(tmp_path, [a])
    store = SampleStore(path)
    store.write_sample(0, {**store.layout.conform(a), **_extra()})
    ds = xr.open_zarr(path, consolidated=True)
    assert ds["key_token_str"].dtype.kind == "T"
    assert ds["image"].dtype == np.uint8
    assert "sample" in ds["timestep"].dims
    assert os.path.exists(path / "zarr.json")


def test_rewriting_a_sample_without_a_variable_leaves_no_stale_chunk(tmp_path):
    a = small_trace(seed=1)
    with_extra = a.assign(entropy=a["max_mass"] * 2)
    path, layout = _new_store(tmp_path, [with_extra, a])
    w = BackgroundWriter(lambda: SampleStore(path), maxsize=1)
    w.submit(WriteJob(0, with_extra, _extra()))
    w.submit(WriteJob(0, a, _extra()))  # the same sample redone by a trace that lacks `entropy`
    w.close()
    got = np.asarray(open_sweep(path)["entropy"].isel(sample=0).values)
    assert np.isnan(got).all()
    assert _equal(np.asarray(open_sweep(path)["max_mass"].isel(sample=0).values), oracle(a, layout, "max_mass"))
