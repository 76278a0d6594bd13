"""Scoring a store in place: per-sample scores and LPIPS against the baseline, resumable, with provenance."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "metrics"))

import metric_helpers as helpers  # noqa: E402

import interp  # noqa: E402
from interp import mask_topk, record, tracer  # noqa: E402
from interp.metrics import MetricSettings, load_metric  # noqa: E402
from interp.metrics.store_scoring import ScoreError, score_store  # noqa: E402

KW = dict(num_inference_steps=2, max_sequence_length=32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    pipe = interp.pipelines.tiny("sd3")
    path = root / "s.zarr"
    for prompt, seed in (("a photo of a cat", 0), ("a photo of two dogs", 1)):
        for cond in ("baseline", "top1"):
            with tracer.trace(pipe, prompt, seed=seed, store=path, condition=cond, **KW):
                record("mass", layers=1)
                if cond == "top1":
                    mask_topk(layer=1, k=1)
                else:
                    mask_topk(layer=1, k=1, eta=1.0)  # same variables in every sample of the store
    helpers.register_tiny_open_clip(root / "configs")
    helpers.write_clip_checkpoint(root / "w", helpers.TINY_CLIP_T_NAME, tag="", seed=7)
    helpers.write_alexnet(root / "w", seed=3)
    settings = MetricSettings(
        weights_dir=root / "w",
        clip_model=helpers.TINY_CLIP_T_NAME,
        clip_pretrained="",
        device="cpu",
        batch_size=3,
        lpips_size=64,
        verify_hashes=False,
    )
    return path, settings


def test_scores_written_equal_direct_scoring_and_lpips_pairs_with_baseline(store):
    path, settings = store
    attrs_before = dict(xr.open_zarr(path, consolidated=True).attrs)
    counts = score_store(path, ["clip_t", "lpips"], settings, progress=False)
    assert counts == {"clip_t": 4, "lpips": 4}
    ds = xr.open_zarr(path, consolidated=True).load()
    assert ds.attrs == attrs_before  # scoring adds variables, never loses the store's provenance
    images = [interp.metrics.base.Image.fromarray(a) for a in ds.image.values]
    direct = load_metric("clip_t", settings).score(images, [str(p) for p in ds.prompt.values])
    np.testing.assert_allclose(ds.score_clip_t.values, direct["clip_t"], rtol=1e-6)
    lp = ds.lpips_vs_baseline.values
    conds = [str(c) for c in ds.condition.values]
    assert all(lp[i] == 0 for i, c in enumerate(conds) if c == "baseline")
    expect = load_metric("lpips", settings).score_pairs([images[0]], [images[1]])["lpips"][0]
    np.testing.assert_allclose(lp[1], expect, rtol=1e-4, atol=1e-10)  # batch composition moves the last bits
    assert lp[1] > 0 and ds.scored_clip_t.values.all()
    info = json.loads(ds.score_clip_t.attrs["metric_version_info"])
    assert info["metric"] == "clip_t"
    again = score_store(path, ["clip_t"], settings, progress=False)  # finished samples are not recomputed
    assert again == {"clip_t": 0}


def test_resume_scores_only_unflagged_samples(store):
    path, settings = store
    score_store(path, ["clip_t"], settings, progress=False)
    import zarr

    g = zarr.open_group(path)
    g["scored_clip_t"][1:3] = False
    g["score_clip_t"][1:3] = np.nan
    zarr.consolidate_metadata(path)
    assert score_store(path, ["clip_t"], settings, progress=False) == {"clip_t": 2}
    assert np.isfinite(xr.open_zarr(path, consolidated=True).score_clip_t.values).all()


def test_bad_inputs(tmp_path, store):
    _, settings = store
    with pytest.raises(ScoreError, match="not a Zarr v3 store"):
        score_store(tmp_path, ["clip_t"], settings)
    path, _ = store
    with pytest.raises(ScoreError, match="condition to compare with"):
        score_store(path, ["lpips"], settings, baseline="nonexistent", progress=False)
