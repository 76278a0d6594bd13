"""BLIP-2 VQA: a non-CLIP alignment probe, asking questions built from GenEval's metadata (optional).

For each image, questions are built from the prompt's GenEval metadata (``interp/data/geneval``; looked
up by the exact prompt, or passed in) with these templates, in the order below:

- presence, for every object in ``include``: "Is there a {class} in the image?" (expected "yes");
- count, where an object's count is above one: "How many {plural} are in the image?" (the count);
- colour, where an object has a colour: "What color is the {class}?" (the colour);
- position, where an object has ``position = [relation, j]``: "Is the {class} {relation} the
  {class of object j}?" (expected "yes").

Each question is asked as ``"Question: {q} Answer:"`` (BLIP-2's VQA prompt), answered greedily (at most
``vqa_max_new_tokens`` new tokens), and checked: yes/no by the first word, counts by the first number
(digits or a word up to twelve), colours by the expected colour word appearing in the answer. Outputs
per image: ``vqa_accuracy`` (fraction of its questions answered as expected) and ``vqa_all`` (1 if all
were). ``answers(images, prompts)`` returns the questions, answers and checks for inspection.

The model is ``transformers.Blip2ForConditionalGeneration`` with its ``Blip2Processor``, read from a local
folder (``blip2_dir``; the layout of the HF repository ``Salesforce/blip2-opt-2.7b``) with
``local_files_only=True``; missing or unexpected weights are an error (strict), safetensors shards are
checked for truncation first. Prompts are padded on the left (decoder-only generation); float16 on CUDA,
float32 on CPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import torch
from PIL import Image

from interp.metrics.base import Metric, batches, check_images, check_prompts
from interp.metrics.settings import MetricSettings
from interp.metrics.weights import BLIP2, CorruptWeightsError, check_file, resolve

_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    )
}
# Irregular last words among GenEval's 80 classes.
_IRREGULAR_PLURALS = {
    "person": "people",
    "mouse": "mice",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "knife": "knives",
    "broccoli": "broccoli",
}


@dataclass(frozen=True)
class Question:
    kind: str  # "presence" | "count" | "color" | "position"
    text: str
    expected: str | int


def plural(name: str) -> str:
    head, _, last = name.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        last = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _article(name: str) -> str:
    return "an" if name[0] in "aeiou" else "a"


def questions_for(meta: Mapping[str, Any]) -> list[Question]:
    """The questions of one GenEval metadata entry (see the module docstring for the templates)."""
    include = list(meta.get("include", []))
    if not include:
        raise ValueError(f"GenEval metadata without 'include': {meta}")
    out = [
        Question("presence", f"Is there {_article(obj['class'])} {obj['class']} in the image?", "yes")
        for obj in include
    ]
    out += [
        Question("count", f"How many {plural(obj['class'])} are in the image?", int(obj["count"]))
        for obj in include
        if int(obj.get("count", 1)) > 1
    ]
    out += [
        Question("color", f"What color is the {obj['class']}?", obj["color"]) for obj in include if obj.get("color")
    ]
    for obj in include:
        if obj.get("position"):
            relation, other = obj["position"]
            text = f"Is the {obj['class']} {relation} the {include[other]['class']}?"
            out.append(Question("position", text, "yes"))
    return out


def check_answer(question: Question, answer: str) -> bool:
    words = re.findall(r"[a-z]+|\d+", answer.lower())
    if question.kind in ("presence", "position"):
        return bool(words) and words[0] == str(question.expected)
    if question.kind == "count":
        for w in words:
            if w.isdigit():
                return int(w) == question.expected
            if w in _NUMBER_WORDS:
                return _NUMBER_WORDS[w] == question.expected
        return False
    if question.kind == "color":
        return str(question.expected).lower() in words
    raise ValueError(f"unknown question kind {question.kind!r}")


@cache
def geneval_metadata() -> dict[str, dict]:
    """GenEval's 553 metadata entries (shipped with interp), by prompt."""
    text = resources.files("interp").joinpath("data/geneval/evaluation_metadata.jsonl").read_text("utf-8")
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {e["prompt"]: e for e in entries}


class BLIP2VQA(Metric):
    name = "blip2_vqa"
    outputs = {
        "vqa_accuracy": "fraction of the GenEval-derived questions BLIP-2 answered as expected",
        "vqa_all": "1 if every question of the image was answered as expected, else 0",
    }
    packages = ("torch", "transformers", "tokenizers")
    setting_keys = ("vqa_max_new_tokens",)

    def __init__(self, settings: MetricSettings) -> None:
        super().__init__(settings)
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        folder = resolve(BLIP2, settings)
        for shard in sorted(folder.glob("*.safetensors")):
            check_file(shard, BLIP2)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            model, info = Blip2ForConditionalGeneration.from_pretrained(
                str(folder), local_files_only=True, output_loading_info=True, dtype=dtype
            )
        except (OSError, ValueError) as exc:
            raise CorruptWeightsError(f"Could not load BLIP-2 from {folder} (settings key 'blip2_dir'): {exc}") from exc
        problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
        if problems or info.get("error_msgs"):
            raise CorruptWeightsError(f"BLIP-2 weights in {folder} do not match its config: {problems}")
        self.model = model.to(self.device).eval()
        self.processor = Blip2Processor.from_pretrained(str(folder), local_files_only=True)
        self.processor.tokenizer.padding_side = "left"
        self.weight_files = {"blip2_dir": {"path": str(folder)}}

    def _metadata(self, prompts: list[str], metadata: Sequence[Mapping] | None) -> list[Mapping]:
        if metadata is not None:
            metadata = list(metadata)
            if len(metadata) != len(prompts):
                raise ValueError(f"got {len(prompts)} prompts but {len(metadata)} metadata entries")
            return metadata
        table = geneval_metadata()
        missing = [p for p in prompts if p not in table]
        if missing:
            raise ValueError(f"prompts not in GenEval's metadata (pass metadata=...): {missing[:3]}")
        return [table[p] for p in prompts]

    def ask(self, images: list[Image.Image], questions: list[str]) -> list[str]:
        """Greedy answers, one per (image, question)."""
        answers: list[str] = []
        with torch.inference_mode():
            for sl in batches(len(images), self.settings.batch_size):
                texts = [f"Question: {q} Answer:" for q in questions[sl]]
                inputs = self.processor(
                    images=[im.convert("RGB") for im in images[sl]], text=texts, return_tensors="pt", padding=True
                ).to(self.device)
                inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
                out = self.model.generate(**inputs, max_new_tokens=self.settings.vqa_max_new_tokens, do_sample=False)
                new = out[:, inputs["input_ids"].shape[1] :]
                answers += [a.strip() for a in self.processor.batch_decode(new, skip_special_tokens=True)]
        return answers

    def answers(
        self, images: Sequence[Image.Image], prompts: Sequence[str], metadata: Sequence[Mapping] | None = None
    ) -> list[list[dict]]:
        images = check_images(images)
        prompts = check_prompts(prompts, len(images))
        per_image = [questions_for(m) for m in self._metadata(prompts, metadata)]
        flat_images = [im for im, qs in zip(images, per_image, strict=True) for _ in qs]
        flat_q = [q for qs in per_image for q in qs]
        flat_a = self.ask(flat_images, [q.text for q in flat_q])
        out, k = [], 0
        for qs in per_image:
            rows = []
            for q in qs:
                rows.append(
                    {
                        "kind": q.kind,
                        "question": q.text,
                        "expected": q.expected,
                        "answer": flat_a[k],
                        "correct": check_answer(q, flat_a[k]),
                    }
                )
                k += 1
            out.append(rows)
        return out

    def score(
        self, images: Sequence[Image.Image], prompts: Sequence[str], metadata: Sequence[Mapping] | None = None
    ) -> dict[str, np.ndarray]:
        rows = self.answers(images, prompts, metadata)
        acc = np.array([np.mean([r["correct"] for r in qs]) for qs in rows], dtype=np.float64)
        return {"vqa_accuracy": acc, "vqa_all": (acc == 1.0).astype(np.float64)}
