"""The exact reference kernels against a fully materialised softmax (brute force)."""

import numpy as np
import pytest
import torch

from interp.kernels.reference import StatRequest, activation_norms, attention_stats, mask_to_bias

ALL = StatRequest(mass=True, mass_full=True, entropy=True, mass_topk=True, query_topk=True, top=6, k=3)


def brute(q, k, scale, rows, bias=None, top=6, kk=3):
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias.double()
    a = torch.softmax(s, dim=-1)[:, :, rows]
    m = a.mean(dim=2)
    logs = torch.where(a > 0, torch.log(a), torch.zeros((), dtype=a.dtype))
    ent = (-(a * logs).sum(-1)).mean(-1)
    vals, idx = m.sort(dim=-1, descending=True)
    return {
        "mass_per_key": m,
        "max_mass": vals[..., 0],
        "argmax_key": idx[..., 0],
        "topk_mass": vals[..., :top],
        "topk_keys": idx[..., :top],
        "entropy": ent,
        "mass_topk": vals[..., :kk].sum(-1),
        "query_topk": a.sort(dim=-1, descending=True).values[..., :kk].sum(-1).mean(-1),
    }


@pytest.mark.parametrize("chunk_bytes", [1, 4096, 32 << 20])
@pytest.mark.parametrize("subset", ["all", "some"])
def test_statistics_equal_brute_force(chunk_bytes, subset):
    g = torch.Generator().manual_seed(0)
    b, h, nq, nk, d = 2, 3, 37, 29, 8
    q = torch.randn(b, h, nq, d, generator=g) * 2
    k = torch.randn(b, h, nk, d, generator=g) * 2
    k[:, :, 5] *= 4  # a key that soaks up mass, so ranks are well separated
    rows = torch.arange(nq) if subset == "all" else torch.tensor([0, 3, 4, 10, 36])
    got = attention_stats(q, k, scale=0.3, query_rows=rows, request=ALL, chunk_bytes=chunk_bytes)
    ref = brute(q, k, 0.3, rows)
    for name in ("mass_per_key", "max_mass", "topk_mass", "entropy", "mass_topk", "query_topk"):
        torch.testing.assert_close(got[name].double(), ref[name], rtol=1e-5, atol=1e-6, msg=name)
    assert torch.equal(got["argmax_key"].long(), ref["argmax_key"])
    assert torch.equal(got["topk_keys"].long(), ref["topk_keys"])
    torch.testing.assert_close(got["mass_per_key"].sum(-1), torch.ones(b, h), rtol=1e-5, atol=1e-5)


def test_masked_keys_get_no_mass_and_entropy_stays_finite():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 2, 11, 4, generator=g), torch.randn(1, 2, 9, 4, generator=g)
    mask = torch.ones(1, 1, 1, 9, dtype=torch.bool)
    mask[..., 6:] = False  # padding keys
    bias = mask_to_bias(mask)
    got = attention_stats(q, k, scale=0.5, query_rows=torch.arange(11), request=ALL, bias=bias)
    ref = brute(q, k, 0.5, torch.arange(11), bias=bias)
    assert torch.all(got["mass_per_key"][..., 6:] == 0)
    assert torch.isfinite(got["entropy"]).all()
    torch.testing.assert_close(got["entropy"].double(), ref["entropy"], rtol=1e-5, atol=1e-6)


def test_more_ranks_than_keys_pads_instead_of_inventing_keys():
    q, k = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 4)
    got = attention_stats(q, k, scale=1.0, query_rows=torch.arange(4), request=StatRequest(mass=True, top=5))
    assert got["topk_keys"][0, 0, 3:].tolist() == [-1, -1]
    assert torch.isnan(got["topk_mass"][0, 0, 3:]).all()


def test_activation_norms_match_numpy():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 20, 5, generator=g)
    streams = {"image": torch.arange(0, 12), "text": torch.arange(12, 20)}
    mx, p95 = activation_norms(x, streams, ("2", "inf"))
    xn = x.numpy()
    for si, rows in enumerate(streams.values()):
        sel = xn[:, :, rows.numpy()]
        for oi, norm in enumerate([np.linalg.norm(sel, axis=-1), np.abs(sel).max(axis=-1)]):
            np.testing.assert_allclose(mx[..., si, oi].numpy(), norm.max(-1), rtol=1e-6)
            np.testing.assert_allclose(p95[..., si, oi].numpy(), np.percentile(norm, 95, axis=-1), rtol=1e-5)


def test_empty_stream_gives_nan():
    mx, p95 = activation_norms(torch.randn(1, 6, 4), {"image": torch.arange(6), "text": torch.arange(0)}, ("2",))
    assert torch.isnan(mx[..., 1, 0]).all() and torch.isfinite(mx[..., 0, 0]).all()
