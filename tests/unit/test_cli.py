"""The ``interp`` command line: user errors are one line with the documented exit status (docs/cli.md),
``--overwrite`` deletes only interp stores and only after every other check, ``--version``, and a
start-up that loads no heavy library for ``--help``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zarr

import interp
from interp import cli
from interp.cli import DEMO_MODELS, EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.fixtures.analysis_store import default_conditions, synthetic_store

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "transformers", "xarray", "zarr", "pandas", "matplotlib", "scipy", "numpy")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def _user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "important"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    return folder


@pytest.mark.parametrize("model", ["sd33", "sd3"])
def test_overwrite_never_deletes_a_folder_interp_did_not_write(tmp_path, capsys, model):
    """The issue's command: an unknown model fails first (argparse), a valid one reaches the guard."""
    folder = _user_folder(tmp_path)
    with pytest.raises(SystemExit) as info:  # argparse exits; main() returns for everything else
        code = main(["demo", "--model", model, "--overwrite", "--store", str(folder)])
        raise SystemExit(code)
    err = _one_line(capsys.readouterr().err)
    print(f"\n{model}: {err}")
    assert info.value.code == EXIT_USAGE
    assert (folder / "thesis.txt").read_text() == "years of work"
    if model == "sd3":
        assert f"refusing to delete {folder}: it is a folder that is not an interp store (1 entry" in err
    else:
        assert "invalid choice: 'sd33'" in err


def test_overwrite_refuses_a_plain_zarr_group_and_a_file(tmp_path, capsys):
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("notes")
    for path, what in ((plain, "a Zarr store that interp did not write"), (a_file, "a file")):
        assert main(["demo", "--model", "sd3", "--overwrite", "--store", str(path)]) == EXIT_USAGE
        assert f"it is {what}" in _one_line(capsys.readouterr().err)
    assert (plain / "zarr.json").exists() and a_file.read_text() == "notes"


def test_an_existing_store_needs_overwrite(tmp_path, capsys):
    folder = _user_folder(tmp_path)
    assert main(["demo", "--model", "sd3", "--store", str(folder)]) == EXIT_USAGE
    assert "exists; pass --overwrite" in _one_line(capsys.readouterr().err)


def test_unknown_model_lists_every_valid_name_including_the_organism(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--model", "nonsense"])
    err = _one_line(capsys.readouterr().err)
    print(f"\n{err}")
    assert info.value.code == EXIT_USAGE
    assert ("organism", *interp.pipelines.SUPPORTED_TINY) == DEMO_MODELS
    listed = re.search(r"choose from ([^)]*)\)", err).group(1)
    assert [m.strip(" '") for m in listed.split(",")] == list(DEMO_MODELS)


def test_score_without_weights_is_one_line(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    synthetic_store(store, n_prompts=2, conditions=default_conditions()[:1])
    empty = tmp_path / "weights"
    empty.mkdir()
    code = main(["score", str(store), "--metrics", "clip_t", "--weights-dir", str(empty), "--device", "cpu"])
    err = _one_line(capsys.readouterr().err)
    print(f"\n{err}")
    assert code == EXIT_USAGE
    assert err.startswith("interp score: Missing weight file") and f"expected at {empty}" in err
    assert "--weights-dir" in err
    with pytest.raises(SystemExit) as info:
        main(["score", str(store)])
    assert info.value.code == EXIT_USAGE
    assert "the following arguments are required: --metrics" in _one_line(capsys.readouterr().err)


def test_analyze_and_sweep_user_errors_are_one_line(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing.zarr")]) == EXIT_USAGE
    assert "is not a Zarr v3 store (it does not exist)" in _one_line(capsys.readouterr().err)
    assert main(["sweep", str(tmp_path / "missing.toml")]) == EXIT_USAGE
    assert "does not exist" in _one_line(capsys.readouterr().err)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"interp {interp.__version__}"


def test_only_expected_user_errors_become_one_line():
    """The listed user errors map to their exit status; anything else (a bug) keeps its traceback."""
    from interp.analysis.completeness import IncompleteStore
    from interp.store.lock import StoreLocked
    from interp.store.safety import StoreError

    assert cli._user_error(StoreError("x")) == cli._user_error(IncompleteStore("x")) == EXIT_USAGE
    assert cli._user_error(StoreLocked("x")) == EXIT_BUSY
    assert cli._user_error(ZeroDivisionError()) is None and cli._user_error(KeyError("x")) is None
    for module, name, _ in cli.USER_ERRORS:  # every listed class exists
        assert isinstance(getattr(__import__(module, fromlist=[name]), name), type), (module, name)


def test_exit_codes_are_the_documented_ones():
    text = (ROOT / "docs" / "cli.md").read_text()
    table = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", text, flags=re.M))
    assert {int(k) for k in table} == {EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, 130}
    assert "another process" in table[str(EXIT_BUSY)] and "user error" in table[str(EXIT_USAGE)]
    nav = (ROOT / "mkdocs.yml").read_text()
    assert "cli.md" in nav


@pytest.mark.parametrize("command", ["", "demo", "sweep", "score", "analyze", "findings"])
def test_help_loads_no_heavy_library(command):
    code = (
        "import sys, contextlib, io\n"
        "from interp.cli import main\n"
        f"argv = [{command!r}, '--help'] if {command!r} else ['--help']\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(argv)\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"`interp {command} --help` imports {out.stdout.strip()}"


def test_help_takes_under_two_seconds():
    """Wall time of ``python -m interp.cli --help`` (best of 3: the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "interp.cli", "--help"], capture_output=True, cwd=ROOT, env=_env(), check=True
        )
        best = min(best, time.perf_counter() - t0)
    assert best < 2.0, best


def test_lazy_packages_export_every_listed_name():
    import importlib

    for name in ("interp", "interp.analysis", "interp.sweep", "interp.store"):
        pkg = importlib.import_module(name)
        assert set(pkg.__all__) == set(pkg._LAZY), name
        for attr in pkg.__all__:
            assert getattr(pkg, attr) is not None, (name, attr)
