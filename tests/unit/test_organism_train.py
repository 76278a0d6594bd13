"""Training the organism on CPU: the loss falls, a resumed run continues bit-identically, exports are fp16."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from interp.organism.dataset import DataConfig
from interp.organism.export import pipeline_from_run
from interp.organism.model import OrganismConfig
from interp.organism.train import CHECKPOINT, FACTS, TrainConfig, Trainer, lr_at, train

TINY = OrganismConfig(num_layers=2, num_heads=2, head_dim=8, text_dim=16, text_layers=1, text_heads=2, text_ff=32)
CFG = TrainConfig(batch_size=4, lr=3e-3, warmup_steps=2, log_every=2, data=DataConfig(caption_dropout=0.25))


def _fixed_loss(trainer: Trainer) -> float:
    from interp.organism.dataset import training_batch

    images, captions = training_batch(999, 0, 16)
    with torch.no_grad():
        x0, ids = trainer.pixels(images), trainer.ids(captions)
        return float(trainer.loss(x0, ids, step=10**6))


def test_training_reduces_the_loss(tmp_path):
    before = _fixed_loss(Trainer(TINY, CFG))
    trainer = train(tmp_path, TINY, CFG, steps=25, verbose=False)
    after = _fixed_loss(trainer)
    assert after < 0.8 * before, (before, after)
    facts = json.loads((tmp_path / FACTS).read_text())
    assert facts["done"] and facts["step"] == 25 and len(facts["loss_curve"]) == 12


def test_resume_continues_identically(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    straight = train(a, TINY, CFG, steps=6, verbose=False)
    first = train(b, TINY, CFG, steps=6, stop_after=3, verbose=False)
    assert first.step == 3 and not json.loads((b / FACTS).read_text())["done"]
    resumed = train(b, TINY, CFG, steps=6, resume=True, verbose=False)
    assert resumed.step == 6
    sa = torch.load(a / CHECKPOINT, weights_only=True)
    sb = torch.load(b / CHECKPOINT, weights_only=True)
    for part in ("net", "ema"):
        assert sa[part].keys() == sb[part].keys()
        for k in sa[part]:
            assert torch.equal(sa[part][k], sb[part][k]), (part, k)
    for k, v in sa["opt"]["state"].items():
        for name, t in v.items():
            assert torch.equal(t, sb["opt"]["state"][k][name]), (k, name)
    assert [r["loss"] for r in straight.log] == [r["loss"] for r in resumed.log]


def test_resume_refuses_other_configs_and_missing_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError):
        train(tmp_path / "none", TINY, CFG, steps=2, resume=True, verbose=False)
    train(tmp_path / "run", TINY, CFG, steps=2, stop_after=1, verbose=False)
    with pytest.raises(FileExistsError):
        train(tmp_path / "run", TINY, CFG, steps=2, verbose=False)
    with pytest.raises(ValueError):
        train(tmp_path / "run", TINY, TrainConfig(batch_size=8), steps=2, resume=True, verbose=False)
    with pytest.raises(ValueError):
        train(tmp_path / "x", TINY, CFG, steps=2, minutes=9, verbose=False)


def test_export_is_fp16_and_loads_the_ema_weights(tmp_path):
    trainer = train(tmp_path, TINY, CFG, steps=3, verbose=False)
    for name in ("transformer", "text_encoder"):
        with safe_open(str(tmp_path / f"{name}.safetensors"), "pt") as sf:
            assert {sf.get_slice(k).get_dtype() for k in list(sf.keys())} == {"F16"}
    pipe = pipeline_from_run(tmp_path)
    ema = trainer.ema.module["transformer"].state_dict()
    for k, v in pipe.transformer.state_dict().items():
        assert torch.equal(v, ema[k].half().float()), k
    image = pipe("a photo of a circle", num_inference_steps=2, output_type="np").images
    assert image.shape == (1, 32, 32, 3)


def test_second_phase_starts_from_exported_weights(tmp_path):
    train(tmp_path / "p1", TINY, CFG, steps=3, verbose=False)
    p2 = train(tmp_path / "p2", TINY, CFG, steps=1, stop_after=0, init=tmp_path / "p1", verbose=False)
    first = pipeline_from_run(tmp_path / "p1").transformer.state_dict()
    for k, v in p2.net["transformer"].state_dict().items():
        assert torch.equal(v, first[k]), k
    assert p2.previous_phases[0]["step"] == 3


def test_lr_schedule_matches_torch_cosine_after_warmup():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    total = 110
    assert [lr_at(s, total, cfg) for s in range(10)] == pytest.approx([1e-3 * (s + 1) / 10 for s in range(10)])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - 10, eta_min=cfg.lr * cfg.min_lr_ratio)
    for s in range(10, total + 1):
        assert lr_at(s, total, cfg) == pytest.approx(sched.get_last_lr()[0], rel=1e-9)
        opt.step()
        sched.step()


def test_tf32_is_scoped_to_training_and_restored():
    import torch

    from interp.organism.train import tf32_on_cuda

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with tf32_on_cuda(torch.device("cuda")):  # setting the flags needs no device
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with tf32_on_cuda(torch.device("cpu")):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
