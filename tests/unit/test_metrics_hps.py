"""HPS-v2 adapter: parity with the hpsv2 1.2.0 package (committed fixtures made in an isolated venv by
tests/fixtures/metrics/make_metric_fixtures.py on the same fabricated weights)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"
sys.path.insert(0, str(FIXTURES))

import metric_helpers as helpers  # noqa: E402

from interp.metrics import CorruptWeightsError, MetricSettings, load_metric  # noqa: E402
from interp.metrics.hps import HPSPreprocess  # noqa: E402

mf = helpers.mf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hps")
    helpers.register_tiny_open_clip(root / "configs")
    helpers.write_hps_checkpoint(root / "w", mf.TINY_CLIP_NAME)
    return MetricSettings(weights_dir=root / "w", hps_model=mf.TINY_CLIP_NAME, device="cpu", batch_size=3)


@pytest.mark.parametrize(("antialias", "key"), [(True, "scores_antialias"), (False, "scores_no_antialias")])
def test_scores_match_hpsv2_package(tiny, antialias, key):
    reference = np.load(FIXTURES / "hps_tiny.npz")[key]
    metric = load_metric("hps", tiny.replace(hps_antialias=antialias))
    out = metric.score(mf.load_images(), mf.PROMPTS)["hps_v2_1"]
    assert np.abs(out - reference).max() < 1e-6
    assert np.ptp(out) > 1e-2


def test_preprocessing_is_hps_own_exactly():
    ref = np.load(FIXTURES / "hps_tiny.npz")
    images = dict(zip(mf.IMAGE_FILES, mf.load_images(), strict=True))
    for name in ("wide300x180.png", "sq512.png"):
        ours = HPSPreprocess(224, antialias=True)(images[name]).numpy()
        assert ours.shape == (3, 224, 224)
        assert np.array_equal(ours, ref[f"pre_{name}"])
    ours = HPSPreprocess(224, antialias=False)(images["wide300x180.png"]).numpy()
    assert np.array_equal(ours, ref["pre_noaa_wide300x180.png"])


def test_open_clip_default_preprocessing_would_differ(tiny):
    """The reason the transform is written out: open_clip's own eval transform gives other pixels."""
    import open_clip

    ref = np.load(FIXTURES / "hps_tiny.npz")
    image = mf.load_images()[mf.IMAGE_FILES.index("wide300x180.png")]
    _, _, default = open_clip.create_model_and_transforms(mf.TINY_CLIP_NAME, image_resize_mode="longest")
    assert np.abs(default(image).numpy() - ref["pre_wide300x180.png"]).max() > 0.1


def test_full_size_layout_matches_the_package_fork():
    """Upstream open_clip's ViT-H-14 has exactly the keys and shapes of hpsv2's fork (strict load)."""
    fork = json.loads((FIXTURES / "hps_keys_vit_h_14.json").read_text())
    upstream = {k: list(v.shape) for k, v in helpers.open_clip_layout("ViT-H-14").items()}
    assert upstream == fork


def test_version_info_records_version_and_preprocessing(tiny):
    info = load_metric("hps", tiny).version_info()
    assert info["settings"] == {"hps_version": "v2.1", "hps_model": mf.TINY_CLIP_NAME, "hps_antialias": True}
    assert info["weights"]["hps_checkpoint"]["name"] == "HPS_v2.1_compressed.pt"
    assert list(info["outputs"]) == ["hps_v2_1"]
    assert json.loads(json.dumps(info)) == info


@pytest.mark.slow
def test_full_size_vit_h_14_matches_hpsv2_package(tmp_path):
    reference = np.load(FIXTURES / "hps_full.npz")
    helpers.write_hps_checkpoint(tmp_path, "ViT-H-14")
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    metric = load_metric("hps", MetricSettings(weights_dir=tmp_path, device="cpu", batch_size=5))
    out = metric.score(mf.load_images(), mf.PROMPTS)["hps_v2_1"]
    assert np.abs(out - reference["scores_antialias"]).max() < 1e-5


def test_wrong_architecture_checkpoint_is_named(tiny, tmp_path):
    """A checkpoint of another architecture fails with the file and settings key named."""
    helpers.write_hps_checkpoint(tmp_path, helpers.TINY_CLIP_T_NAME)
    with pytest.raises(CorruptWeightsError, match="hps_checkpoint"):
        load_metric("hps", tiny.replace(weights_dir=tmp_path))
