"""The fused Triton kernels on CPU, under Triton's interpreter, against brute force in float64.

Triton's interpreter must be chosen before ``triton.language`` is first imported (its own helpers,
``tl.sum`` and the like, are decorated then), and importing ``interp`` already imports it. So in an
ordinary test process one test re-runs this module and the Triton cases of the conformance suite in
a child process with ``TRITON_INTERPRET=1``; in that child the real tests below run.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import triton_tuning
from interp.kernels import gpu, triton_stats
from interp.kernels.reference import StatRequest, attention_stats
from interp.kernels.triton_stats import LaunchConfig, PassConfig

pytestmark = pytest.mark.skipif(not triton_stats.available(), reason="triton is not installed")
HERE = Path(__file__).resolve().parent
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1" and triton_stats.available() and triton_stats.interpreting()


def brute(q, k, scale, rows, bias=None):
    """float64 lse, column sums over the rows and summed entropy, straight from the definitions."""
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias.double()
    s = s[:, :, rows]
    lse = torch.logsumexp(s, -1)
    a = torch.exp(s - lse[..., None])
    ent = -(torch.where(a > 0, a * torch.log(a), torch.zeros((), dtype=a.dtype))).sum(-1)
    return lse, a.sum(-2), ent.sum(-1)


def make(seed, b=1, h=2, nq=37, nk=29, d=16, dtype=torch.float32, layout="bhnd"):
    g = torch.Generator().manual_seed(seed)
    if layout == "bnhd":  # how SD3's processor hands q to SDPA: (B, N, H, D).transpose(1, 2)
        q = torch.randn(b, nq, h, d, generator=g).transpose(1, 2)
        k = torch.randn(b, nk, h, d, generator=g).transpose(1, 2)
    else:
        q, k = torch.randn(b, h, nq, d, generator=g), torch.randn(b, h, nk, d, generator=g)
    k[:, :, 3] = k[:, :, 3] + 2 * q.mean(2)  # a sink
    return q.to(dtype), k.to(dtype)


def key_bias(b, h, nk):
    bias = torch.zeros(b, h, 1, nk)
    bias[..., 3] = float("-inf")
    bias[:, -1, :, 5] = -2.0
    return bias


def test_launch_config_precedence_and_compatibility():
    """Scoped beats installed, a call's own shape beats "every call"; other shapes keep the default."""
    q, k = make(0)
    rows = torch.tensor([1, 2, 3])
    key = triton_stats.config_key(q, k)
    assert key == ("float32", 1, 2, 37, 29, 16, 37) and triton_stats.config_key(q, k, rows)[-1] == 3
    default = triton_stats.current_config(q, k)
    a, b, c, d = (LaunchConfig(16, 16, 1, 16, 16, 1, s) for s in (1, 2, 3, 4))
    try:
        triton_stats.set_gpu_config(a)
        assert triton_stats.current_config(q, k) == a
        triton_stats.set_gpu_config(b, key)
        assert triton_stats.current_config(q, k) == b and triton_stats.current_config(q, k, rows) == a
        with triton_stats.gpu_config(c):
            assert triton_stats.current_config(q, k) == c
            with triton_stats.gpu_config(d, key):
                assert triton_stats.current_config(q, k) == d and triton_stats.current_config(q, k, rows) == c
            assert triton_stats.current_config(q, k) == c
        assert triton_stats.current_config(q, k) == b
    finally:
        triton_stats.set_gpu_config(None)
        triton_stats.set_gpu_config(None, key)
    assert triton_stats.current_config(q, k) == default
    # benchmarks/gpu_sd3_full.py replaces ``stages`` on GPU_CONFIG: both kernels follow it
    cfg = dataclasses.replace(triton_stats.GPU_CONFIG, stages=2)
    assert cfg.stats.stages == 2 and cfg.lse.stages == 2
    mixed = LaunchConfig.from_passes(PassConfig(64, 128, 4, 4), PassConfig(128, 64, 8, 2))
    assert mixed.stats == PassConfig(64, 128, 4, 4) and mixed.lse == PassConfig(128, 64, 8, 2)
    with pytest.raises(ValueError, match="powers of two"):
        LaunchConfig(stats_block_n=48)


def test_tune_candidates_are_pruned():
    stats, lse = triton_tuning.candidates("stats"), triton_tuning.candidates("lse")
    for cands in (stats, lse):
        assert len(set(cands)) == len(cands) == 33  # 36 less the 3 stage counts of 64 x 32 with 8 warps
        assert all(c.block_m * c.block_n >= 512 * c.warps for c in cands)
    assert PassConfig(64, 128, 4, 3) in stats and PassConfig(32, 64, 8, 3) not in stats
    assert PassConfig(128, 64, 4, 3) in lse and PassConfig(64, 32, 8, 2) not in lse
    big = triton_tuning.candidates("lse", head_dim=128, dtype=torch.float32)  # 128 x 128 fp32 tiles: too much smem
    assert PassConfig(128, 128, 4, 4) not in big and PassConfig(64, 32, 4, 2) in big
    with pytest.raises(ValueError, match="stats"):
        triton_tuning.candidates("flash")


if not INTERPRETED:

    def test_interpreter_suite_in_child_process():
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "triton",
               str(HERE / "test_kernels_triton.py"), str(HERE / "test_kernels_conformance.py")]  # fmt: skip
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=HERE.parent.parent)
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
        assert " passed" in res.stdout and "skipped" not in res.stdout, res.stdout[-2000:]

    @pytest.mark.parametrize("given_lse", [False, True])
    def test_swapped_role_fallback_matches_brute_force(given_lse):
        """The fallback without Triton (off-the-shelf fused kernels in swapped roles, head dims padded)."""
        q, k = make(7, d=20)
        rows = torch.tensor([0, 2, 3, 11, 30, 36])
        lse_ref, col_ref, ent_ref = brute(q, k, 0.3, rows)
        lse = None
        if given_lse:
            _, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, k, scale=0.3)
        col, ent = gpu.swapped_sums(q, k, scale=0.3, rows=rows, lse=lse)
        torch.testing.assert_close(col.double(), col_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ent.double(), ent_ref, rtol=1e-5, atol=1e-4)
        req = StatRequest(mass=True, mass_full=True, entropy=True, top=4)
        got = gpu.gpu_stats(q, k, scale=0.3, query_rows=rows, request=req, opts=gpu.GPUOptions(backend="swapped"))
        ref = attention_stats(q, k, scale=0.3, query_rows=rows, request=req)
        for name in ("mass_per_key", "max_mass", "topk_mass", "entropy"):
            torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6, msg=name)

    def test_cpu_without_interpreter_is_refused():
        q, k = make(0)
        with pytest.raises(RuntimeError, match="interpreter"):
            triton_stats.mass_entropy_sums(q, k, scale=0.3)

else:

    @pytest.mark.parametrize(
        "dtype,layout,with_bias",
        [(torch.float32, "bhnd", False), (torch.float32, "bnhd", True), (torch.float16, "bnhd", False),
         (torch.float16, "bhnd", True)],
    )  # fmt: skip
    def test_triton_lse_and_sums_match_brute_force(dtype, layout, with_bias):
        q, k = make(1, dtype=dtype, layout=layout)
        bias = key_bias(1, 2, 29) if with_bias else None
        rows = torch.tensor([0, 4, 5, 17, 36])
        for r in (None, rows):
            rr = torch.arange(37) if r is None else r
            lse_ref, col_ref, ent_ref = brute(q, k, 0.3, rr, bias)
            lse = triton_stats.row_lse(q, k, scale=0.3, rows=r, bias=bias)
            torch.testing.assert_close(lse[:, :, rr].double(), lse_ref, rtol=1e-5, atol=1e-5)
            col, ent = triton_stats.mass_entropy_sums(q, k, scale=0.3, rows=r, bias=bias)
            torch.testing.assert_close(col.double(), col_ref, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ent.double(), ent_ref, rtol=1e-5, atol=1e-4)
            if with_bias:
                assert torch.equal(col[..., 3], torch.zeros_like(col[..., 3]))  # -inf key: exactly no mass

    def test_triton_head_dim_not_power_of_two():
        q, k = make(2, d=24)
        rr = torch.arange(37)
        _, col_ref, ent_ref = brute(q, k, 0.2, rr)
        col, ent = triton_stats.mass_entropy_sums(q, k, scale=0.2)
        torch.testing.assert_close(col.double(), col_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ent.double(), ent_ref, rtol=1e-5, atol=1e-4)

    def test_triton_with_the_forward_lse():
        """Given the forward kernel's log-sum-exp, one pass gives the same statistics."""
        q, k = make(3)
        _, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, k, scale=0.3)
        with_fwd = triton_stats.mass_entropy_sums(q, k, scale=0.3, lse=lse)
        own = triton_stats.mass_entropy_sums(q, k, scale=0.3)
        for a, b in zip(with_fwd, own, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match="lse must be"):
            triton_stats.mass_entropy_sums(q, k, scale=0.3, lse=lse[:, :, :5])

    def test_triton_refuses_row_varying_bias_and_gpu_stats_routes_it_to_reference():
        q, k = make(4)
        bias = torch.zeros(1, 1, 37, 29)
        bias[..., :10, 3] = float("-inf")
        with pytest.raises(ValueError, match="per-key bias"):
            triton_stats.mass_entropy_sums(q, k, scale=0.3, bias=bias)
        req = StatRequest(mass=True, mass_full=True, entropy=True, top=4)
        rows = torch.arange(37)
        got = gpu.gpu_stats(q, k, scale=0.3, query_rows=rows, request=req, bias=bias,
                            opts=gpu.GPUOptions(backend="triton"))  # fmt: skip
        ref = attention_stats(q, k, scale=0.3, query_rows=rows, request=req, bias=bias)
        for name in ref:
            torch.testing.assert_close(got[name], ref[name], msg=name)

    def test_query_topk_subsample_is_seeded_and_exact_on_its_rows():
        q, k = make(5, nq=61)
        rows = torch.arange(2, 61)
        req = StatRequest(query_topk=True, k=3)
        opts = gpu.GPUOptions(backend="triton", query_topk_sample=16, seed=7)
        got = gpu.gpu_stats(q, k, scale=0.3, query_rows=rows, request=req, opts=opts)["query_topk"]
        pos = gpu.sample_positions(59, 16, 7, rows.device)
        assert pos.numel() == 16 and torch.equal(pos, pos.sort().values) and len(set(pos.tolist())) == 16
        assert torch.equal(pos, gpu.sample_positions(59, 16, 7, rows.device))
        assert not torch.equal(pos, gpu.sample_positions(59, 16, 8, rows.device))
        ref = attention_stats(q, k, scale=0.3, query_rows=rows[pos], request=req)["query_topk"]
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
        exact = gpu.gpu_stats(q, k, scale=0.3, query_rows=rows, request=req,
                              opts=gpu.GPUOptions(backend="triton", query_topk_sample=None))["query_topk"]  # fmt: skip
        full = attention_stats(q, k, scale=0.3, query_rows=rows, request=req)["query_topk"]
        torch.testing.assert_close(exact, full, rtol=1e-5, atol=1e-6)

    def test_options_are_scoped():
        assert gpu.current_options() == gpu.DEFAULT_OPTIONS
        with gpu.options(query_topk_sample=None, seed=3) as o:
            assert gpu.current_options() is o and o.query_topk_sample is None
        assert gpu.current_options() == gpu.DEFAULT_OPTIONS
        with pytest.raises(ValueError, match="backend"):
            gpu.GPUOptions(backend="xformers")

    def test_sdpa_with_lse_on_cpu_is_public_sdpa():
        q, k = make(6)
        v = torch.randn_like(k)
        out, lse = gpu.sdpa_with_lse(q, k, v, scale=0.3)
        assert lse is None
        assert torch.equal(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3))

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    @pytest.mark.parametrize(
        "cfg", [LaunchConfig(32, 16, 1, 16, 32, 1, 1), LaunchConfig(16, 32, 1, 32, 16, 1, 1)], ids=["n32", "n16"]
    )
    def test_triton_partial_blocks_row_subsets_and_masked_keys(dtype, cfg):
        """Block shapes that leave partial key blocks (45 keys in 32s or 16s) and partial query blocks
        (37, 5 or 36 rows in 16s or 32s); -inf biases on single keys, on the last key (in the partial
        block) and, for one head, on a whole key block. Masked keys get exactly no mass, nothing is NaN,
        repeated launches agree bit for bit, and the one-pass (given LSE) result is the two-pass one."""
        q, k = make(8, nq=37, nk=45, dtype=dtype)
        bias = torch.zeros(1, 2, 1, 45)
        bias[..., 3] = float("-inf")
        bias[..., 44] = float("-inf")
        bias[:, 1, :, 16:32] = float("-inf")
        bias[:, 0, :, 7] = -1.5
        masked = bias[:, :, 0] == float("-inf")
        for r in (None, torch.tensor([0, 4, 5, 17, 36]), torch.arange(1, 37)):
            rr = torch.arange(37) if r is None else r
            lse_ref, col_ref, ent_ref = brute(q, k, 0.3, rr, bias)
            with triton_stats.gpu_config(cfg):
                lse = triton_stats.row_lse(q, k, scale=0.3, rows=r, bias=bias)
                col, ent = triton_stats.mass_entropy_sums(q, k, scale=0.3, rows=r, bias=bias)
                again = triton_stats.mass_entropy_sums(q, k, scale=0.3, rows=r, bias=bias)
                one_pass = triton_stats.mass_entropy_sums(q, k, scale=0.3, rows=r, bias=bias, lse=lse)
            torch.testing.assert_close(lse[:, :, rr].double(), lse_ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(col.double(), col_ref, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ent.double(), ent_ref, rtol=1e-5, atol=1e-4)
            assert torch.isfinite(col).all() and torch.isfinite(ent).all()
            assert torch.equal(col[masked], torch.zeros_like(col[masked]))
            assert torch.equal(again[0], col) and torch.equal(again[1], ent)
            torch.testing.assert_close(one_pass[0], col, rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(one_pass[1], ent, rtol=1e-6, atol=1e-5)

    def test_triton_mass_only_and_entropy_only():
        q, k = make(10, dtype=torch.bfloat16)
        rows = torch.tensor([2, 3, 30])
        _, col_ref, ent_ref = brute(q, k, 0.3, rows)
        col, none = triton_stats.mass_entropy_sums(q, k, scale=0.3, rows=rows, need_entropy=False)
        none2, ent = triton_stats.mass_entropy_sums(q, k, scale=0.3, rows=rows, need_mass=False)
        assert none is None and none2 is None
        torch.testing.assert_close(col.double(), col_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ent.double(), ent_ref, rtol=1e-5, atol=1e-4)

    def test_tune_times_checks_and_installs_the_fastest():
        """Under the interpreter the times mean nothing, but the plumbing is the GPU's: every candidate is
        run, checked and timed, one that fails is recorded (not fatal), the pair installed is the best."""
        q, k = make(9, nq=20, nk=24)
        rows = torch.arange(3, 20)
        key = triton_stats.config_key(q, k, rows)
        configs = {"stats": [(16, 16, 1, 1), (32, 32, 1, 1), (24, 16, 1, 1)], "lse": [PassConfig(16, 32, 1, 1)]}
        try:
            report = triton_tuning.tune_report(q, k, rows=rows, configs=configs, reps=1, scale=0.3, install=True)
            assert triton_stats.current_config(q, k, rows) == report.best
            assert triton_stats.current_config(q, k) == triton_stats.INTERPRETER_CONFIG
        finally:
            triton_stats.set_gpu_config(None, key)
        assert report.key == key and len(report.timings) == 4
        bad = [t for t in report.timings if t.config.block_m == 24]
        assert len(bad) == 1 and bad[0].error and math.isinf(bad[0].ms)
        good = [t for t in report.timings if t not in bad]
        assert all(t.error is None and math.isfinite(t.ms) for t in good)
        fastest = min((t for t in good if t.kernel == "stats"), key=lambda t: t.ms).config
        assert report.best.stats == fastest and report.best.lse == PassConfig(16, 32, 1, 1)
        assert "chosen" in report.markdown() and "M24 N16" in report.markdown()
        json.dumps(report.to_json())
        with pytest.raises(ValueError, match="configs"):
            triton_tuning.tune(q, k, configs={"flash": []})
