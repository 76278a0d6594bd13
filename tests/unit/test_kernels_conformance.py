"""Every statistics kernel against the exact reference path (one parametrised conformance suite)."""

import pytest
import torch

from interp.kernels import triton_stats
from interp.kernels.lse_path import compute_stats
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
