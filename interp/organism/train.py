"""Training the organism: rectified flow on procedural batches, in resumable chunks of at most 8 minutes.

Usage::

    python -m interp.organism.train --out DIR [--steps N | --steps auto] [--minutes 8] [--resume]

Design
------
One invocation trains one *chunk*: it stops after ``--minutes`` (at most 8) or at step N, whichever
comes first, and writes ``DIR/checkpoint.pt`` (model, EMA, optimizer, step, schedule length, loss
curve); ``--resume`` continues from it. Randomness is a pure function of (seed, step): batch k is
``dataset.training_batch(seed, k)`` and the noise and timesteps of step k come from a generator seeded
with (seed, k), so the checkpoint's step *is* the RNG state and a resumed run continues bit-identically
(tested on CPU). When step N is reached, the EMA weights are exported in float16
(``transformer.safetensors``, ``text_encoder.safetensors``) beside ``training.json`` (configs, steps,
wall time, loss curve).

Objective (SD3's): x_t = (1 - t) x_0 + t eps with t = sigmoid(N(0, 1)) (logit-normal), the transformer
predicts the velocity eps - x_0 at timestep 1000 t, mean squared error; captions are dropped to ""
with probability 0.1 for classifier-free guidance; the text encoder trains jointly. AdamW, linear
warm-up then cosine decay to 10% of the peak rate, gradient clipping at 1, EMA of the weights.
``--steps auto`` measures throughput between steps 50 and 250 (before the warm-up ends, so the
schedule does not depend on it before it is fixed) and sets N to what fits the chunk's time.

Batches are rendered by a pool of worker processes (``--workers``, spawned, numpy only) a window
ahead of the step that consumes them; ``--workers 0`` renders in-process.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from interp.organism.dataset import DataConfig, training_batch
from interp.organism.model import OrganismConfig, build_modules, count_parameters
from interp.organism.text import encode

MAX_CHUNK_MINUTES = 8.0
CHECKPOINT = "checkpoint.pt"
FACTS = "training.json"


def calibration_window(warmup_steps: int) -> tuple[int, int]:
    """Steps between which ``--steps auto`` times the run: inside the warm-up, whose schedule needs no N."""
    return max(5, warmup_steps // 5), max(10, warmup_steps - 10)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and objective settings (defaults: the shipped run)."""

    seed: int = 0
    batch_size: int = 1024
    lr: float = 8e-4
    warmup_steps: int = 300
    min_lr_ratio: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    logit_mean: float = 0.0
    logit_std: float = 1.0
    log_every: int = 50
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"invalid training config: {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> TrainConfig:
        d = dict(d)
        d["data"] = DataConfig(**d.get("data", {}))
        return TrainConfig(**d)


def lr_at(step: int, total: int | None, cfg: TrainConfig) -> float:
    """Learning rate of ``step``: linear warm-up, then cosine decay to ``min_lr_ratio`` at ``total``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if total is None or total <= cfg.warmup_steps:
        return cfg.lr
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def step_seed(seed: int, step: int) -> int:
    return (int(seed) * 1_000_003 + int(step) * 7_919 + 12_345) % (2**63 - 1)


class BatchStream:
    """Batches ``start, start+1, ...`` of ``training_batch``, rendered ``window`` ahead by worker processes."""

    def __init__(self, seed: int, start: int, batch_size: int, data: DataConfig, workers: int, window: int = 48):
        self.seed, self.next_index, self.batch_size, self.data = seed, start, batch_size, data
        self.pool = (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 0 else None
        )
        self.window = window if workers > 0 else 0
        self.pending: collections.deque[Future] = collections.deque()
        self.submitted = start

    def _fill(self) -> None:
        while self.pool is not None and len(self.pending) < self.window:
            self.pending.append(self.pool.submit(training_batch, self.seed, self.submitted, self.batch_size, self.data))
            self.submitted += 1

    def next(self) -> tuple[np.ndarray, list[str]]:
        index = self.next_index
        self.next_index += 1
        if self.pool is None:
            return training_batch(self.seed, index, self.batch_size, self.data)
        self._fill()
        out = self.pending.popleft().result()
        self._fill()
        return out

    def close(self) -> None:
        if self.pool is not None:
            for f in self.pending:
                f.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)


class EMA:
    """Exponential moving average of a module's parameters and buffers, updated without host syncs.

    ``torch.optim.swa_utils.AveragedModel`` would do this but reads its ``n_averaged`` counter on the
    host every update (two device syncs per step, measured to serialise the training loop on a GPU).
    """

    def __init__(self, module: nn.Module, decay: float):
        import copy

        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def _pairs(self, module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        mine = [*self.module.parameters(), *self.module.buffers()]
        theirs = [*module.parameters(), *module.buffers()]
        return [t.detach() for t in mine], [t.detach() for t in theirs]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        mine, theirs = self._pairs(module)
        floats = [(a, b) for a, b in zip(mine, theirs, strict=True) if a.is_floating_point()]
        # torch._foreach_lerp_ is the fused kernel AveragedModel itself uses for EMA
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - self.decay)

    @torch.no_grad()
    def copy_from(self, module: nn.Module) -> None:
        for a, b in zip(*self._pairs(module), strict=True):
            a.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


class Trainer:
    """Model, EMA, optimizer and the step function; ``state_dict`` is the whole checkpoint."""

    def __init__(
        self,
        model_config: OrganismConfig,
        train_config: TrainConfig,
        device: str | torch.device = "cpu",
        *,
        autocast: bool | None = None,
        compile: bool = False,
    ):
        self.model_config, self.cfg = model_config, train_config
        self.device = torch.device(device)
        transformer, text_encoder, tokenizer, _ = build_modules(model_config, seed=train_config.seed)
        self.tokenizer = tokenizer
        self.eos_id = int(tokenizer.eos_token_id)
        self.net = nn.ModuleDict({"transformer": transformer, "text_encoder": text_encoder}).to(self.device)
        self.net.train()
        self.ema = EMA(self.net, train_config.ema_decay)
        fused = self.device.type == "cuda"
        self.opt = torch.optim.AdamW(
            self.net.parameters(),
            lr=train_config.lr,
            betas=(train_config.beta1, train_config.beta2),
            weight_decay=train_config.weight_decay,
            fused=fused,
        )
        self.autocast = (self.device.type == "cuda") if autocast is None else autocast
        self.transformer_fn = transformer
        self.compiled = False
        if compile:
            self.transformer_fn = torch.compile(transformer)
            self.compiled = True
        self.step = 0
        self.total_steps: int | None = None
        self.log: list[dict] = []
        self.elapsed = 0.0  # training wall time of earlier chunks
        self.chunks: list[dict] = []
        self._ids_cache: dict[str, list[int]] = {}
        self.previous_phases: list[dict] = []
        self.pending_loss: tuple[float, int] = (0.0, 0)  # loss sum and count since the last log record

    def init_from(self, run: Path) -> None:
        """Load a finished run's exported weights into the model and the EMA (optimizer starts fresh)."""
        from safetensors.torch import load_file

        facts = json.loads((run / FACTS).read_text())
        if facts["model_config"] != self.model_config.to_dict():
            raise ValueError(f"{run} was trained with another model config")
        for name in ("transformer", "text_encoder"):
            self.net[name].load_state_dict(load_file(str(run / f"{name}.safetensors")), strict=True)
        self.ema.copy_from(self.net)
        self.previous_phases = [
            *facts.get("previous_phases", []),
            {k: v for k, v in facts.items() if k != "previous_phases"},
        ]

    # -- data ------------------------------------------------------------------------------------
    def ids(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self._ids_cache]
        if missing:
            enc = self.tokenizer(missing, padding="max_length", max_length=self.model_config.max_length)
            self._ids_cache.update(zip(missing, enc["input_ids"], strict=True))
        return torch.tensor([self._ids_cache[c] for c in captions], dtype=torch.long)

    def pixels(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(images)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0

    # -- objective -------------------------------------------------------------------------------
    def loss(self, x0: torch.Tensor, ids: torch.Tensor, step: int) -> torch.Tensor:
        gen = torch.Generator(device=self.device).manual_seed(step_seed(self.cfg.seed, step))
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=gen, device=self.device)
        u = torch.randn((b,), generator=gen, device=self.device)
        t = torch.sigmoid(self.cfg.logit_mean + self.cfg.logit_std * u)
        tt = t.view(b, 1, 1, 1)
        xt = (1 - tt) * x0 + tt * noise
        target = noise - x0
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            hidden, pooled = encode(self.net["text_encoder"], ids, self.eos_id, check=False)
            pred = self.transformer_fn(
                hidden_states=xt,
                timestep=t * 1000.0,
                encoder_hidden_states=hidden,
                pooled_projections=pooled,
                return_dict=False,
            )[0]
        return F.mse_loss(pred.float(), target)

    def train_step(self, images: np.ndarray, captions: list[str]) -> torch.Tensor:
        x0 = self.pixels(images)
        ids = self.ids(captions)
        if self.device.type == "cuda":  # a pageable host->device copy would synchronise the stream
            ids = ids.pin_memory()
        ids = ids.to(self.device, non_blocking=True)
        lr = lr_at(self.step, self.total_steps, self.cfg)
        for g in self.opt.param_groups:
            g["lr"] = lr
        while True:
            self.opt.zero_grad(set_to_none=True)
            try:
                loss = self.loss(x0, ids, self.step)
                loss.backward()
                break
            except Exception as err:  # a compiler failure must not cost the run: fall back to eager
                if not self.compiled:
                    raise
                print(f"torch.compile failed ({type(err).__name__}: {err}); continuing in eager mode", flush=True)
                self.transformer_fn = self.net["transformer"]
                self.compiled = False
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.ema.update(self.net)
        self.step += 1
        return loss.detach()

    # -- checkpoint ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": 2,
            "model_config": self.model_config.to_dict(),
            "train_config": self.cfg.to_dict(),
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "total_steps": -1 if self.total_steps is None else self.total_steps,
            "elapsed": self.elapsed,
            "log": json.dumps(self.log),
            "chunks": json.dumps(self.chunks),
            "previous_phases": json.dumps(self.previous_phases),
            "pending_loss": list(self.pending_loss),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != 2:
            raise ValueError(f"unknown checkpoint format {state.get('format')!r}")
        if state["model_config"] != self.model_config.to_dict() or state["train_config"] != self.cfg.to_dict():
            raise ValueError("checkpoint was written with other configs; pass the same options to resume")
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        self.total_steps = None if int(state["total_steps"]) < 0 else int(state["total_steps"])
        self.elapsed = float(state["elapsed"])
        self.log = json.loads(state["log"])
        self.chunks = json.loads(state["chunks"])
        self.previous_phases = json.loads(state["previous_phases"])
        self.pending_loss = (float(state["pending_loss"][0]), int(state["pending_loss"][1]))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    def ema_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """EMA weights of each module, float16, contiguous, on the CPU (the exported files)."""
        module = self.ema.module
        out = {}
        for name in ("transformer", "text_encoder"):
            sd = module[name].state_dict()
            out[name] = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in sd.items()}
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def export_weights(trainer: Trainer, out: Path) -> dict[str, str]:
    """Write the EMA weights as float16 safetensors; returns {module: file name}."""
    files = {}
    te_sd = trainer.ema_weights()
    for name, sd in te_sd.items():
        # T5 ties its input embedding to encoder.embed_tokens; safetensors refuses shared storage
        sd = {k: v.clone() for k, v in sd.items()}
        fname = f"{name}.safetensors"
        save_file(sd, str(out / fname), metadata={"format": "pt", "module": name})
        files[name] = fname
    return files


def write_facts(trainer: Trainer, out: Path, extra: dict | None = None) -> dict:
    net = trainer.net
    facts = {
        "model_config": trainer.model_config.to_dict(),
        "train_config": trainer.cfg.to_dict(),
        "parameters": {
            "transformer": count_parameters(net["transformer"]),
            "text_encoder": count_parameters(net["text_encoder"]),
        },
        "step": trainer.step,
        "total_steps": trainer.total_steps,
        "train_seconds": trainer.elapsed,
        "chunks": trainer.chunks,
        "loss_curve": trainer.log,
        "previous_phases": trainer.previous_phases,
        **(extra or {}),
    }
    (out / FACTS).write_text(json.dumps(facts, indent=1))
    return facts


@contextlib.contextmanager
def tf32_on_cuda(device: torch.device) -> Iterator[None]:
    """TF32 matmuls and convolutions inside the block on CUDA, and the caller's settings restored after
    (torch has a scoped switch for cuDNN, ``cudnn.flags``, but none for matmuls, hence by hand)."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=True):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def train(*args: Any, **kwargs: Any) -> Trainer:
    """Train one chunk (``_train``: its arguments and docstring), with TF32 scoped to the chunk on CUDA."""
    with tf32_on_cuda(torch.device(kwargs.get("device", "cpu"))):
        return _train(*args, **kwargs)


def _train(
    out: str | Path,
    model_config: OrganismConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    steps: int | None = None,
    minutes: float = MAX_CHUNK_MINUTES,
    resume: bool = False,
    device: str = "cpu",
    compile: bool = False,
    workers: int = 0,
    stop_after: int | None = None,
    init: str | Path | None = None,
    budget_minutes: float | None = None,
    verbose: bool = True,
) -> Trainer:
    """Train one chunk (module docstring); ``steps=None`` means auto. ``stop_after`` ends the chunk after
    that many steps (tests). ``init`` starts a new run from the exported weights of a finished run
    (a second training phase; its facts are kept under ``previous_phases``). ``budget_minutes``: with
    auto steps, size the run to that much training-loop time over all its chunks (the first chunk
    sets the step count, later chunks resume to it); without it, to this chunk. Returns the trainer."""
    model_config = model_config or OrganismConfig()
    train_config = train_config or TrainConfig()
    if not 0 < minutes <= MAX_CHUNK_MINUTES:
        raise ValueError(f"a chunk lasts at most {MAX_CHUNK_MINUTES} minutes, got {minutes}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    start = time.monotonic()
    deadline = start + 60.0 * minutes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT
    dev = torch.device(device)
    trainer = Trainer(model_config, train_config, dev, compile=compile)
    if resume:
        if not ckpt.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        trainer.load(ckpt)
    elif ckpt.exists():
        raise FileExistsError(f"{ckpt} exists: pass --resume to continue it, or use a new --out")
    else:
        trainer.previous_phases = []
        if init is not None:
            trainer.init_from(Path(init))
    if steps is not None:
        if trainer.total_steps is not None and trainer.total_steps != steps:
            raise ValueError(f"checkpoint trains to {trainer.total_steps} steps, not {steps}")
        trainer.total_steps = steps
    say = print if verbose else (lambda *a, **k: None)
    say(
        f"organism: transformer {count_parameters(trainer.net['transformer']) / 1e6:.2f}M + text encoder "
        f"{count_parameters(trainer.net['text_encoder']) / 1e6:.2f}M params; step {trainer.step}, "
        f"total {trainer.total_steps or 'auto'}, device {dev}, compile {compile}",
        flush=True,
    )
    stream = BatchStream(train_config.seed, trainer.step, train_config.batch_size, train_config.data, workers)
    chunk_start_step = trainer.step
    cal = calibration_window(train_config.warmup_steps)
    loss_sum = torch.tensor(trainer.pending_loss[0], dtype=torch.float32, device=dev)
    n_sum = trainer.pending_loss[1]
    wait = 0.0
    t_cal: dict[int, float] = {}
    loop_start = time.monotonic()
    last_log = loop_start
    try:
        while trainer.total_steps is None or trainer.step < trainer.total_steps:
            if time.monotonic() > deadline or (
                stop_after is not None and trainer.step - chunk_start_step >= stop_after
            ):
                break
            t0 = time.monotonic()
            images, captions = stream.next()
            wait += time.monotonic() - t0
            debug = dev.type == "cuda" and trainer.step - chunk_start_step == 10
            if debug:  # report any host-device synchronisation inside one training step
                torch.cuda.set_sync_debug_mode("warn")
            loss_sum += trainer.train_step(images, captions)
            if debug:
                torch.cuda.set_sync_debug_mode("default")
            n_sum += 1
            k = trainer.step - chunk_start_step
            if trainer.total_steps is None and k in cal:
                _sync(dev)
                t_cal[k] = time.monotonic()
                if k == cal[1]:
                    rate = (cal[1] - cal[0]) / (t_cal[cal[1]] - t_cal[cal[0]])
                    reserve = 20.0
                    if budget_minutes is None:
                        remaining = deadline - time.monotonic() - reserve
                    else:  # the whole run's loop time, this chunk's part included
                        remaining = 60.0 * budget_minutes - trainer.elapsed - (time.monotonic() - loop_start) - reserve
                    n = trainer.step + int(0.97 * rate * max(0.0, remaining))
                    trainer.total_steps = max(n, trainer.step + 1)
                    say(f"auto steps: {rate:.1f} steps/s -> total_steps = {trainer.total_steps}", flush=True)
            if trainer.step % train_config.log_every == 0:
                now = time.monotonic()
                mean = float(loss_sum) / n_sum
                if not math.isfinite(mean):
                    raise FloatingPointError(f"loss is {mean} at step {trainer.step}")
                rec = {
                    "step": trainer.step,
                    "loss": round(mean, 6),
                    "lr": lr_at(trainer.step - 1, trainer.total_steps, train_config),
                    "seconds": round(trainer.elapsed + now - loop_start, 2),
                }
                trainer.log.append(rec)
                say(
                    f"step {trainer.step}: loss {mean:.4f} lr {rec['lr']:.2e} "
                    f"({train_config.log_every / (now - last_log):.1f} steps/s, data wait {wait:.1f}s)",
                    flush=True,
                )
                last_log = now
                loss_sum.zero_()
                n_sum = 0
    finally:
        stream.close()
    trainer.pending_loss = (float(loss_sum), n_sum)
    loop_seconds = time.monotonic() - loop_start
    trainer.elapsed += loop_seconds
    trainer.chunks.append(
        {
            "start_step": chunk_start_step,
            "end_step": trainer.step,
            "loop_seconds": round(loop_seconds, 2),
            "process_seconds": round(time.monotonic() - start, 2),
            "data_wait_seconds": round(wait, 2),
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
            "compiled": trainer.compiled,
        }
    )
    trainer.save(ckpt)
    done = trainer.total_steps is not None and trainer.step >= trainer.total_steps
    extra = {"done": done, "versions": {"torch": torch.__version__, "python": sys.version.split()[0]}}
    if done:
        extra["weights"] = export_weights(trainer, out)
    write_facts(trainer, out, extra)
    say(
        f"chunk: steps {chunk_start_step}->{trainer.step} in {loop_seconds:.1f}s; "
        + ("done, weights exported" if done else "checkpointed; continue with --resume"),
        flush=True,
    )
    return trainer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m interp.organism.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run directory (checkpoint, training.json, weights)")
    ap.add_argument("--steps", default="auto", help="total steps N, or 'auto' (as many as fit this chunk)")
    ap.add_argument("--minutes", type=float, default=MAX_CHUNK_MINUTES, help="chunk length, at most 8")
    ap.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the transformer (falls back to eager)")
    ap.add_argument("--workers", type=int, default=max(0, min(14, (os.cpu_count() or 1) - 2)))
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps")
    ap.add_argument("--init", default=None, help="start from the exported weights of this finished run")
    ap.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="with --steps auto: training-loop minutes of the whole run over all chunks (default: this chunk)",
    )
    ap.add_argument("--tiny", action="store_true", help="a tiny model (smoke tests on CPU)")
    args = ap.parse_args(argv)
    tc = TrainConfig()
    overrides = {
        k: v
        for k, v in {
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "warmup_steps": args.warmup,
        }.items()
        if v is not None
    }
    tc = replace(tc, **overrides)
    mc = OrganismConfig()
    if args.tiny:
        mc = OrganismConfig(num_layers=2, num_heads=2, head_dim=16, text_dim=32, text_heads=2, text_ff=64)
    steps = None if args.steps == "auto" else int(args.steps)
    train(
        args.out,
        mc,
        tc,
        steps=steps,
        minutes=args.minutes,
        resume=args.resume,
        device=args.device,
        compile=args.compile,
        workers=args.workers,
        init=args.init,
        budget_minutes=args.budget_minutes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
