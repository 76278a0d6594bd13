"""The exact scorer: right on the dataset's own renders, wrong on deliberately wrong captions, per tag."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from interp.organism import dataset as ds
from interp.organism.grammar import COLORS, SHAPES, TAGS, ObjectSpec, SceneSpec
from interp.organism.render import render, shape_mask
from interp.organism.scorer import Detection, ScorerConfig, detect, evaluate, score

N_PER_TAG = 60
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _examples(tag: str, n: int = N_PER_TAG, seed: int = 0):
    rng = np.random.default_rng([seed, TAGS.index(tag)])
    out = []
    for _ in range(n):
        spec = ds.sample_spec(rng, tag, "all")
        scene = ds.sample_scene(rng, spec)
        out.append((spec, scene, render(scene)))
    return out


def _other(seq, *exclude):
    return next(x for x in seq if x not in exclude)


def _perturb(spec: SceneSpec, scene) -> SceneSpec:
    """A caption the scene does NOT satisfy (one deliberate error of the tag's kind)."""
    o = spec.objects
    drawn_shapes = {p.shape for p in scene}
    if spec.tag == "single_object":
        return SceneSpec("single_object", (ObjectSpec(_other(SHAPES, *drawn_shapes)),))
    if spec.tag == "colors":
        return SceneSpec("colors", (ObjectSpec(o[0].shape, 1, _other(COLORS, o[0].color)),))
    if spec.tag == "counting":
        wrong = o[0].count + 1 if o[0].count < 4 else o[0].count - 1
        return SceneSpec("counting", (ObjectSpec(o[0].shape, wrong),))
    if spec.tag == "two_object":
        return SceneSpec("two_object", (o[0], ObjectSpec(_other(SHAPES, *drawn_shapes))))
    if spec.tag == "position":
        return SceneSpec("position", o, OPPOSITE[spec.relation])
    if spec.tag == "color_attr":  # swap the colours between the two objects
        return SceneSpec("color_attr", (ObjectSpec(o[0].shape, 1, o[1].color), ObjectSpec(o[1].shape, 1, o[0].color)))
    raise AssertionError(spec.tag)


@pytest.mark.parametrize("tag", TAGS)
def test_ground_truth_renders_score_correct(tag):
    ex = _examples(tag)
    res = score([img for _, _, img in ex], [spec.caption for spec, _, _ in ex])
    assert res.correct.all(), [r for r in res.reasons if r][:3]
    assert res.per_tag == {tag: 1.0} and res.overall == 1.0
    assert np.all(res.alignment == 1.0)


@pytest.mark.parametrize("tag", TAGS)
def test_wrong_captions_score_wrong(tag):
    ex = _examples(tag, seed=1)
    wrong = [_perturb(spec, scene) for spec, scene, _ in ex]
    res = score([img for _, _, img in ex], wrong)
    assert not res.correct.any()
    assert np.all(res.alignment < 1.0)
    assert all(res.reasons)


@pytest.mark.parametrize("tag", ["position", "color_attr"])
def test_orthogonal_relations_and_other_colours_are_wrong(tag):
    for spec, _, img in _examples(tag, 20, seed=2):
        if tag == "position":
            axis = {"left of": "above", "right of": "below", "above": "left of", "below": "right of"}
            wrong = SceneSpec("position", spec.objects, axis[spec.relation])
        else:
            a, b = spec.objects
            wrong = SceneSpec("color_attr", (a, ObjectSpec(b.shape, 1, _other(COLORS, a.color, b.color))))
        assert not score(img, wrong).correct[0]


def test_exclusion_counts_are_exact():
    """Counting is correct iff the number of detected objects of the class equals the count."""
    for spec, _, img in _examples("counting", 20, seed=3):
        n_found = sum(d.shape == spec.objects[0].shape for d in detect(img))
        for count in (2, 3, 4):
            asked = SceneSpec("counting", (ObjectSpec(spec.objects[0].shape, count),))
            assert score(img, asked).correct[0] == (n_found == count)


def test_noise_and_formats_do_not_change_the_verdict():
    ex = _examples("color_attr", 20, seed=4)
    rng = np.random.default_rng(0)
    for spec, _, img in ex:
        noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        as_float = img.astype(np.float32) / 255
        as_tensor = torch.from_numpy(as_float).permute(2, 0, 1)
        for variant in (noisy, Image.fromarray(img), as_float, as_tensor, as_float.transpose(2, 0, 1)):
            assert score(variant, spec.caption).correct[0]


def test_templates_fill_their_box_and_classify_themselves():
    for shape in SHAPES:
        for w in range(4, 21):
            for h in (w, max(4, w - 2), w + 3):
                m = shape_mask(shape, w, h)
                rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
                assert (rows[0], rows[-1], cols[0], cols[-1]) == (0, h - 1, 0, w - 1), (shape, w, h)
    for shape in SHAPES:
        for size in range(7, 15):
            img = np.full((32, 32, 3), 128, np.uint8)
            img[5 : 5 + size, 5 : 5 + size][shape_mask(shape, size)] = (220, 30, 30)
            (d,) = detect(img)
            assert d.shape == shape and d.iou == 1.0 and d.box == (5, 5, 5 + size, 5 + size)


def test_small_and_blobby_components_are_not_objects():
    img = np.full((32, 32, 3), 128, np.uint8)
    img[2:4, 2:6] = (220, 30, 30)  # 2 px high: noise
    rng = np.random.default_rng(0)
    blob = rng.random((12, 12)) < 0.5
    blob[0, :] = blob[:, 0] = True  # one connected, ragged component
    img[15:27, 15:27][blob] = (40, 70, 230)
    dets = detect(img)
    assert all(d.color != "red" for d in dets)
    assert all(d.shape is None for d in dets if d.iou < ScorerConfig().min_iou)


def test_evaluate_takes_the_most_confident_detections():
    """GenEval orders detections by confidence and checks colour on the first ``count`` of them."""
    strong = Detection("circle", "red", (2, 2, 10, 10), 52, 0.95)
    weak = Detection("circle", "blue", (20, 20, 28, 28), 50, 0.70)
    meta = SceneSpec("colors", (ObjectSpec("circle", 1, "red"),)).geneval_metadata()
    assert evaluate([weak, strong], meta).correct
    assert not evaluate([dataclasses.replace(weak, iou=0.99), strong], meta).correct


def test_score_validates_inputs():
    img = np.full((32, 32, 3), 128, np.uint8)
    with pytest.raises(ValueError):
        score([img, img], ["a photo of a circle"])
    with pytest.raises(ValueError):
        score(img, "a photo of a cat")
    with pytest.raises(ValueError):
        score(np.zeros((32, 32)), "a photo of a circle")
