"""``kernels.norms``: activation norms of every stream in one sort, bit-identical to the reference."""

import numpy as np
import pytest
import torch

from interp.kernels import norms, reference


def _streams(n, spec, g):
    if spec == "image+text":
        return {"image": torch.arange(0, n - 7), "text": torch.arange(n - 7, n)}
    if spec == "empty text":
        return {"image": torch.arange(n), "text": torch.arange(0)}
    if spec == "single row":
        return {"image": torch.tensor([3]), "text": torch.arange(4, n)}
    return {  # three interleaved streams, unsorted rows
        "a": torch.randperm(n, generator=g)[: n // 3],
        "b": torch.arange(1, n, 3),
        "c": torch.tensor([n - 1, 0]),
    }


@pytest.mark.parametrize("spec", ["image+text", "empty text", "single row", "scattered"])
@pytest.mark.parametrize("shape", [(2, 3, 40, 8), (2, 40, 12)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_norms_equal_the_reference_bit_for_bit(spec, shape, dtype):
    g = torch.Generator().manual_seed(len(spec) + len(shape))
    x = (torch.randn(*shape, generator=g) * torch.rand(shape[-2], 1, generator=g) * 5).to(dtype)
    streams = _streams(shape[-2], spec, g)
    index = norms.NormIndex.build(streams, shape[-2], x.device)
    for ords in (("2", "inf"), ("inf",)):
        want = reference.activation_norms(x, streams, ords)
        got = norms.activation_norms(x, index, ords)
        for w, o in zip(want, got, strict=True):
            assert o.shape == w.shape
            torch.testing.assert_close(o, w, rtol=0, atol=0, equal_nan=True)


def test_nan_norms_and_the_percentile_against_numpy():
    x = torch.randn(1, 30, 4, generator=torch.Generator().manual_seed(0))
    x[0, 5] = float("nan")
    streams = {"image": torch.arange(20), "text": torch.arange(20, 30)}
    index = norms.NormIndex.build(streams, 30, x.device)
    mx, p95 = norms.activation_norms(x, index, ("2",))
    want = reference.activation_norms(x, streams, ("2",))
    torch.testing.assert_close(mx, want[0], rtol=0, atol=0, equal_nan=True)
    assert torch.isnan(mx[0, 0, 0]) and not torch.isnan(mx[0, 1, 0])  # NaN sorts last, as in the reference
    text = torch.linalg.vector_norm(x[0, 20:], dim=-1).numpy()
    np.testing.assert_allclose(p95[0, 1, 0].item(), np.percentile(text, 95), rtol=1e-6)


def test_an_index_refuses_another_token_count():
    index = norms.NormIndex.build({"image": torch.arange(5)}, 5, torch.device("cpu"))
    with pytest.raises(ValueError, match="built for 5 tokens"):
        norms.activation_norms(torch.randn(1, 6, 3), index, ("2",))
