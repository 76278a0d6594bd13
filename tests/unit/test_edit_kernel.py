"""The edit kernel and key selection against brute force.

Values are one-hot (v = I), so the attention output *is* the probability matrix and every probability
can be checked exactly.
"""

import math

import numpy as np
import pytest
import torch

from interp.adapters.base import TokenLayout, image_layout, text_layout
from interp.edits.runtime import _member, _replace_values
from interp.edits.select import check_budget, choose_keys, token_class
from interp.edits.spec import Edit, Operation, Scope, Selector
from interp.kernels.edit import edited_attention
from interp.plan import PlanError

TOL = {torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def setup(dtype, b=2, h=3, n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, n, generator=g).to(dtype)
    k = torch.randn(b, h, n, n, generator=g).to(dtype)
    v = torch.eye(n).expand(b, h, n, n).to(dtype).contiguous()
    return q, k, v


def probs(q, k, bias=None):
    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias.double()
    return torch.softmax(s, -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_eta_zero_removes_keys_exactly_and_keeps_relative_weights(dtype):
    q, k, v = setup(dtype)
    n = q.shape[-1]
    edited = torch.tensor([[[3, 7], [0, 5], [3, 7]], [[1, 2], [9, 11], [4, 4]]])
    member = _member(edited, n)
    key_bias = torch.zeros(2, 3, n).masked_fill(member, float("-inf"))
    rows = torch.tensor([0, 1, 2, 10, 20])
    pairs = torch.tensor([[True, True, False], [False, True, True]])
    original = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    out = edited_attention(
        q,
        k,
        v,
        scale=1 / math.sqrt(n),
        key_bias=key_bias,
        values=None,
        rows=rows,
        pairs=pairs,
        attn_mask=None,
        original=original,
    )
    assert torch.isfinite(out).all()
    ref = probs(q, k)
    for bi in range(2):
        for hi in range(3):
            for r in range(n):
                row = out[bi, hi, r].double()
                if pairs[bi, hi] and r in rows.tolist():
                    e = member[bi, hi]
                    assert (row[e] == 0).all(), "an edited key kept probability"
                    kept = ref[bi, hi, r].clone()
                    kept[e] = 0
                    torch.testing.assert_close(row, kept / kept.sum(), rtol=0, atol=TOL[dtype])
                else:  # out of scope: bit-identical to the unedited call
                    assert torch.equal(out[bi, hi, r], original[bi, hi, r])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("eta", [0.5, 0.1])
def test_partial_eta_matches_closed_form(dtype, eta):
    q, k, v = setup(dtype, seed=1)
    n = q.shape[-1]
    member = _member(torch.tensor([[[2, 6]] * 3] * 2), n)
    bias = torch.zeros(2, 3, n).masked_fill(member, math.log(eta))
    out = edited_attention(
        q,
        k,
        v,
        scale=1 / math.sqrt(n),
        key_bias=bias,
        values=None,
        rows=None,
        pairs=None,
        attn_mask=None,
        original=torch.empty(0),
    ).double()
    p = probs(q, k)
    big_p = p[..., [2, 6]].sum(-1, keepdim=True)
    expect_edited = eta * p[..., [2, 6]] / (1 - (1 - eta) * big_p)
    expect_other = p / (1 - (1 - eta) * big_p)
    # bf16 rounds log(eta) itself: tolerance covers that rounding (|d log eta| <= 2^-8 relative)
    tol = TOL[dtype] if dtype != torch.bfloat16 else 3e-2
    torch.testing.assert_close(out[..., [2, 6]], expect_edited, rtol=0, atol=tol)
    others = [j for j in range(n) if j not in (2, 6)]
    torch.testing.assert_close(out[..., others], expect_other[..., others], rtol=0, atol=tol)


@pytest.mark.parametrize("mode, alpha", [("zero", 0.0), ("mean", 0.0), ("lerp", 0.5), ("lerp", 0.0)])
def test_value_path_matches_brute_force(mode, alpha):
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 2, 10, 4, generator=g) for _ in range(3))
    member = _member(torch.tensor([[[1, 4], [0, 9]], [[3, 3], [2, 5]]]), 10)
    e = Edit(Selector(), Operation("value", mode=mode, alpha=alpha), Scope())
    new_v = _replace_values(v, member, e, None)
    out = edited_attention(
        q, k, v, scale=0.5, key_bias=None, values=new_v, rows=None, pairs=None, attn_mask=None, original=torch.empty(0)
    )
    expected_v = v.clone()
    for b in range(2):
        for h in range(2):
            keep = ~member[b, h]
            mean = v[b, h, keep].mean(0)
            for j in torch.nonzero(member[b, h]).flatten():
                expected_v[b, h, j] = {"zero": 0 * mean, "mean": mean, "lerp": alpha * v[b, h, j] + (1 - alpha) * mean}[
                    mode
                ]
    ref = torch.softmax((q @ k.transpose(-1, -2)) * 0.5, -1) @ expected_v
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    if mode == "lerp" and alpha == 0.0:  # lerp with alpha = 0 equals mean
        mean_v = _replace_values(v, member, Edit(Selector(), Operation("value", mode="mean"), Scope()), None)
        assert torch.equal(new_v, mean_v)


def layout_sd3_like(n_img=16, words=("a", "photo", "of", "a", "cat")):
    img = image_layout(4, n_img // 4)
    ids = [100] + list(range(1, len(words) + 1)) + [101] * (12 - len(words) - 1)
    toks = ["<bos>", *words] + ["<eos>"] * (12 - len(words) - 1)
    clip = text_layout(ids, toks, "CLIP-L/G", bos_id=100, eos_id=101, pad_id=101)
    return TokenLayout.concat([img, clip])


def test_controls_are_seeded_matched_and_avoid_the_sinks():
    lay = layout_sd3_like()
    n = len(lay)
    g = torch.Generator().manual_seed(3)
    mass = torch.softmax(torch.randn(2, 4, n, generator=g), -1)
    top = choose_keys(Selector("topk", k=3), mass, [lay, lay], n_heads=4, seed_parts=(0, 1, 0, 0, 0))
    for match in (None, "modality", "token_class", "mass"):
        sel = Selector("random", k=3, match=match, seed=7)
        a = choose_keys(sel, mass, [lay, lay], n_heads=4, seed_parts=(0, 1, 0, 0, 0))
        b = choose_keys(sel, mass, [lay, lay], n_heads=4, seed_parts=(0, 1, 0, 0, 0))
        c = choose_keys(sel, mass, [lay, lay], n_heads=4, seed_parts=(0, 2, 0, 0, 0))  # another step
        d = choose_keys(sel, mass, [lay, lay], n_heads=4, seed_parts=(5, 1, 0, 0, 0))  # another sample
        assert torch.equal(a, b)
        assert not torch.equal(a, c) and not torch.equal(a, d)
        cls = token_class(lay)
        for bi in range(2):
            for hi in range(4):
                picked = a[bi, hi][a[bi, hi] >= 0].numpy()
                sinks = top[bi, hi].numpy()
                assert not set(picked) & set(sinks)
                if match == "modality":
                    assert sorted(lay.modality[picked]) == sorted(lay.modality[sinks])
                if match == "token_class":
                    assert sorted(cls[picked]) == sorted(cls[sinks])
                if match == "mass":
                    m = mass[bi, hi].numpy()
                    pool = np.setdiff1d(np.arange(n), sinks)
                    assert abs(m[picked].sum() - m[sinks].sum()) <= m[pool].max() + 1e-7
                if match is None:
                    assert len(picked) == 3


def test_union_selection_shares_keys_by_head_averaged_mass():
    lay = layout_sd3_like()
    mass = torch.softmax(torch.randn(1, 4, len(lay)), -1)
    keys = choose_keys(Selector("topk", k=2, select="union"), mass, [lay], n_heads=4, seed_parts=(0,))
    assert (keys == keys[:, :1]).all()
    assert set(keys[0, 0].tolist()) == set(mass[0].mean(0).topk(2).indices.tolist())


def test_fixed_keys_by_identity():
    lay = layout_sd3_like()
    sel = Selector("keys", keys=("clip_bos", "clip_eos", "image:1,2"), k=3)
    keys = choose_keys(sel, None, [lay], n_heads=2, seed_parts=(0,))
    bos = 16  # first text position
    eos = 16 + 6
    assert sorted(keys[0, 0].tolist()) == sorted([bos, eos, 1 * 4 + 2])
    pads = choose_keys(Selector("keys", keys=("clip_pad",), k=1), None, [lay], n_heads=1, seed_parts=(0,))
    assert pads[0, 0].tolist() == list(range(eos + 1, len(lay)))


def test_budget_checks():
    lay = layout_sd3_like()
    with pytest.raises(PlanError, match="exceeds the 12 text keys"):
        check_budget(Selector("topk", k=13, modality="text"), lay, "x")
    with pytest.raises(PlanError, match="exceeds"):
        check_budget(Selector("topk", k=29), lay, "x")
    with pytest.raises(PlanError, match="every key"):
        check_budget(Selector("topk", k=28), lay, "x")
    check_budget(Selector("topk", k=27), lay, "x")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eta=1.5), "eta must be in"),
        (dict(eta=-0.1), "eta must be in"),
        (dict(mode="median"), "unknown value mode"),
    ],
)
def test_operation_validation(kwargs, match):
    with pytest.raises(PlanError, match=match):
        Operation(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=(3, 1)), "inverted"),
        (dict(phase=(0.8, 0.2)), "inverted"),
        (dict(steps=(1,)), "start, end"),
        (dict(branch="neg"), "branch"),
        (dict(heads=()), "heads"),
    ],
)
def test_scope_validation(kwargs, match):
    with pytest.raises(PlanError, match=match):
        Scope(**kwargs)
