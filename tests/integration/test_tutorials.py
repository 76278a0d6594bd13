"""Every tutorial script runs to the end on the built-in pipelines (the docs include them verbatim).

Each script runs in a fresh temporary working directory (they write under ``tutorial_out/``) through
``runpy``, as ``__main__``, so a failing assertion or an exception inside a tutorial fails its test.
Tutorials are collected by glob: a new script under ``tutorials/`` is tested without editing this file.
``sweep_many_gpus`` starts two more Python processes under ``torchrun`` (about 20 s of CPU on top of
the others' few seconds), so it runs with ``-m slow``; by default it is only compiled.
"""

from __future__ import annotations

import importlib.util
import py_compile
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((ROOT / "tutorials").glob("*.py"))
NEEDS = {"nnsight_sites.py": "nnsight"}  # tutorial -> optional package it needs
SLOW = {"sweep_many_gpus.py"}


def _param(path: Path):
    marks = [pytest.mark.slow] if path.name in SLOW else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 5, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_compiles(script: Path, tmp_path: Path) -> None:
    py_compile.compile(str(script), cfile=str(tmp_path / "t.pyc"), doraise=True)


@pytest.mark.parametrize("script", [_param(p) for p in TUTORIALS])
def test_tutorial_runs(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = NEEDS.get(script.name)
    if package is not None and importlib.util.find_spec(package) is None:
        pytest.skip(f"{script.name} needs {package} (pip install 'interp[{package}]')")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert (tmp_path / "tutorial_out").exists() or script.name in NEEDS
