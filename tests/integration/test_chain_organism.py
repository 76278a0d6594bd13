"""The whole chain on the trained organism, as CI runs it: sweep -> score -> analyze.

A sweep of held-out captions (one per GenEval tag) x {baseline, no-op kernel, A1 top-1 at the middle
block, its equal-budget random control} on ``interp:organism``; the store is scored with the
organism's exact scorer and LPIPS (fabricated AlexNet weights, the real loading path); then the
paper's analyses run on it. Checks are about the chain holding together and the numbers being the
store's own (paired by prompt and seed), not about the organism's quality.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "metrics"))

import metric_helpers as helpers  # noqa: E402

from interp.analysis import run_analyses  # noqa: E402
from interp.metrics import MetricSettings  # noqa: E402
from interp.metrics.store_scoring import score_store  # noqa: E402
from interp.sweep import run as run_sweep  # noqa: E402


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from interp.organism import eval_prompts

    root = tmp_path_factory.mktemp("chain")
    prompts = root / "heldout.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": s.caption, "tag": s.tag}) + "\n" for s, _ in eval_prompts(1)))
    config = {
        "version": 1,
        "name": "organism_chain",
        "store": str(root / "chain.zarr"),
        "model": {"id": "interp:organism"},
        "sampler": {"steps": 6, "guidance_scale": 6.0},
        "prompts": {"source": "jsonl", "path": str(prompts)},
        "records": [{"fn": "record", "stats": ["mass", "entropy"], "layers": [0.5]}],
        "conditions": [
            {"name": "baseline"},
            {"name": "noop_kernel", "plan": [{"fn": "noop_edit", "layer": 0.5, "k": 1}]},
            {"name": "A1", "plan": [{"fn": "mask_topk", "layer": 0.5, "k": 1}]},
            {"name": "A1_random", "plan": [{"fn": "mask_random", "layer": 0.5, "k": 1, "seed": 0}]},
        ],
    }
    run_sweep(config, progress=False, log=lambda s: None)
    store = root / "chain.zarr"
    helpers.write_alexnet(root / "w", seed=3)
    settings = MetricSettings(weights_dir=root / "w", device="cpu", lpips_size=64, verify_hashes=False)
    score_store(store, ["organism", "lpips"], settings, progress=False)
    return store, root


def test_store_is_complete_and_scored(chain):
    store, _ = chain
    ds = xr.open_zarr(store, consolidated=True)
    assert ds.sizes["sample"] == 24 and ds.done.values.all()
    assert np.isin(ds.score_organism_correct.values, [0.0, 1.0]).all()
    base = ds.condition.values == "baseline"
    assert (ds.lpips_vs_baseline.values[base] == 0).all()
    a1 = ds.condition.values == "A1"
    assert (ds.edit_mass_after.values[a1][np.isfinite(ds.edit_mass_after.values[a1])] == 0).all()
    assert ds.attrs["sweep_baseline"] == "baseline"


def test_analyses_run_on_the_chain_store(chain):
    store, root = chain
    outcomes = {o.analysis.name: o for o in run_analyses(store, root / "analysis")}
    for name in ("sink_identity", "interventions", "controls", "specificity", "qualitative"):
        assert outcomes[name].status == "ok", (name, outcomes[name].message)
        assert all(Path(f).is_file() for f in outcomes[name].result.files)
    skipped = {n: o.message for n, o in outcomes.items() if o.status != "ok"}
    assert "fid" in skipped and "inception" in skipped["fid"]  # says what the store lacks
    table2 = outcomes["interventions"].result.tables[0].rows
    a1 = next(r for r in table2 if r["condition"] == "A1")
    ds = xr.open_zarr(store, consolidated=True)
    lp = ds.lpips_vs_baseline.values[ds.condition.values == "A1"]
    np.testing.assert_allclose(a1["lpips_vs_baseline"], lp.mean(), rtol=1e-9)
    assert (root / "analysis" / "index.md").is_file()
