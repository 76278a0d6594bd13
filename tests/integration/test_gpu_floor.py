"""``benchmarks/gpu_floor.py --tiny``: every row of issue 20's table runs on CPU and is reported.

The benchmark is a tool, not library code; this test runs its smoke mode end to end (built-in
pipelines, one step, two repeats) and checks that the report names every row with a measured ratio,
that observation left the latents bit-identical, and that a trace of the compiled denoiser was refused
before generation (this branch refuses compiled regions, ``sites.compiled``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_floor_tiny_runs_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("gpu_floor", ROOT / "benchmarks" / "gpu_floor.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_floor", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        assert mod.main(["--tiny", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)  # --tiny pins one thread
    res = json.loads((tmp_path / "results.json").read_text())
    fams = res["families"]
    expected = {
        "sd3": {"plain", "mass+entropy all", "+ mass_topk", "+ act_norms", "mask_topk(layer=2, k=1)"},
        "sdxl": {"plain", "mass+entropy all", "all three (+ mass_topk)", "+ act_norms"},
        "flux": {"plain", "mass+entropy all"},
    }
    for fam, labels in expected.items():
        assert set(fams[fam]["cases"]) == labels, fam
        assert fams[fam]["bit_identical"] == {"mass+entropy all": True}
        for label, row in fams[fam]["cases"].items():
            assert "error" not in row, (fam, label, row.get("error"))
            assert row["repeats"] == 2 and math.isfinite(row["ratio_median"]) and row["ratio_median"] > 0
            assert row["cpu_ms_per_step"] > 0
    compiled = fams["sd3"]["compiled"]
    assert compiled["trace_of_compiled"] == "ran"
    assert compiled["bit_identical_to_compiled_plain"] and compiled["bit_identical_everything"]
    assert compiled["compiled_trace_everything_vs_compiled_plain"] > 0
    assert compiled["compiled_plain_median_ms"] > 0
    md = (tmp_path / "RESULTS-gpu.md").read_text()
    for label in ("sd3: mass+entropy all", "sdxl: all three", "flux: mass+entropy all", "sd3: compiled"):
        assert label in md
