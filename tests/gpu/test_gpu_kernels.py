"""The GPU statistics path against the exact reference path, on CUDA, at tiny and full SD3 size.

Tolerances (stated once, used below). fp32 inputs: the fused kernel forms fp32 logits with full-fp32
products ("ieee") and sums in another order than the reference: rtol 1e-4, atol 1e-6 on masses,
atol 1e-4 on entropies (nats). bf16 inputs: the reference upcasts the same bf16 values (products are
exact in fp32), so only summation order and exp2 vs exp differ, but the tensor cores accumulate
differently and the forward's log-sum-exp comes from another kernel: rtol 1e-3, atol 1e-5 on
masses, atol 2e-3 on entropies. Top-k key sets must agree except where masses tie within the mass
tolerance.
"""

import pytest
import torch
import torch.nn.functional as F

from interp.kernels import gpu, transfer
from interp.kernels.cache import KernelCache
from interp.kernels.edit import edited_attention
from interp.kernels.lse_path import compute_stats
from interp.kernels.reference import StatRequest, attention_stats

pytestmark = pytest.mark.gpu
DEV = "cuda"
TOL = {
    torch.float32: dict(mass=dict(rtol=1e-4, atol=1e-6), ent=dict(rtol=1e-4, atol=1e-4)),
    torch.bfloat16: dict(mass=dict(rtol=1e-3, atol=1e-5), ent=dict(rtol=1e-4, atol=2e-3)),
}
REQ = StatRequest(mass=True, mass_full=True, entropy=True, mass_topk=True, top=8, k=5)
FULL = dict(b=2, h=24, nq=4429, nk=4429, d=64)  # SD3-medium, 1024 px, CFG batch 2


def qk(seed, b=2, h=3, nq=77, nk=77, d=64, dtype=torch.float32, n_sinks=3):
    """q, k in SD3's memory layout ((B, N, H, D) transposed), with a few sink keys."""
    g = torch.Generator(DEV).manual_seed(seed)
    q = torch.randn(b, nq, h, d, device=DEV, generator=g).transpose(1, 2)
    k = torch.randn(b, nk, h, d, device=DEV, generator=g).transpose(1, 2)
    for j in range(n_sinks):
        k[:, :, 5 + (nk // n_sinks) * j] += (1.5 + j) * q.mean(2)
    return (q * 0.7).to(dtype), k.to(dtype)


def check(got, ref, dtype, mass_of=None):
    tol = TOL[dtype]
    for name in ("mass_per_key", "max_mass", "topk_mass", "mass_topk"):
        if name in ref:
            torch.testing.assert_close(got[name], ref[name], **tol["mass"], msg=name)
    if "entropy" in ref:
        torch.testing.assert_close(got["entropy"], ref["entropy"], **tol["ent"], msg="entropy")
    if "topk_keys" in ref:
        mass = ref["mass_per_key"] if mass_of is None else mass_of
        a, b = got["topk_keys"].long(), ref["topk_keys"].long()
        differ = a != b
        if differ.any():  # only ties within tolerance may swap ranks
            torch.testing.assert_close(mass.gather(-1, a)[differ], mass.gather(-1, b)[differ], **tol["mass"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", ["all", "subset"])
@pytest.mark.parametrize("biased", [False, True])
def test_tiny_fast_path_matches_reference(dtype, rows, biased):
    q, k = qk(0, dtype=dtype)
    qr = torch.arange(77, device=DEV) if rows == "all" else torch.tensor([0, 3, 9, 40, 76], device=DEV)
    bias = None
    if biased:
        bias = torch.zeros(2, 3, 1, 77, device=DEV)
        bias[..., 5] = float("-inf")
        bias[0, 1, :, 8] = -2.0
    ref = attention_stats(q, k, scale=0.125, query_rows=qr, request=REQ, bias=bias)
    got = compute_stats(q, k, scale=0.125, query_rows=qr, request=REQ, bias=bias, kernel="auto")
    assert got.keys() == ref.keys()
    check(got, ref, dtype)
    if biased:
        assert torch.equal(got["mass_per_key"][..., 5], torch.zeros(2, 3, device=DEV))


@pytest.mark.parametrize("with_forward_lse", [False, True])
def test_full_size_bf16_matches_reference(with_forward_lse):
    q, k = qk(1, dtype=torch.bfloat16, **FULL)
    rows = torch.arange(4096, device=DEV)  # image queries
    lse = None
    if with_forward_lse:
        _, lse = gpu.sdpa_with_lse(q, k, k, scale=0.125)
        if lse is None:
            pytest.skip("the backend public SDPA chose gives no bit-identical output with its log-sum-exp")
    ref = attention_stats(q, k, scale=0.125, query_rows=rows, request=REQ)
    got = compute_stats(q, k, scale=0.125, query_rows=rows, request=REQ, lse=lse)
    check(got, ref, torch.bfloat16)


@pytest.mark.parametrize("with_forward_lse", [False, True])
def test_full_size_fallback_backend_matches_reference(with_forward_lse):
    q, k = qk(2, dtype=torch.bfloat16, **FULL)
    rows = torch.arange(4429, device=DEV)
    lse = gpu.sdpa_with_lse(q, k, k, scale=0.125)[1] if with_forward_lse else None
    ref = attention_stats(q, k, scale=0.125, query_rows=rows, request=REQ)
    got = gpu.gpu_stats(q, k, scale=0.125, query_rows=rows, request=REQ, lse=lse,
                        opts=gpu.GPUOptions(backend="swapped"))  # fmt: skip
    check(got, ref, torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_with_lse_is_public_sdpa_bit_for_bit(dtype):
    shape = FULL if dtype == torch.bfloat16 else dict(b=2, h=3, nq=300, nk=300, d=64)
    q, k = qk(3, dtype=dtype, **shape)
    v = torch.randn_like(k)
    cache = KernelCache()
    out, lse = gpu.sdpa_with_lse(q, k, v, scale=0.125, cache=cache)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v, scale=0.125))
    out2, lse2 = gpu.sdpa_with_lse(q, k, v, scale=0.125, cache=cache)  # after the one-time verification
    assert torch.equal(out2, out) and (lse is None) == (lse2 is None)
    print("sdpa_with_lse backend", torch._fused_sdp_choice(q, k, v), "lse:", lse is not None)
    if lse is not None:
        s = (q.float() @ k.float().transpose(-1, -2)) * 0.125
        torch.testing.assert_close(lse, torch.logsumexp(s, -1), rtol=1e-4, atol=2e-3)


def test_query_topk_subsample_full_size():
    """The estimate is exact on its seeded rows, and within 6 standard errors of the all-row mean."""
    q, k = qk(4, dtype=torch.bfloat16, **FULL)
    rows = torch.arange(4096, device=DEV)
    req = StatRequest(query_topk=True, k=5)
    est = compute_stats(q, k, scale=0.125, query_rows=rows, request=req)["query_topk"]
    pos = gpu.sample_positions(4096, gpu.DEFAULT_OPTIONS.query_topk_sample, 0, rows.device)
    on_rows = attention_stats(q, k, scale=0.125, query_rows=rows[pos], request=req)["query_topk"]
    torch.testing.assert_close(est, on_rows, rtol=1e-5, atol=1e-6)
    s = (q[:, :, :4096].float() @ k.float().transpose(-1, -2)) * 0.125
    per_row = torch.softmax(s, -1).topk(5, -1).values.sum(-1)  # (B, H, 4096)
    n = pos.numel()
    se = per_row.std(-1) * ((1 - n / 4096) / n) ** 0.5
    assert ((est - per_row.mean(-1)).abs() <= 6 * se + 1e-6).all()
    with gpu.options(query_topk_sample=None):
        exact = compute_stats(q, k, scale=0.125, query_rows=rows, request=req)["query_topk"]
    torch.testing.assert_close(exact, per_row.mean(-1), rtol=1e-4, atol=1e-5)


def test_hot_path_never_syncs_with_the_host():
    q, k = qk(5, dtype=torch.bfloat16, b=2, h=4, nq=500, nk=500)
    rows = torch.arange(450, device=DEV)
    req = StatRequest(mass=True, mass_full=True, entropy=True, mass_topk=True, query_topk=True)
    cache = KernelCache()  # what a trace's observer owns: the subsample and the op check, once per shape
    compute_stats(q, k, scale=0.125, query_rows=rows, request=req, cache=cache)  # warm-up: compile, sample cache
    gpu.sdpa_with_lse(q, k, k, scale=0.125, cache=cache)  # its one-time bit-identity check of this shape syncs, once
    copier = transfer.HostCopier()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        res = compute_stats(q, k, scale=0.125, query_rows=rows, request=req, cache=cache)
        _, lse = gpu.sdpa_with_lse(q, k, k, scale=0.125, cache=cache)
        res2 = compute_stats(q, k, scale=0.125, query_rows=rows, request=req, lse=lse, cache=cache)
        idx = {name: copier.push(v) for name, v in res.items()}
    finally:
        torch.cuda.set_sync_debug_mode(0)
    host = copier.finish()
    for name, i in idx.items():
        assert (host[i] == res[name].cpu().numpy()).all(), name
    check(res2, res, torch.bfloat16)


def test_host_copier_mixes_sizes_and_dtypes():
    tensors = [
        torch.randn(3, 4, device=DEV),
        torch.arange(7, device=DEV, dtype=torch.int32),
        torch.randn(600_000, device=DEV),  # large: copied at push time
        torch.randn(2, 2).double(),  # CPU: passed through
        torch.randn(5, device=DEV)[1:4],
    ]
    host = transfer.to_host(tensors, large_bytes=1 << 20)
    for t, h in zip(tensors, host, strict=True):
        assert h.shape == tuple(t.shape) and (h == t.cpu().numpy()).all()


@pytest.mark.parametrize("scope", ["all", "rows", "pairs"])
def test_edit_kernel_on_gpu_matches_brute_force(scope):
    q, k = qk(6, dtype=torch.bfloat16, b=2, h=4, nq=600, nk=600)
    v = torch.randn_like(k)
    original = F.scaled_dot_product_attention(q, k, v, scale=0.125)
    key_bias = torch.zeros(2, 4, 600, device=DEV)
    key_bias[..., 5] = float("-inf")  # eta = 0 on the sink
    key_bias[:, 1, 102] = float(torch.log(torch.tensor(0.3)))  # eta = 0.3
    rows = torch.arange(0, 600, 3, device=DEV) if scope == "rows" else None
    pairs = None
    if scope == "pairs":
        pairs = torch.tensor([[True, False, True, True], [False, True, True, False]], device=DEV)
    out = edited_attention(q, k, v, scale=0.125, key_bias=key_bias, values=None, rows=rows, pairs=pairs,
                           attn_mask=None, original=original)  # fmt: skip
    s = (q.float() @ k.float().transpose(-1, -2)) * 0.125 + key_bias[:, :, None, :]
    a = torch.softmax(s, -1)
    assert (a[..., 5] == 0).all() and not a.isnan().any()
    want = (a @ v.float()).to(torch.bfloat16)
    if rows is not None:
        keep = torch.ones(600, dtype=torch.bool, device=DEV)
        keep[rows] = False
        assert torch.equal(out[:, :, keep], original[:, :, keep])  # out of scope: bit-identical
        want = torch.where(keep[None, None, :, None], original, want)
    if pairs is not None:
        assert torch.equal(out[~pairs], original[~pairs])
        want = torch.where(pairs[:, :, None, None], want, original)
    torch.testing.assert_close(out.float(), want.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("nk", [600, 4429])
def test_edited_attention_lse_matches_brute_force(nk):
    """The whole-scope edit kernel (memory-efficient op, padded bias) and its log-sum-exp."""
    from interp.kernels.edit import edited_attention_lse, rounded_bias

    q, k = qk(7, dtype=torch.bfloat16, b=2, h=4, nq=nk, nk=nk)
    v = torch.randn_like(k)
    key_bias = torch.zeros(2, 4, nk, device=DEV)
    key_bias[..., 5] = float("-inf")
    key_bias[:, 1, 102] = float(torch.log(torch.tensor(0.3)))
    key_bias = rounded_bias(key_bias, q.dtype)
    out, lse = edited_attention_lse(q, k, v, scale=0.125, key_bias=key_bias, values=None)
    assert lse is not None and lse.shape == (2, 4, nk)
    s = (q.float() @ k.float().transpose(-1, -2)) * 0.125 + key_bias[:, :, None, :]
    torch.testing.assert_close(lse, torch.logsumexp(s, -1), rtol=1e-4, atol=2e-3)
    want = (torch.softmax(s, -1) @ v.float()).to(torch.bfloat16)
    torch.testing.assert_close(out.float(), want.float(), rtol=2e-2, atol=2e-2)
    # the verification pass given this LSE measures exactly zero mass on the removed key
    res = compute_stats(
        q,
        k,
        scale=0.125,
        query_rows=torch.arange(nk, device=DEV),
        request=StatRequest(mass_full=True, entropy=True),
        bias=key_bias[:, :, None, :],
        lse=lse,
    )
    assert (res["mass_per_key"][..., 5] == 0).all()
    torch.testing.assert_close(res["mass_per_key"].sum(-1), torch.ones(2, 4, device=DEV), rtol=0, atol=2e-3)
