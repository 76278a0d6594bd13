"""The organism's caption grammar and procedural dataset: GenEval's phrasing, determinism, the split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from interp.organism import dataset as ds
from interp.organism.grammar import (
    COLORS,
    COUNT_WORDS,
    PLURALS,
    RELATIONS,
    SHAPES,
    TAGS,
    ObjectSpec,
    SceneSpec,
    parse_caption,
)
from interp.organism.render import CANVAS, relative_position, render, shape_mask

GENEVAL = Path(__file__).resolve().parents[2] / "interp" / "data" / "geneval" / "evaluation_metadata.jsonl"
GENEVAL_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")


def _template(prompt: str, classes: list[str]) -> str:
    """A prompt with its object names, colours, numbers and articles replaced by placeholders."""
    out = prompt
    for cls in sorted(set(classes), key=len, reverse=True):
        out = re.sub(rf"\b{re.escape(cls)}(es|s)?\b", "<obj>", out)
    out = re.sub(rf"\b({'|'.join(GENEVAL_COLORS)})\b(?= <obj>)", "<color>", out)
    out = re.sub(r"\b(two|three|four)\b", "<n>", out)
    return re.sub(r"\b(a|an)\b(?= (<color>|<obj>))", "<a>", out)


def _geneval_rows() -> list[dict]:
    return [json.loads(line) for line in GENEVAL.read_text().splitlines() if line.strip()]


def test_captions_use_geneval_templates_per_tag():
    ref: dict[str, set[str]] = {}
    for row in _geneval_rows():
        ref.setdefault(row["tag"], set()).add(_template(row["prompt"], [c["class"] for c in row["include"]]))
    for tag in TAGS:
        ours = {_template(s.caption, [o.shape for o in s.objects]) for s in ds.all_specs(tag)}
        assert ours <= ref[tag], (tag, ours - ref[tag])


def test_metadata_has_geneval_structure_per_tag():
    def shape_of(meta: dict) -> tuple:
        inc = tuple(tuple(sorted(k for k in c if k != "class")) for c in meta["include"])
        exc = tuple(c["count"] - meta["include"][0]["count"] for c in meta.get("exclude", []))
        pos = tuple(tuple(c["position"][1:]) for c in meta["include"] if "position" in c)
        return inc, exc, pos

    ref: dict[str, set] = {}
    for row in _geneval_rows():
        ref.setdefault(row["tag"], set()).add(shape_of(row))
    for tag in TAGS:
        for spec in ds.all_specs(tag):
            meta = spec.geneval_metadata()
            assert meta["tag"] == tag and meta["prompt"] == spec.caption
            assert shape_of(meta) in ref[tag], (tag, meta)


@pytest.mark.parametrize("tag", TAGS)
def test_parse_is_the_inverse_of_caption(tag):
    specs = ds.all_specs(tag) + (ds.all_specs(tag, colored_positions=True) if tag == "position" else [])
    for spec in specs:
        assert parse_caption(spec.caption) == spec


@pytest.mark.parametrize(
    "bad",
    [
        "a photo of a cat",
        "a photo of a orange circle",  # wrong article
        "a photo of two circle",
        "a photo of one circle",
        "a photo of a red circle and a square",  # mixed colouring is no GenEval form
        "a photo of a circle and a circle",
        "a photo of a red circle and a red square",
        "photo of a circle",
        "a photo of a circle beside a square",
        "a photo of two red circles",
    ],
)
def test_parse_rejects_other_strings(bad):
    with pytest.raises(ValueError):
        parse_caption(bad)


def test_spec_validation():
    with pytest.raises(ValueError):
        ObjectSpec("hexagon")
    with pytest.raises(ValueError):
        ObjectSpec("circle", count=5)
    with pytest.raises(ValueError):
        SceneSpec("position", (ObjectSpec("circle"), ObjectSpec("square")))  # no relation
    with pytest.raises(ValueError):
        SceneSpec("colors", (ObjectSpec("circle"),))


def test_training_batches_are_deterministic_and_distinct():
    a_img, a_cap = ds.training_batch(3, 11, 16)
    b_img, b_cap = ds.training_batch(3, 11, 16)
    c_img, c_cap = ds.training_batch(3, 12, 16)
    assert np.array_equal(a_img, b_img) and a_cap == b_cap
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == (16, CANVAS, CANVAS, 3) and a_img.dtype == np.uint8


def test_training_never_shows_heldout_captions_and_drops_some():
    captions = [c for i in range(6) for c in ds.training_batch(0, i, 64)[1]]
    shown = [c for c in captions if c]
    assert 0 < len(captions) - len(shown) < len(captions) * 0.3  # caption dropout ~10%
    assert not any(ds.is_heldout(parse_caption(c)) for c in shown)
    assert {parse_caption(c).tag for c in shown} == set(TAGS)


def test_split_covers_every_word_in_training():
    for tag in TAGS:
        held, train = ds.eval_specs(tag), ds.train_specs(tag)
        assert held and train
        if tag != "single_object":
            assert all(ds.is_heldout(s) for s in held) and not any(ds.is_heldout(s) for s in train)
            assert not set(held) & set(train)
    seen = {w for tag in TAGS for s in ds.train_specs(tag) for w in s.caption.split()}
    vocab = {*COLORS, *SHAPES, *PLURALS.values(), *COUNT_WORDS.values(), *(w for r in RELATIONS for w in r.split())}
    assert vocab <= seen


def _boxes_apart(a, b) -> bool:
    """Brute force: the two boxes' pixel sets, each dilated by GAP - 1, do not touch."""
    grid_a = np.zeros((CANVAS + 8, CANVAS + 8), bool)
    grid_b = np.zeros_like(grid_a)
    g = ds.GAP - 1
    grid_a[a[1] + 4 - g : a[3] + 4 + g, a[0] + 4 - g : a[2] + 4 + g] = True
    grid_b[b[1] + 4 : b[3] + 4, b[0] + 4 : b[2] + 4] = True
    return not (grid_a & grid_b).any()


@pytest.mark.parametrize("tag", TAGS)
def test_scenes_follow_their_spec(tag):
    rng = np.random.default_rng(42)
    for _ in range(40):
        spec = ds.sample_spec(rng, tag, "all")
        scene = ds.sample_scene(rng, spec)
        want = [(o.shape, o.color) for o in spec.objects for _ in range(o.count)]
        assert [s for s, _ in want] == [o.shape for o in scene]
        assert all(c is None or c == o.color for (_, c), o in zip(want, scene, strict=True))
        hi = ds.SIZES[tag][1]
        for i, o in enumerate(scene):
            assert min(o.x, o.y) >= ds.MARGIN and max(o.x, o.y) + o.size <= CANVAS - ds.MARGIN
            assert 6 <= o.size <= hi
            for p in scene[i + 1 :]:
                assert _boxes_apart(o.box, p.box)
        if tag == "position":
            assert relative_position(scene[0].box, scene[1].box) == {spec.relation}


def test_render_paints_exactly_the_masks():
    rng = np.random.default_rng(0)
    spec = ds.sample_spec(rng, "counting", "all")
    scene = ds.sample_scene(rng, spec)
    img = render(scene)
    painted = (img != np.array([128, 128, 128], np.uint8)).any(-1)
    expected = np.zeros_like(painted)
    for o in scene:
        expected[o.y : o.y + o.size, o.x : o.x + o.size] |= shape_mask(o.shape, o.size)
    assert np.array_equal(painted, expected)


def test_eval_prompts_cycle_heldout_captions_with_distinct_seeds():
    pairs = ds.eval_prompts(10, seed_offset=100)
    assert len(pairs) == 10 * len(TAGS)
    assert len({seed for _, seed in pairs}) == len(pairs) and min(seed for _, seed in pairs) == 100
    assert all(spec in ds.eval_specs(spec.tag) for spec, _ in pairs)
