"""Every statistics kernel against the exact reference path (one parametrised conformance suite)."""

import pytest
import torch

from interp.kernels import triton_stats
from interp.kernels.cache import KernelCache
from interp.kernels.lse_path import compute_stats, cpu_sdpa_with_lse
from interp.kernels.reference import StatRequest, attention_stats

REQ = StatRequest(mass=True, mass_full=True, entropy=True, mass_topk=True, query_topk=True, top=5, k=3)
IMPLEMENTATIONS = ["auto", "lse", "triton"]
FULL_REQUEST = ("auto", "triton")  # implementations that compute every statistic (query_topk too)


def skip_unavailable(kernel):
    if kernel != "triton":
        return
    if not triton_stats.available():
        pytest.skip("triton is not installed")
    if not triton_stats.interpreting():
        pytest.skip(
            "the Triton kernels run on CPU only under Triton's interpreter (TRITON_INTERPRET=1 before triton "
            "is imported); tests/unit/test_kernels_triton.py runs this suite in such a process"
        )


def inputs(seed, b=2, h=3, nq=45, nk=45, d=16, sink=True):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(b, h, nq, d, generator=g), torch.randn(b, h, nk, d, generator=g)
    if sink:
        k[:, :, 7] += 3 * q.mean(2)  # a key most queries attend to
    return q, k


@pytest.mark.parametrize("kernel", IMPLEMENTATIONS)
@pytest.mark.parametrize("rows", ["all", "subset"])
@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_matches_reference(kernel, rows, seed):
    skip_unavailable(kernel)
    q, k = inputs(seed)
    qr = torch.arange(45) if rows == "all" else torch.tensor([1, 2, 3, 30, 44])
    req = (
        REQ
        if kernel in FULL_REQUEST
        else StatRequest(mass=True, mass_full=True, entropy=True, mass_topk=True, top=5, k=3)
    )
    ref = attention_stats(q, k, scale=0.25, query_rows=qr, request=req)
    got = compute_stats(q, k, scale=0.25, query_rows=qr, request=req, kernel=kernel)
    assert got.keys() == ref.keys()
    for name in ref:
        if name in ("argmax_key", "topk_keys"):
            continue
        torch.testing.assert_close(got[name], ref[name], rtol=2e-5, atol=2e-6, msg=name)
    # top-k sets agree except where masses tie within tolerance
    mass = ref["mass_per_key"]
    for idx_name in ("topk_keys",):
        a, b = got[idx_name].long(), ref[idx_name].long()
        differ = a != b
        if differ.any():
            ma = mass.gather(-1, a)
            mb = mass.gather(-1, b)
            torch.testing.assert_close(ma[differ], mb[differ], rtol=0, atol=2e-6)


def test_lse_kernel_refuses_masks():
    q, k = inputs(0)
    bias = torch.zeros(1, 1, 1, 45)
    with pytest.raises(ValueError, match="attention mask"):
        compute_stats(q, k, scale=0.25, query_rows=torch.arange(45), request=REQ, bias=bias, kernel="lse")
    with pytest.raises(ValueError, match="unknown kernel"):
        compute_stats(q, k, scale=0.25, query_rows=torch.arange(45), request=REQ, kernel="flash")


@pytest.mark.parametrize("kernel", [k for k in IMPLEMENTATIONS if k != "lse"])  # lse refuses biases
@pytest.mark.parametrize("rows", ["all", "subset"])
def test_kernel_matches_reference_with_key_bias(kernel, rows):
    """Per-key biases as edits and padding masks make them: finite (log eta) and -inf (eta = 0)."""
    skip_unavailable(kernel)
    q, k = inputs(4)
    qr = torch.arange(45) if rows == "all" else torch.tensor([0, 5, 6, 40])
    bias = torch.zeros(2, 3, 1, 45)
    bias[:, :, :, 7] = float("-inf")  # the sink removed in every head
    bias[0, 1, :, 3] = -1.5
    bias[1, 2, :, 44] = float("-inf")
    ref = attention_stats(q, k, scale=0.25, query_rows=qr, request=REQ, bias=bias)
    got = compute_stats(q, k, scale=0.25, query_rows=qr, request=REQ, bias=bias, kernel=kernel)
    assert got.keys() == ref.keys()
    torch.testing.assert_close(got["mass_per_key"][..., 7], torch.zeros(2, 3), rtol=0, atol=0)
    for name in ("mass_per_key", "max_mass", "topk_mass", "entropy", "mass_topk", "query_topk"):
        torch.testing.assert_close(got[name], ref[name], rtol=2e-5, atol=2e-6, msg=name)


def test_cpu_flash_kernel_matches_public_sdpa():
    """The identities rest on the CPU flash kernel computing the same attention as public SDPA."""
    q, k = inputs(3)
    v = torch.randn_like(k)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, scale=0.25)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.25))
    s = (q.double() @ k.double().transpose(-1, -2)) * 0.25
    torch.testing.assert_close(lse.double(), torch.logsumexp(s, -1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel", ["auto", "lse"])
@pytest.mark.parametrize("rows", ["all", "subset"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_pass_given_the_forward_lse_matches_reference(kernel, rows, seed):
    """CPU: given the forward's log-sum-exp, mass and entropy come from ONE swapped pass (its output
    carries sum_ij A_ij s_ij); exact against the fp64 reference like the other paths."""
    q, k = inputs(seed, d=16 + 8 * seed)
    q = q * (1 + seed)  # sharper attention
    v = torch.randn_like(k)
    out, lse = cpu_sdpa_with_lse(q, k, v, scale=0.25, cache=KernelCache())
    assert lse is not None
    qr = torch.arange(45) if rows == "all" else torch.tensor([1, 2, 3, 30, 44])
    req = StatRequest(mass=True, mass_full=True, entropy=True, mass_topk=True, top=5, k=3)
    ref = attention_stats(q.double(), k.double(), scale=0.25, query_rows=qr, request=req)
    got = compute_stats(q, k, scale=0.25, query_rows=qr, request=req, kernel=kernel, lse=lse)
    assert got.keys() == ref.keys()
    for name in ("mass_per_key", "max_mass", "topk_mass", "mass_topk", "entropy"):
        torch.testing.assert_close(got[name], ref[name].float(), rtol=2e-5, atol=4e-6, msg=name)


@pytest.mark.parametrize("layout", ["contiguous", "heads_second"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_sdpa_with_lse_is_public_sdpa_bit_for_bit(layout, dtype):
    """The forward that hands out its log-sum-exp is public SDPA's own output, strides included; it is
    verified once per shape in the trace's cache and the later calls reuse the verdict."""
    g = torch.Generator().manual_seed(5)
    if layout == "contiguous":
        q, k, v = (torch.randn(2, 3, 40, 16, generator=g).to(dtype) for _ in range(3))
    else:  # (B, N, H, D) viewed as (B, H, N, D), as diffusers' processors pass it
        q, k, v = (torch.randn(2, 40, 3, 16, generator=g).to(dtype).transpose(1, 2) for _ in range(3))
    cache = KernelCache()
    for scale in (None, 0.3):
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)
        for _ in range(2):
            out, lse = cpu_sdpa_with_lse(q, k, v, scale=scale, cache=cache)
            assert torch.equal(out, want) and out.stride() == want.stride() and out.dtype == want.dtype
            assert lse is not None and lse.dtype == torch.float32
            s = (q.double() @ k.double().transpose(-1, -2)) * (scale or 16**-0.5)
            tol = 1e-5 if dtype == torch.float32 else 2e-2
            torch.testing.assert_close(lse.double(), torch.logsumexp(s, -1), rtol=tol, atol=tol)
    assert len(cache.lse_verified) == 2 and all(cache.lse_verified.values())


def test_cpu_sdpa_with_lse_falls_back_where_unverified():
    """A shape whose verification failed (recorded in the cache) gets public SDPA's output and no lse."""
    q, k, v = (torch.randn(1, 2, 10, 8) for _ in range(3))
    cache = KernelCache()
    cpu_sdpa_with_lse(q, k, v, cache=cache)
    (key,) = cache.lse_verified
    cache.lse_verified[key] = False
    out, lse = cpu_sdpa_with_lse(q, k, v, cache=cache)
    assert lse is None and torch.equal(out, torch.nn.functional.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("top,k", [(8, 3), (3, 8), (5, 5), (60, 2)])
def test_mass_summaries_share_one_topk_bit_for_bit(top, k):
    """mass_topk read off the ranks' topk (k <= top) is the separate topk's sum, bit for bit."""
    from interp.kernels.reference import mass_summaries

    mass = torch.rand(2, 3, 45, generator=torch.Generator().manual_seed(top)).softmax(-1)
    both = mass_summaries(mass, StatRequest(mass=True, mass_topk=True, top=top, k=k))
    alone = mass_summaries(mass, StatRequest(mass_topk=True, k=k))
    assert torch.equal(both["mass_topk"], alone["mass_topk"])
    assert torch.equal(both["mass_topk"], mass.topk(min(k, 45), dim=-1).values.sum(-1))
    assert both["argmax_key"].dtype == torch.int32 and torch.equal(both["argmax_key"], both["topk_keys"][..., 0])
