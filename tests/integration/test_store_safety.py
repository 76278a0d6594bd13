"""Data safety of stores (issue 17), as a user meets it: every refusal comes before generation, names the
difference or the path's problem in one line, and leaves the store (and the user's files) as they were.

The denoiser's calls are counted by a forward pre-hook of this test (an independent probe): a refusal
"before generation" means zero calls.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zarr

import interp
from interp import record, tracer
from interp.cli import EXIT_BUSY, EXIT_OK, EXIT_USAGE, main
from interp.store.safety import StoreError, remove_store
from tests.integration._sweep_helpers import env, tiny_sd3

PROMPT = "a photo of a cat"
KW = {**interp.pipelines.tiny_call_kwargs("sd3"), "num_inference_steps": 2, "height": 32, "width": 32}


def _trace(pipe, store, *, prompt=PROMPT, seed=0, condition="baseline", kw=None, allow_duplicate=False, **rec):
    with tracer.trace(
        pipe,
        prompt,
        seed=seed,
        store=store,
        condition=condition,
        allow_duplicate=allow_duplicate,
        **(KW if kw is None else kw),
    ) as t:
        record("mass", "entropy", **{"layers": [0, 1], **rec})
    return t


@contextlib.contextmanager
def denoiser_calls(pipe):
    calls: list[int] = []
    handle = pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd3()


@pytest.fixture()
def store(pipe, tmp_path):
    """A trace store of one sample (queries 'used', default top, layers 0 and 1, 2 steps, 32 px)."""
    path = tmp_path / "s.zarr"
    _trace(pipe, path)
    return path


MIXED = [
    # (what differs, trace options, message)
    ("query set", {"rec": {"queries": "image"}}, r"another plan \(differs in records\.0\.queries\)"),
    ("top", {"rec": {"top": 3}}, r"another plan \(differs in records\.0\.top\)"),
    ("sites", {"rec": {"layers": [0, 2]}}, r"another plan \(differs in records\.0\.layers\)"),
    ("steps", {"kw": {**KW, "num_inference_steps": 1}}, r"condition 'baseline' with other call\.num_inference_steps"),
    (
        "more steps",
        {"kw": {**KW, "num_inference_steps": 3}, "condition": "longer"},
        r"room for 2 denoising steps, this trace asks for 3",
    ),
    ("layout", {"kw": {**KW, "height": 64, "width": 64}}, r"condition 'baseline' with other call\.height, call\.width"),
]


@pytest.mark.parametrize(("what", "options", "message"), MIXED, ids=[m[0] for m in MIXED])
def test_a_trace_that_would_mix_meanings_is_refused_before_generation(pipe, store, what, options, message):
    before = _files(store)
    with denoiser_calls(pipe) as calls, pytest.raises(StoreError, match=message) as info:
        _trace(
            pipe,
            store,
            prompt="a red car",
            seed=7,
            kw=options.get("kw"),
            condition=options.get("condition", "baseline"),
            **options.get("rec", {}),
        )
    print(f"\n{what}: {info.value}")
    assert calls == [] and "\n" not in str(info.value)
    assert _files(store) == before


def test_another_model_is_refused_before_generation(store):
    other = interp.pipelines.tiny("sd3.5")
    with denoiser_calls(other) as calls, pytest.raises(StoreError, match=r"another model \(differs in model\.") as info:
        _trace(other, store, prompt="a red car", seed=7)
    print(f"\nmodel: {info.value}")
    assert calls == []


def test_the_same_sample_again_is_refused_unless_allowed(pipe, store):
    before = _files(store)
    with denoiser_calls(pipe) as calls, pytest.raises(StoreError, match="pass allow_duplicate=True") as info:
        _trace(pipe, store)
    print(f"\nduplicate: {info.value}")
    assert calls == [] and _files(store) == before
    assert f"already holds prompt {PROMPT!r} seed 0 under condition 'baseline'" in str(info.value)
    _trace(pipe, store, allow_duplicate=True)  # a replicate on purpose
    _trace(pipe, store, condition="other")  # another condition is another sample
    ds = interp.open_store(store)
    assert [str(c) for c in ds.condition.values] == ["baseline", "baseline", "other"]


def _read_only_dir(kind: str, tmp_path: Path) -> Path:
    """A folder a store cannot be created in, or skip: a chmod 555 folder (root ignores permission bits),
    or /sys, which refuses new folders also for root (EPERM, or EROFS where it is mounted read-only)."""
    if kind == "chmod 555":
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: permission bits do not stop root (the /sys case covers root)")
        return folder
    folder = Path("/sys")
    if not folder.is_dir() or not _cannot_create(folder):
        pytest.skip("/sys accepts new folders on this machine")
    return folder


def _cannot_create(folder: Path) -> bool:
    try:
        (folder / ".interp-test-probe").mkdir()
    except OSError:
        return True
    (folder / ".interp-test-probe").rmdir()
    return False


def _bad_locations(tmp_path: Path) -> list[tuple[str, Path, str]]:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    cases = [
        ("under a file", a_file / "s.zarr", "which is a file, not a folder"),
        ("plain Zarr group", plain, "a Zarr store that interp did not write"),
    ]
    return cases


READ_ONLY = ["chmod 555", "/sys"]


def test_trace_store_locations_are_checked_before_generation(pipe, tmp_path):
    for name, path, message in _bad_locations(tmp_path):
        with denoiser_calls(pipe) as calls, pytest.raises(StoreError, match=message) as info:
            _trace(pipe, path)
        print(f"\n{name}: {info.value}")
        assert calls == []
    assert not (tmp_path / "plain.zarr" / "max_mass").exists()


@pytest.mark.parametrize("kind", READ_ONLY)
def test_a_read_only_location_is_refused_before_generation(pipe, tmp_path, kind):
    path = _read_only_dir(kind, tmp_path) / "s.zarr"
    with denoiser_calls(pipe) as calls, pytest.raises(StoreError, match="is not writable") as info:
        _trace(pipe, path)
    print(f"\n{kind}: {info.value}")
    assert calls == []


SMALL_SWEEP = """
version = 1
name = "safety"
store = "unused.zarr"
[model]
id = "tiny:sd3"
[sampler]
steps = 2
guidance_scale = 5.0
height = 32
width = 32
max_sequence_length = 8
[prompts]
source = "geneval"
n = 2
subset_seed = 1
[run]
progress = false
[[records]]
stats = ["mass"]
layers = [0]
[[conditions]]
name = "baseline"
"""


@pytest.fixture()
def sweep_config(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SMALL_SWEEP)
    return path


def test_sweep_store_locations_are_one_line_errors_before_generation(tmp_path, sweep_config, capsys):
    for name, path, message in _bad_locations(tmp_path):
        code = main(["sweep", str(sweep_config), "--store", str(path), "--no-progress"])
        err = capsys.readouterr().err
        print(f"\n{name}: {err.strip()}")
        assert code == EXIT_USAGE and message in err, (name, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not Path(str(path) + ".lock").exists()


@pytest.mark.parametrize("kind", READ_ONLY)
def test_a_read_only_sweep_location_is_one_line(tmp_path, sweep_config, capsys, kind):
    path = _read_only_dir(kind, tmp_path) / "s.zarr"
    code = main(["sweep", str(sweep_config), "--store", str(path), "--no-progress"])
    err = capsys.readouterr().err
    print(f"\n{kind}: {err.strip()}")
    assert code == EXIT_USAGE and "is not writable" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _hold_lock(store: Path) -> subprocess.Popen:
    """Another process holding the store's writer lock, as a running sweep does."""
    code = (
        "import sys, time\n"
        "from interp.store.lock import writer_lock\n"
        "with writer_lock(sys.argv[1], \"sweep 'first'\"):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(store)], env=env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_sweep_is_refused_at_once_and_a_killed_writer_does_not_block(tmp_path, sweep_config, capsys):
    store = tmp_path / "s.zarr"
    holder = _hold_lock(store)
    try:
        t0 = time.perf_counter()
        code = main(["sweep", str(sweep_config), "--store", str(store), "--no-progress"])
        seconds = time.perf_counter() - t0
        err = capsys.readouterr().err
        print(f"\nsecond sweep ({seconds:.1f} s): {err.strip()}")
        assert code == EXIT_BUSY and len(err.strip().splitlines()) == 1
        assert f"is being written by another process: sweep 'first' (pid {holder.pid} on" in err
        assert not store.exists()  # nothing generated, nothing created
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crashed writer: the OS releases its lock
        holder.wait()
    assert main(["sweep", str(sweep_config), "--store", str(store), "--no-progress"]) == EXIT_OK
    ds = interp.open_store(store, done_only=False)
    assert ds.done.values.all() and ds.sizes["sample"] == 2


def test_remove_store_deletes_an_interp_store_and_nothing_else(store, tmp_path):
    folder = tmp_path / "important"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    for path in (folder, plain, folder / "thesis.txt"):
        with pytest.raises(StoreError, match="refusing to delete"):
            remove_store(path)
    assert (folder / "thesis.txt").read_text() == "years of work" and (plain / "zarr.json").exists()
    remove_store(store)
    assert not store.exists()
