"""Prompt sets: GenEval as shipped, text and JSONL files, tag-balanced seeded subsets."""

import collections
import json
from importlib import resources

import pytest

from interp.sweep.prompts import Prompt, PromptSetError, balanced_subset, from_jsonl, from_text, geneval


def _geneval_file_records():
    text = resources.files("interp").joinpath("data/geneval/evaluation_metadata.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_geneval_matches_the_shipped_file_prompt_by_prompt():
    records = _geneval_file_records()
    prompts = geneval()
    assert len(prompts) == len(records) == 553
    for i, (p, r) in enumerate(zip(prompts, records, strict=True)):
        assert (p.index, p.text, p.tag) == (i, r["prompt"], r["tag"])
        assert json.loads(p.meta)["include"] == r["include"]


def test_text_file_skips_blank_and_comment_lines(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# header\n\na red cube\n  a blue ball  \n#x\nthe end\n")
    prompts = from_text(f, tag="mine")
    assert [p.text for p in prompts] == ["a red cube", "a blue ball", "the end"]
    assert [p.index for p in prompts] == [0, 1, 2]
    assert {p.tag for p in prompts} == {"mine"}


def test_jsonl_custom_fields_and_meta(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"caption": "a cat", "category": "animal", "id": 7}\n\n{"caption": "a car", "category": "vehicle"}\n')
    prompts = from_jsonl(f, text_field="caption", tag_field="category")
    assert [(p.text, p.tag) for p in prompts] == [("a cat", "animal"), ("a car", "vehicle")]
    assert json.loads(prompts[0].meta) == {"id": 7}


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"prompt": "a"}\nnot json\n', "line 2"), ('{"text": "a"}\n', "'prompt'"), ("[1, 2]\n", "JSON object")],
)
def test_jsonl_errors_name_the_line_or_field(tmp_path, content, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(PromptSetError, match=message):
        from_jsonl(f)


def test_missing_files_are_refused(tmp_path):
    with pytest.raises(PromptSetError, match="does not exist"):
        from_text(tmp_path / "nope.txt")
    with pytest.raises(PromptSetError, match="does not exist"):
        from_jsonl(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("n", [6, 24, 50, 100])
def test_balanced_subset_is_balanced_seeded_and_in_source_order(n):
    prompts = geneval()
    sub = balanced_subset(prompts, n=n, seed=3)
    assert len(sub) == n == len({p.index for p in sub})
    assert [p.index for p in sub] == sorted(p.index for p in sub)
    assert all(prompts[p.index] == p for p in sub)
    counts = collections.Counter(p.tag for p in sub)
    tags = {p.tag for p in prompts}
    assert set(counts) == tags if n >= len(tags) else len(counts) == n
    assert max(counts.values()) - min(counts.get(t, 0) for t in tags) <= 1
    assert sub == balanced_subset(prompts, n=n, seed=3)
    assert sub != balanced_subset(prompts, n=n, seed=4)
    assert [p.index for p in sub] != list(range(n))


def test_balanced_subset_moves_a_small_tags_shortfall_to_the_others():
    prompts = [Prompt(i, f"a{i}", "small") for i in range(2)] + [Prompt(i, f"b{i}", "big") for i in range(2, 12)]
    sub = balanced_subset(prompts, n=8, seed=0)
    assert collections.Counter(p.tag for p in sub) == {"small": 2, "big": 6}


def test_per_tag_subset_and_bad_requests():
    prompts = geneval()
    sub = balanced_subset(prompts, per_tag=3, seed=0)
    assert collections.Counter(p.tag for p in sub) == dict.fromkeys({p.tag for p in prompts}, 3)
    with pytest.raises(PromptSetError, match="exactly one"):
        balanced_subset(prompts, n=3, per_tag=3)
    with pytest.raises(PromptSetError, match="outside"):
        balanced_subset(prompts, n=10_000)
