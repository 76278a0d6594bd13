"""Resume after SIGKILL and distribution under torchrun: the store always ends equal to one uninterrupted
single-process run (values, images, coordinates, attributes; only wall-clock timings differ).

Each sweep runs in a subprocess (a fault hook injected into the runner SIGKILLs the
process itself, ``_sweep_kill.py``; torchrun starts its own),
all with one torch thread, so the numerics are those of the reference run.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from interp.sweep import load_config, run
from tests.integration._sweep_helpers import (
    N_SAMPLES,
    assert_stores_equal,
    done_flags,
    env,
    kill_cmd,
    open_raw,
    partial_files,
    reference,
    run_killed,
    sweep_cmd,
    tiny_sd3,
)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    config, store, result = reference(tmp_path_factory)
    return config, store, result.wall_s


def _resume_in_process(config, store):
    """The completing run needs no fresh process: run in this one (same numerics, no import cost)."""
    return run(load_config(config), store=store, pipe=tiny_sd3(), progress=False, log=lambda s: None)


def _gen_seconds(store):
    return open_raw(store)["gen_seconds"].values


def test_sigkill_at_chosen_points_then_resume_equals_uninterrupted(ref, tmp_path):
    config, ref, _ = ref
    store = tmp_path / "s.zarr"
    finished: dict[int, float] = {}
    # inside a sample's write, between a sample's data and its done flag, between samples
    for point, sample in [("mid_data", 4), ("before_done", 10), ("after_done", 17)]:
        r = run_killed(config, store, f"{point}:{sample}")
        assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
        done = done_flags(store)
        first_pending = sample + 1 if point == "after_done" else sample
        assert done[:first_pending].all() and not done[first_pending:].any(), (point, done)
        secs = _gen_seconds(store)
        assert all(secs[i] == v for i, v in finished.items()), "a finished sample was recomputed"
        finished.update({int(i): secs[i] for i in np.flatnonzero(done)})
    # what a kill inside a chunk write leaves behind: a stray partial chunk of a pending sample
    stray = store / "max_mass" / "c" / "20" / "0" / "0.deadbeef.partial"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"half a chunk")
    result = _resume_in_process(config, store)
    assert (result.generated, result.skipped) == (N_SAMPLES - len(finished), len(finished))
    secs = _gen_seconds(store)
    assert all(secs[i] == v for i, v in finished.items()), "a finished sample was recomputed"
    assert partial_files(store) == []
    assert_stores_equal(store, ref)


@pytest.mark.slow
def test_sigkill_at_random_times_then_resume_equals_uninterrupted(ref, tmp_path):
    """Kills at random moments: once during start-up (before the store exists), then at random times
    after the store appeared (inside generation, writes, flags); then one run completes the store."""
    config, ref, _ = ref
    store = tmp_path / "s.zarr"
    rng = random.Random(20260512)
    progress = []
    for round_ in range(4):
        proc = subprocess.Popen(
            sweep_cmd(config, store), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if round_ == 0:
            time.sleep(rng.uniform(0.5, 2.0))
        else:  # wait until this process has written a sample, then kill it at a random moment
            before, deadline = max(progress[-1], 0), time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if (store / "zarr.json").exists() and done_flags(store).sum() > before:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        progress.append(int(done_flags(store).sum()) if (store / "zarr.json").exists() else -1)
    assert sum(0 < p < N_SAMPLES for p in progress) >= 2, progress  # kills landed mid-sweep
    result = _resume_in_process(config, store)
    assert result.generated + result.skipped == N_SAMPLES
    assert partial_files(store) == []
    assert_stores_equal(store, ref)


def _torchrun(config, store, nproc=2, faults=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    if faults is None:
        cmd += sweep_cmd(config, store)[1:]  # "-m interp.sweep.cli sweep CONFIG --store STORE --no-progress"
    else:
        cmd += kill_cmd(config, store, faults)[1:]  # the kill script with its fault hook
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)


def test_two_ranks_under_torchrun_fill_one_store_equal_to_one_process(ref, tmp_path):
    config, ref, _ = ref
    store = tmp_path / "s.zarr"
    r = _torchrun(config, store)
    assert r.returncode == 0, r.stderr[-3000:]
    half = N_SAMPLES // 2
    assert f"rank 0/2: generated {half} samples" in r.stderr and f"rank 1/2: generated {half} samples" in r.stderr
    assert_stores_equal(store, ref)


@pytest.mark.slow
def test_a_killed_torchrun_sweep_is_completed_by_one_process(ref, tmp_path):
    """Rank 1 dies between a sample's data and its flag (torchrun then stops rank 0); a rerun with
    another number of processes completes the store."""
    config, ref, _ = ref
    store = tmp_path / "s.zarr"
    r = _torchrun(config, store, faults="before_done:10")  # prompt 3: rank 1's
    assert r.returncode != 0
    done = done_flags(store)
    assert not done[10] and not done.all()  # rank 1's sample in flight is lost, nothing else is wrong
    result = _resume_in_process(config, store)
    assert result.generated == N_SAMPLES - done.sum()
    assert_stores_equal(store, ref)
