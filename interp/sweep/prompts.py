"""Prompt sets of a sweep: GenEval (shipped), a plain text file, a JSONL file; subsets balanced by tag.

Design
------
A prompt set is a list of :class:`Prompt` records: the text, its ``tag`` (GenEval's category, or
whatever field a JSONL file names), its ``index`` in the *source* (the line's position among the
file's prompts) and ``meta``, the rest of its source record as a JSON string (GenEval's ``include``
object specs, which detector-based scoring needs later). The source index, not the position in a
subset, drives the default seed policy, so a subset's samples are the same samples as in the full
sweep.

GenEval's file is ordered by tag, so "the first N prompts" is a single-object subset.
:func:`balanced_subset` instead draws, with a seeded ``numpy`` generator, the same number of prompts
from every tag (the remainder spread over tags chosen at random, and a tag with too few prompts giving
its shortfall to the others), and returns them in source order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np


class PromptSetError(ValueError):
    """A prompt file or subset request that cannot be used."""


@dataclass(frozen=True)
class Prompt:
    """One prompt of a set: text, tag, index in its source, and the rest of its record as JSON."""

    index: int
    text: str
    tag: str = ""
    meta: str = "{}"


GENEVAL_RESOURCE = ("interp", "data/geneval/evaluation_metadata.jsonl")


def geneval() -> list[Prompt]:
    """The 553 GenEval prompts with their official tags, in the benchmark's order."""
    package, name = GENEVAL_RESOURCE
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return _parse_jsonl(text.splitlines(), source="GenEval metadata", text_field="prompt", tag_field="tag")


def from_text(path: str | os.PathLike, *, tag: str = "") -> list[Prompt]:
    """One prompt per line; blank lines and ``#`` comment lines are skipped; every prompt gets ``tag``."""
    p = _existing(path)
    prompts = []
    for line in p.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            prompts.append(Prompt(index=len(prompts), text=text, tag=tag))
    if not prompts:
        raise PromptSetError(f"prompt file {p} holds no prompt (blank lines and # comments are skipped)")
    return prompts


def from_jsonl(path: str | os.PathLike, *, text_field: str = "prompt", tag_field: str | None = "tag") -> list[Prompt]:
    """One JSON object per line; ``text_field`` is the prompt, ``tag_field`` (optional) its tag."""
    p = _existing(path)
    return _parse_jsonl(
        p.read_text(encoding="utf-8").splitlines(), source=str(p), text_field=text_field, tag_field=tag_field
    )


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise PromptSetError(f"prompt file {p} does not exist" if not p.exists() else f"{p} is not a file")
    return p


def _parse_jsonl(lines: Sequence[str], *, source: str, text_field: str, tag_field: str | None) -> list[Prompt]:
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSetError(f"{source}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise PromptSetError(f"{source}, line {number}: expected a JSON object, got {type(record).__name__}")
        text = record.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise PromptSetError(f"{source}, line {number}: no non-empty string field {text_field!r}")
        tag = record.get(tag_field, "") if tag_field else ""
        if not isinstance(tag, str):
            raise PromptSetError(f"{source}, line {number}: field {tag_field!r} is not a string")
        meta = {k: v for k, v in record.items() if k not in (text_field, tag_field)}
        prompts.append(Prompt(index=len(prompts), text=text, tag=tag, meta=json.dumps(meta, sort_keys=True)))
    if not prompts:
        raise PromptSetError(f"{source} holds no prompt")
    return prompts


def balanced_subset(
    prompts: Sequence[Prompt], *, n: int | None = None, per_tag: int | None = None, seed: int = 0
) -> list[Prompt]:
    """A seeded random subset with (as nearly as the tags allow) the same number of prompts per tag.

    Give ``n`` (total) or ``per_tag``. With ``n``, every tag gets ``n // n_tags`` and tags drawn at
    random get one more; a tag with fewer prompts than its quota gives all it has and the shortfall is
    spread over the others. The result is in source order.
    """
    if (n is None) == (per_tag is None):
        raise PromptSetError("balanced_subset needs exactly one of n= or per_tag=")
    rng = np.random.default_rng(seed)
    by_tag: dict[str, list[Prompt]] = {}
    for p in prompts:
        by_tag.setdefault(p.tag, []).append(p)
    tags = sorted(by_tag)
    if per_tag is not None:
        if per_tag < 1:
            raise PromptSetError(f"per_tag must be a positive integer, got {per_tag}")
        quota = {t: min(per_tag, len(by_tag[t])) for t in tags}
    else:
        assert n is not None
        if not 1 <= n <= len(prompts):
            raise PromptSetError(f"subset size n={n} is outside 1..{len(prompts)} (the set's size)")
        quota = _quotas(n, {t: len(by_tag[t]) for t in tags}, rng)
    chosen: list[Prompt] = []
    for t in tags:
        members = by_tag[t]
        picks = rng.choice(len(members), size=quota[t], replace=False)
        chosen.extend(members[i] for i in picks)
    return sorted(chosen, key=lambda p: p.index)


def _quotas(n: int, available: dict[str, int], rng: np.random.Generator) -> dict[str, int]:
    """Split ``n`` over tags as evenly as their sizes allow; the remainder goes to random tags."""
    quota = dict.fromkeys(available, 0)
    left = n
    while left > 0:
        open_tags = [t for t in available if quota[t] < available[t]]
        share, extra = divmod(left, len(open_tags))
        lucky = set(rng.choice(open_tags, size=extra, replace=False).tolist()) if extra else set()
        for t in open_tags:
            give = min(share + (t in lucky), available[t] - quota[t])
            quota[t] += give
            left -= give
    return quota
