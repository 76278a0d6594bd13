"""ImageReward port: parity with the image-reward 1.5 package (committed fixtures made in an isolated
venv by tests/fixtures/metrics/make_metric_fixtures.py on the same fabricated state dict), strict key map."""

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
from interp.metrics.image_reward import (  # noqa: E402
    ImageRewardModel,
    port_to_original_key,
    text_config_from_med,
    vit_config_from_state_dict,
)

mf = helpers.mf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ir") / "w"
    helpers.write_imagereward(root, FIXTURES / "imagereward_tiny.json")
    return MetricSettings(weights_dir=root, device="cpu", batch_size=2)


def test_scores_match_image_reward_package(tiny):
    ref = np.load(FIXTURES / "imagereward_tiny.npz")
    metric = load_metric("image_reward", tiny)
    images = mf.load_images()
    out = metric.score(images, mf.PROMPTS)["image_reward"]
    assert np.abs(out - ref["scores"]).max() < 1e-5
    assert np.ptp(out) > 1e-2
    info = metric.version_info()
    assert json.loads(json.dumps(info)) == info
    assert info["weights"]["imagereward_checkpoint"]["name"] == "ImageReward.pt"
    # inference_rank(prompt, images): one prompt against every image
    same_prompt = metric.score(images, [mf.PROMPTS[0]] * len(images))["image_reward"]
    assert np.abs(same_prompt - ref["rank_scores_prompt0"]).max() < 1e-5


def test_tokenization_is_the_packages(tiny):
    ref = np.load(FIXTURES / "imagereward_tiny.npz")
    tokens = load_metric("image_reward", tiny).tokenize(mf.PROMPTS)
    assert np.array_equal(tokens["input_ids"].numpy(), ref["input_ids"])
    assert np.array_equal(tokens["attention_mask"].numpy(), ref["attention_mask"])
    assert (ref["input_ids"][:, 0] == 101).all()  # [CLS] kept as first token
    assert ref["input_ids"].shape[1] == 35


def _layout(meta: dict) -> dict[str, list[int]]:
    """Released-checkpoint key -> shape, as the port expects it (reverse key map + unused BLIP keys)."""
    shapes = {k: torch.empty(v, device="meta") for k, v in meta["state_dict_shapes"].items()}
    vision = vit_config_from_state_dict(shapes)
    text = text_config_from_med(meta["med_config"], vision.hidden_size)
    with torch.device("meta"):
        model = ImageRewardModel(vision, text)
    out = {port_to_original_key(k): list(v.shape) for k, v in model.state_dict().items()}
    out["blip.text_encoder.embeddings.position_ids"] = [1, text.max_position_embeddings]
    for name, width in (("vision_proj", vision.hidden_size), ("text_proj", text.hidden_size)):
        out[f"blip.{name}.weight"] = [256, width]
        out[f"blip.{name}.bias"] = [256]
    return out


@pytest.mark.parametrize("size", ["tiny", "full"])
def test_key_map_reproduces_the_released_layout(size):
    """Full size: BLIP ViT-L/16 + BERT-base MED + MLP, every key and shape of the original model."""
    meta = json.loads((FIXTURES / f"imagereward_{size}.json").read_text())
    assert _layout(meta) == meta["state_dict_shapes"]


def test_strict_keys(tmp_path):
    meta = json.loads((FIXTURES / "imagereward_tiny.json").read_text())
    for mutate, match in (
        (lambda sd: sd.pop("mlp.layers.7.bias"), "missing"),
        (lambda sd: sd.__setitem__("blip.extra.weight", torch.zeros(1)), "unexpected"),
    ):
        path = helpers.write_imagereward(tmp_path, FIXTURES / "imagereward_tiny.json")
        sd = torch.load(path, weights_only=True)
        mutate(sd)
        torch.save(sd, path)
        with pytest.raises(CorruptWeightsError, match=match):
            load_metric("image_reward", MetricSettings(weights_dir=tmp_path, device="cpu"))
    assert meta["seed"] == mf.SEED


@pytest.mark.slow
def test_full_size_matches_image_reward_package(tmp_path):
    ref = np.load(FIXTURES / "imagereward_full.npz")
    helpers.write_imagereward(tmp_path, FIXTURES / "imagereward_full.json")
    metric = load_metric("image_reward", MetricSettings(weights_dir=tmp_path, device="cpu", batch_size=5))
    out = metric.score(mf.load_images(), mf.PROMPTS)["image_reward"]
    assert np.abs(out - ref["scores"]).max() < 1e-4
