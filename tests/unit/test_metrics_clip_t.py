"""CLIP-T adapter: fabricated open_clip checkpoints loaded through open_clip's own loader, compared with
embeddings computed directly with open_clip on the same weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "metrics"))

import metric_helpers as helpers  # noqa: E402

from interp.metrics import MetricSettings, load_metric  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_t")
    helpers.register_tiny_open_clip(root / "configs")
    path = helpers.write_clip_checkpoint(root / "w", helpers.TINY_CLIP_T_NAME, tag="", seed=7)
    settings = MetricSettings(
        weights_dir=root / "w", clip_model=helpers.TINY_CLIP_T_NAME, clip_pretrained="", device="cpu", batch_size=2
    )
    return settings, path


def _direct_embeddings(path, images, prompts):
    """Brute force: open_clip's model and preprocessing used by hand on the same file."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(helpers.TINY_CLIP_T_NAME, pretrained=str(path))
    model.eval()
    tokenizer = open_clip.get_tokenizer(helpers.TINY_CLIP_T_NAME)
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(im) for im in images]))
        txt = model.encode_text(tokenizer(prompts))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return img.numpy().astype(np.float64), txt.numpy().astype(np.float64)


def test_scores_match_open_clip_embeddings_and_conventions(tiny):
    settings, path = tiny
    images = helpers.mf.load_images()
    prompts = helpers.mf.PROMPTS
    metric = load_metric("clip_t", settings)
    out = metric.score(images, prompts)
    img, txt = _direct_embeddings(path, images, prompts)
    cos = (img * txt).sum(-1)
    np.testing.assert_allclose(out["clip_t"], cos, atol=1e-6)
    np.testing.assert_allclose(out["clipscore"], 2.5 * np.maximum(cos, 0), atol=1e-6)
    np.testing.assert_allclose(out["clip_t_x100"], 100 * np.maximum(cos, 0), atol=1e-4)
    assert np.ptp(out["clip_t"]) > 1e-3  # features are not collapsed by the random init
    info = metric.version_info()
    assert set(info["outputs"]) == {"clip_t", "clipscore", "clip_t_x100"}
    assert info["settings"]["clip_model"] == helpers.TINY_CLIP_T_NAME
    assert info["weights"]["clip_checkpoint"]["name"] == "open_clip_model.safetensors"
    assert info["packages"]["open_clip_torch"] != "missing"
    assert json.loads(json.dumps(info)) == info  # store attributes are JSON
    assert info["kind"] == "image_text"


def test_orders_two_captions_as_the_embeddings_do(tiny):
    settings, path = tiny
    image = helpers.mf.load_images()[0]
    captions = ["a photo of a red apple on a wooden table", "two dogs playing in the snow"]
    metric = load_metric("clip_t", settings)
    out = metric.score([image, image], captions)["clip_t"]
    img, txt = _direct_embeddings(path, [image], captions)
    expected = txt @ img[0]
    assert out[0] != out[1]
    assert np.argsort(out).tolist() == np.argsort(expected).tolist()
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_bad_inputs(tiny):
    settings, _ = tiny
    metric = load_metric("clip_t", settings)
    images = helpers.mf.load_images()[:2]
    with pytest.raises(ValueError, match="one prompt per image"):
        metric.score(images, ["only one"])
    with pytest.raises(TypeError, match="sequence of strings"):
        metric.score(images[:1], "a string")
    with pytest.raises(TypeError, match="PIL"):
        metric.score([np.zeros((4, 4, 3))], ["x"])


def test_unknown_tag_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no pretrained tag"):
        load_metric("clip_t", MetricSettings(weights_dir=tmp_path, clip_model="ViT-B-32", clip_pretrained="nope"))


@pytest.mark.slow
def test_builtin_architecture_with_tag_settings(tmp_path):
    """ViT-B-32 'openai' (QuickGELU, from the tag's config) at full size, from the default file layout."""
    import open_clip

    path = helpers.write_clip_checkpoint(tmp_path, "ViT-B-32", "openai", seed=3, quick_gelu=True)
    metric = load_metric(
        "clip_t", MetricSettings(weights_dir=tmp_path, clip_model="ViT-B-32", clip_pretrained="openai", device="cpu")
    )
    assert metric.quick_gelu
    assert path == tmp_path / "open_clip" / "ViT-B-32-openai" / "open_clip_model.safetensors"
    images, prompts = helpers.mf.load_images()[:2], helpers.mf.PROMPTS[:2]
    out = metric.score(images, prompts)["clip_t"]
    model, _, pre = open_clip.create_model_and_transforms("ViT-B-32", pretrained=str(path), force_quick_gelu=True)
    tok = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        img = model.eval().encode_image(torch.stack([pre(im) for im in images]), normalize=True)
        txt = model.encode_text(tok(prompts), normalize=True)
    np.testing.assert_allclose(out, (img * txt).sum(-1).numpy(), atol=1e-5)
