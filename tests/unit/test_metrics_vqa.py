"""BLIP-2 VQA probe (optional metric): questions from GenEval metadata, answer checks, and a tiny
BLIP-2 of the real classes saved with save_pretrained and loaded through the adapter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from interp.metrics import CorruptWeightsError, MetricSettings, MissingWeightsError, load_metric
from interp.metrics.vqa import Question, check_answer, geneval_metadata, plural, questions_for


def test_questions_from_geneval_metadata():
    table = geneval_metadata()
    assert len(table) == 553
    q = questions_for(table["a photo of two clocks"])
    assert [(x.kind, x.text, x.expected) for x in q] == [
        ("presence", "Is there a clock in the image?", "yes"),
        ("count", "How many clocks are in the image?", 2),
    ]
    q = questions_for(table["a photo of a wine glass above a kite"])
    assert [(x.kind, x.expected) for x in q] == [("presence", "yes"), ("presence", "yes"), ("position", "yes")]
    assert q[2].text == "Is the wine glass above the kite?"
    q = questions_for(table["a photo of a purple wine glass and a black apple"])
    assert [x.text for x in q if x.kind == "color"] == ["What color is the wine glass?", "What color is the apple?"]
    assert q[1].text == "Is there an apple in the image?"
    # every GenEval entry yields its questions; counting prompts carry the count
    for meta in table.values():
        qs = questions_for(meta)
        assert sum(x.kind == "presence" for x in qs) == len(meta["include"])
        if meta["tag"] == "counting":
            assert any(x.kind == "count" for x in qs)


def test_plurals_and_answer_checks():
    assert [plural(c) for c in ("person", "computer mouse", "wine glass", "bus", "skis", "sheep", "cup")] == [
        "people",
        "computer mice",
        "wine glasses",
        "buses",
        "skis",
        "sheep",
        "cups",
    ]
    yes = Question("presence", "?", "yes")
    assert check_answer(yes, "Yes, there is.") and not check_answer(yes, "no") and not check_answer(yes, "")
    two = Question("count", "?", 2)
    assert check_answer(two, "2") and check_answer(two, "two dogs") and not check_answer(two, "three")
    assert not check_answer(two, "many")
    red = Question("color", "?", "red")
    assert check_answer(red, "it is red") and not check_answer(red, "reddish")


def _tiny_blip2(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessor,
        OPTConfig,
        PreTrainedTokenizerFast,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "</s>", "<unk>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["Question: is there a clock in the image? Answer: yes no two red above"], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="</s>", unk_token="<unk>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    config = Blip2Config(
        vision_config=Blip2VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=224,
            patch_size=32,
        ).to_dict(),
        qformer_config=Blip2QFormerConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
            vocab_size=100,
        ).to_dict(),
        text_config=OPTConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            ffn_dim=64,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=128,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=1,
        ).to_dict(),
        num_query_tokens=4,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 224, "width": 224}), tokenizer=tokenizer, num_query_tokens=4
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    weights = tmp_path_factory.mktemp("blip2")
    _tiny_blip2(weights / "blip2-opt-2.7b")
    return MetricSettings(weights_dir=weights, device="cpu", batch_size=3, vqa_max_new_tokens=4)


def _images(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)) for _ in range(n)]


def test_scores_from_a_tiny_blip2(tiny):
    metric = load_metric("blip2_vqa", tiny)
    prompts = ["a photo of two clocks", "a photo of a wine glass above a kite"]
    images = _images(2)
    rows = metric.answers(images, prompts)
    assert [len(r) for r in rows] == [2, 3]
    for r in rows:
        for item in r:
            assert item["correct"] == check_answer(
                Question(item["kind"], item["question"], item["expected"]), item["answer"]
            )
    out = metric.score(images, prompts)
    expected = [np.mean([item["correct"] for item in r]) for r in rows]
    np.testing.assert_array_equal(out["vqa_accuracy"], expected)
    np.testing.assert_array_equal(out["vqa_all"], [float(e == 1.0) for e in expected])
    # answers do not depend on how questions are batched (left padding)
    single = metric.ask([images[1]], [rows[1][2]["question"]])
    assert single == [rows[1][2]["answer"]]
    info = metric.version_info()
    assert json.loads(json.dumps(info)) == info
    with pytest.raises(ValueError, match="GenEval"):
        metric.score(images[:1], ["not a geneval prompt"])


def test_missing_and_mismatched_weights(tiny, tmp_path):
    with pytest.raises(MissingWeightsError, match="blip2_dir"):
        load_metric("blip2_vqa", tiny.replace(weights_dir=tmp_path))
    from safetensors.torch import load_file, save_file

    folder = _tiny_blip2(tmp_path / "blip2-opt-2.7b")
    sd = load_file(str(folder / "model.safetensors"))
    sd.pop(next(k for k in sd if k.startswith("qformer.")))
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CorruptWeightsError, match="do not match"):
        load_metric("blip2_vqa", tiny.replace(weights_dir=tmp_path))
