"""SANA's ReLU linear attention: the exact kernels (``interp.kernels.linear``) against the brute-force
attention matrix in float64, and the output formula against the real diffusers processor."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.adapters.sana import SanaAdapter, linear_qk
from interp.kernels.linear import (
    EPS,
    linear_attention_map,
    linear_attention_output,
    linear_attention_stats,
    linear_mass,
)
from interp.kernels.reference import StatRequest

ALL = StatRequest({"mass", "mass_full", "entropy", "mass_topk", "query_topk"}, top=4, k=3)


def features(b=2, h=3, nq=40, nk=33, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.relu(torch.randn(b, h, nq, d, generator=g))
    k = torch.relu(torch.randn(b, h, nk, d, generator=g))
    q[0, 0, 5] = 0.0  # a query whose features are all zero: its row of A is 0 (den = 0, the eps guard)
    return q, k


def brute(q, k, keep=None):
    """A (float64) materialised: removed keys deleted from the sum, i.e. their columns zeroed."""
    s = q.double() @ k.double().transpose(-1, -2)
    if keep is not None:
        s = s * keep[..., None, :].double()
    return s / (s.sum(-1, keepdim=True) + EPS)


@pytest.mark.parametrize("masked", [False, True])
def test_statistics_equal_the_materialised_matrix(masked):
    q, k = features()
    keep = None
    if masked:
        keep = torch.ones(2, 3, k.shape[2], dtype=torch.bool)
        keep[:, :, [0, 7, 8]] = False
        keep[1, 2, 20] = False
    rows = torch.tensor([0, 3, 5, 9, 10, 11, 30, 39])
    a = brute(q, k, keep)[:, :, rows]
    got = linear_attention_stats(q, k, query_rows=rows, request=ALL, keep=keep, chunk_bytes=2 * 3 * 33 * 4 * 3)
    m = a.mean(2)
    torch.testing.assert_close(got["mass_per_key"].double(), m, rtol=1e-5, atol=1e-8)
    top = m.sort(-1, descending=True).values
    torch.testing.assert_close(got["topk_mass"].double(), top[..., :4], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(got["mass_topk"].double(), top[..., :3].sum(-1), rtol=1e-5, atol=1e-8)
    ent = (-torch.special.xlogy(a, a).sum(-1)).mean(-1)
    torch.testing.assert_close(got["entropy"].double(), ent, rtol=1e-5, atol=1e-7)
    qtk = a.sort(-1, descending=True).values[..., :3].sum(-1).mean(-1)
    torch.testing.assert_close(got["query_topk"].double(), qtk, rtol=1e-5, atol=1e-7)
    if masked:  # a removed key gets no mass, and the others' rows still sum to 1 (the zero row to 0)
        assert (got["mass_per_key"][:, :, [0, 7, 8]] == 0).all() and got["mass_per_key"][1, 2, 20] == 0
    sums = brute(q, k, keep).sum(-1)
    assert torch.allclose(sums[0, 0, 5], torch.zeros((), dtype=torch.float64))
    assert torch.allclose(sums[1], torch.ones_like(sums[1]))


def test_mass_does_not_depend_on_the_chunking_and_the_map_is_the_matrix():
    q, k = features(nq=64, nk=50)
    rows = torch.arange(64)
    small = linear_attention_stats(q, k, query_rows=rows, request=ALL, chunk_bytes=1)
    big = linear_attention_stats(q, k, query_rows=rows, request=ALL)
    for name in small:
        torch.testing.assert_close(small[name], big[name], rtol=1e-6, atol=1e-7)
    heads, cols = torch.tensor([2, 0]), torch.tensor([1, 4, 49])
    got = linear_attention_map(q, k, query_rows=rows[::3], key_cols=cols, heads=heads)
    want = brute(q, k)[:, heads][:, :, ::3][..., cols]
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(linear_mass(q, k, query_rows=rows).double(), brute(q, k).mean(2), rtol=1e-5, atol=1e-8)


def test_removing_a_key_removes_it_from_numerator_and_denominator():
    q, k = features()
    v = torch.randn(2, 3, k.shape[2], 5, generator=torch.Generator().manual_seed(1))
    keep = torch.ones(1, 1, k.shape[2], dtype=torch.bool)
    keep[..., [2, 3]] = False
    got = linear_attention_output(q, k, v, keep=keep)
    want = brute(q, k, keep) @ v.double()
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)
    drop = [j for j in range(k.shape[2]) if j not in (2, 3)]  # the same as running without those keys
    torch.testing.assert_close(got, linear_attention_output(q, k[:, :, drop], v[:, :, drop]), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def sana_inputs():
    """The tiny SANA's first linear self-attention and the hidden states it sees in a real call."""
    pipe = interp.pipelines.tiny("sana")
    path = SanaAdapter.linear_sites(pipe)[0]
    attn = pipe.transformer.get_submodule(path)
    seen = []
    handle = attn.register_forward_hook(lambda m, args, kwargs, out: seen.append((args, kwargs, out)), with_kwargs=True)
    try:
        kw = interp.pipelines.tiny_call_kwargs("sana") | {"num_inference_steps": 1}
        pipe("a photo of a red bench", generator=torch.Generator().manual_seed(0), output_type="pt", **kw)
    finally:
        handle.remove()
    return attn, seen[0]


def test_the_output_formula_is_the_processor_bit_for_bit(sana_inputs):
    attn, (args, kwargs, out) = sana_inputs
    x = args[0] if args else kwargs["hidden_states"]
    assert type(attn.processor).__name__ == "SanaLinearAttnProcessor2_0"
    q, k = linear_qk(attn, x)
    v = attn.to_v(x).unflatten(-1, (attn.heads, -1)).transpose(1, 2)
    o = linear_attention_output(q, k, v).transpose(1, 2).flatten(2).to(x.dtype)
    mine = attn.to_out[1](attn.to_out[0](o))
    assert torch.equal(mine, out)
    keep = torch.ones(1, 1, k.shape[2], dtype=torch.bool)
    keep[..., 0] = False
    assert not torch.equal(linear_attention_output(q, k, v, keep=keep), linear_attention_output(q, k, v))
