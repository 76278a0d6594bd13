"""LPIPS adapter: AlexNet trunk from a local torchvision checkpoint, lpips' calibrated heads; checked
against LPIPS written out by hand from torchvision's AlexNet and the heads file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "metrics"))

import metric_helpers as helpers  # noqa: E402

from interp.metrics import MetricSettings, load_metric  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lpips")
    path = helpers.write_alexnet(root, seed=11)
    settings = MetricSettings(weights_dir=root, device="cpu", lpips_size=64, verify_hashes=False, batch_size=3)
    return settings, path


def _images(n, size=(96, 80), seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def _by_hand(path, a: Image.Image, b: Image.Image, size: int) -> float:
    """LPIPS v0.1 from its definition: torchvision AlexNet relu1..relu5, unit-normalise channels,
    squared difference, calibrated 1x1 weights, spatial mean, sum over layers."""
    import importlib.resources

    import torchvision

    alex = torchvision.models.alexnet(weights=None)
    alex.load_state_dict(torch.load(path, weights_only=True))
    heads_file = importlib.resources.files("lpips").joinpath("weights/v0.1/alex.pth")
    heads = torch.load(heads_file, map_location="cpu", weights_only=True)
    shift = torch.tensor([-0.030, -0.088, -0.188])[:, None, None]
    scale = torch.tensor([0.458, 0.448, 0.450])[:, None, None]

    def feats(im):
        x = torch.from_numpy(np.asarray(im.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32))
        x = (x.permute(2, 0, 1) / 255.0 * 2 - 1 - shift) / scale
        out = []
        for i, layer in enumerate(alex.features[:12]):
            x = layer(x)
            if i in (1, 4, 7, 9, 11):
                out.append(x)
        return out

    total = 0.0
    for k, (fa, fb) in enumerate(zip(feats(a), feats(b), strict=True)):
        na = fa / (fa.pow(2).sum(0, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.pow(2).sum(0, keepdim=True).sqrt() + 1e-10)
        w = heads[f"lin{k}.model.1.weight"].flatten()
        total += float(((na - nb) ** 2 * w[:, None, None]).sum(0).mean())
    return total


def test_identity_is_zero_and_matches_definition(setup):
    settings, path = setup
    metric = load_metric("lpips", settings)
    a, b = _images(4, seed=1), _images(4, seed=2)
    same = metric.score_pairs(a, a)["lpips"]
    assert same.shape == (4,)
    assert np.abs(same).max() < 1e-7
    diff = metric.score_pairs(a, b)["lpips"]
    assert (diff > 1e-3).all()
    np.testing.assert_allclose(metric.score_pairs(b, a)["lpips"], diff, rtol=1e-5)
    by_hand = [_by_hand(path, x, y, settings.lpips_size) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(diff, by_hand, rtol=1e-4)


def test_sizes(setup):
    settings, _ = setup
    a, b = _images(2, (64, 64)), _images(2, (80, 64), seed=3)
    native = load_metric("lpips", settings.replace(lpips_size=None))
    with pytest.raises(ValueError, match="lpips_size"):
        native.score_pairs(a, b)
    assert native.score_pairs(a, _images(2, (64, 64), seed=4))["lpips"].shape == (2,)
    resized = load_metric("lpips", settings)
    assert resized.score_pairs(a, b)["lpips"].shape == (2,)
    with pytest.raises(ValueError, match="pairs must match"):
        resized.score_pairs(a, b[:1])
    info = resized.version_info()
    assert info["settings"] == {"lpips_net": "alex", "lpips_size": 64}
    assert len(info["weights"]["lpips_linear_heads"]["sha256"]) == 64
    assert json.loads(json.dumps(info)) == info
    assert info["kind"] == "pair"
