"""Run one sweep with several processes (the way 8 GPUs or several nodes run it), and resume it.

Run from anywhere: ``python tutorials/sweep_many_gpus.py`` (under a minute on CPU, no download). It
writes a small sweep config to ``tutorial_out/sweep.toml``, checks it, shows which prompts each of 8
ranks would take, runs it with 2 processes under ``torchrun`` (CPU, gloo), and then runs it again in
one process to show that a finished (or half-finished) store is completed, never redone. Shown in
docs/howto/distributed.md.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import interp
from interp.sweep import load_config, run
from interp.sweep.distributed import DistInfo
from interp.sweep.runner import load_prompts

OUT = Path("tutorial_out").resolve()
OUT.mkdir(exist_ok=True)
STORE = OUT / "sweep.zarr"
CONFIG = OUT / "sweep.toml"

# 1. A config: the same file runs on a laptop, on 8 GPUs and on several nodes.
CONFIG.write_text(
    f"""
version = 1
name = "tutorial_sweep"
store = "{STORE.as_posix()}"

[model]
id = "tiny:sd3"            # or a hub id / local folder: stabilityai/stable-diffusion-3-medium-diffusers
device = "auto"            # cuda:LOCAL_RANK when CUDA is available, else cpu

[sampler]
steps = 2
guidance_scale = 5.0
max_sequence_length = 32

[prompts]
source = "geneval"
n = 4                      # balanced by GenEval tag, seeded

[[records]]
stats = ["mass", "entropy"]
layers = "all"
queries = "image"

[[conditions]]
name = "baseline"

[[conditions]]
name = "L2_top1"
plan = [{{ fn = "mask_topk", layer = 0.5, k = 1, by = "image" }}]
"""
)
cfg = load_config(CONFIG)  # every field checked before anything runs (`interp sweep --check` also loads the model)

# 2. The split: rank r of w takes the prompts at positions p with p % w == r, all conditions of a prompt
#    in one worker (baseline first). No communication, and a rerun with another world size still
#    covers each prompt exactly once.
prompts, _ = load_prompts(cfg)  # the sweep's prompt list, in its order
for rank in range(8):
    mine = [p.text for pos, p in enumerate(prompts) if DistInfo(rank=rank, world_size=8).owns(pos)]
    print(f"rank {rank} of 8: {mine if mine else 'nothing (more ranks than prompts)'}")

# 3. Two processes under torchrun, each writing its own samples into the one store.
if not (STORE / "zarr.json").exists():
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "interp.cli", "sweep", str(CONFIG), "--no-progress"]
    print("$", " ".join(cmd[1:]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env)

# 4. Running it again (any number of processes) skips what is done and completes the rest.
again = run(cfg, progress=False)
print(f"second run: generated {again.generated}, already done {again.skipped}")
assert again.generated == 0 and again.skipped == again.n_samples

ds = interp.open_store(STORE)
assert bool(ds.done.all())
print(f"{ds.sizes['sample']} samples: conditions {sorted(set(map(str, ds.condition.values)))}")
assert np.isfinite(ds.max_mass.values).any()
