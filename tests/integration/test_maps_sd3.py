"""Attention maps on request: exact slices of the softmax, stored in chunks, refused when too large."""

import numpy as np
import pytest
import torch

import interp
from interp import record, tracer
from interp.plan import PlanError
from tests.integration.test_trace_sd3 import Capture

KW = dict(num_inference_steps=3, output_type="pt", max_sequence_length=32)


def test_maps_equal_brute_force_slices(tmp_path):
    pipe = interp.pipelines.tiny("sd3")
    attn = pipe.transformer.transformer_blocks[1].attn
    cap = Capture(attn)
    try:
        pipe("a photo of a red bench", generator=torch.Generator("cpu").manual_seed(0), **KW)
    finally:
        cap.remove()
    store = tmp_path / "maps.zarr"
    with tracer.trace(pipe, "a photo of a red bench", seed=0, store=store, **KW) as t:
        record("maps", layers=1, steps=[0, 2], heads=[1, 3], queries="image", keys="text")
    ds = t.stats.sel(site="transformer_blocks.1.attn")
    n_img = 256
    assert ds.map_query_index.values.tolist() == list(range(n_img))
    assert ds.map_key_index.values.tolist() == list(range(n_img, n_img + 77 + 32))
    for step in (0, 2):
        q, k, _, scale, _ = cap.calls[step]
        a = torch.softmax((q.double() @ k.double().transpose(-1, -2)) * scale, -1)
        expect = a[:, [1, 3], :n_img, n_img:].numpy()
        got = ds.attn_map.isel(step=step, call=0).values  # (branch, head, query, key)
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-7)
    assert np.isnan(ds.attn_map.isel(step=1).values).all()  # not requested
    back = interp.open_store(store).attn_map.isel(sample=0).sel(site="transformer_blocks.1.attn")
    np.testing.assert_array_equal(back.values, ds.attn_map.values)
    chunks = interp.open_store(store).attn_map.encoding["chunks"]
    assert chunks[:2] == (1, 1) and chunks[3] == 1  # one sample, step and site per chunk


def test_oversized_map_request_is_refused_before_generation():
    pipe = interp.pipelines.tiny("sd3")
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with (
            pytest.raises(PlanError, match=r"need \d+\.\d MiB, over the budget of 1\.0 MiB"),
            tracer.trace(pipe, "a cat", **KW),
        ):
            record("maps", layers="all", max_mb=1)
    finally:
        handle.remove()
    assert calls == []
