"""``interp view`` on bad input: one clear line and exit status 2 before anything is served, or a message
in the view (a store without maps, a request for something the store lacks), never a traceback. The
stores are the SYNTHETIC fixture (tests/fixtures/analysis_store.py) and folders the tests make."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from interp.cli import main
from interp.view import api
from interp.view.source import StoreSource, ViewError
from tests.fixtures.analysis_store import default_conditions, synthetic_store


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    path = tmp_path_factory.mktemp("view_cli") / "synth.zarr"
    conds = [c for c in default_conditions() if c.name in ("baseline", "sink_k1")]
    synthetic_store(path, n_prompts=4, conditions=conds)
    return path


def _run(capsys, *argv: str) -> tuple[int, str]:
    status = main(["view", *argv])
    return status, capsys.readouterr().err


def test_missing_path(tmp_path, capsys):
    status, err = _run(capsys, str(tmp_path / "nope.zarr"), "--export", str(tmp_path / "r.html"))
    assert status == 2
    assert "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_not_a_store(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    status, err = _run(capsys, str(folder), "--export", str(tmp_path / "r.html"))
    assert status == 2
    assert "is not an interp store" in err


def test_zarr_group_without_samples(tmp_path, capsys):
    path = tmp_path / "empty.zarr"
    zarr.open_group(str(path), mode="w", zarr_format=3)
    status, err = _run(capsys, str(path), "--export", str(tmp_path / "r.html"))
    assert status == 2
    assert "interp view:" in err and "Traceback" not in err


def test_store_without_finished_samples(synth, tmp_path, capsys):
    import shutil

    path = tmp_path / "unfinished.zarr"
    shutil.copytree(synth, path)
    done = zarr.open_array(str(path / "done"), mode="r+")
    done[:] = False
    status, err = _run(capsys, str(path), "--export", str(tmp_path / "r.html"))
    assert status == 2
    assert f"has no finished sample yet (0 of {done.shape[0]} done)" in err


def test_half_finished_store_shows_its_finished_samples(synth, tmp_path):
    import shutil

    path = tmp_path / "half.zarr"
    shutil.copytree(synth, path)
    done = zarr.open_array(str(path / "done"), mode="r+")
    flags = np.ones(done.shape[0], bool)
    flags[-3:] = False
    done[:] = flags
    src = StoreSource(path)
    assert src.n_done == flags.sum() and src.n_total == flags.size
    html = api.answer([src], "overview", {})["divs"]["overview_html"]
    assert f"{flags.sum()} samples done, 3 pending (half-finished store)" in html
    assert "SYNTHETIC" in html


def test_store_without_maps_says_how_to_record_them(synth):
    payload = api.answer([StoreSource(synth)], "maps", {})
    assert "has no attention maps" in payload["divs"]["map_html"]
    assert "record(&#x27;maps&#x27;" in payload["divs"]["map_html"]  # escaped HTML


def test_a_bad_request_is_a_message_not_an_error(synth):
    src = StoreSource(synth)
    out = api.answer([src], "cell", {"site": "no.such.site", "step": "0"})
    assert "cannot show this" in out["divs"]["cell_html"]
    out = api.answer([src], "dynamics", {"store": "7"})
    assert "no store 7" in out["divs"]["dyn_note"]
    with pytest.raises(ViewError, match="no view"):
        api.answer([src], "nothing", {})


def test_edits_effect_is_the_analysis_effect(synth):
    """The view's paired effect is interp.analysis's, for the same store and condition."""
    from interp.analysis.config import AnalysisConfig
    from interp.analysis.context import Context
    from interp.analysis.effects import paired_effect

    src = StoreSource(synth)
    html = api.answer([src], "edits", {"condition": "sink_k1"})["divs"]["edit_html"]
    effect = paired_effect(Context(src.ds, AnalysisConfig()), "score_clip_t", "sink_k1", analysis="test")
    assert f"<td>{effect.estimate:.4g}</td><td>{effect.low:.4g}</td><td>{effect.high:.4g}</td>" in html


def test_export_writes_one_offline_file(synth, tmp_path, capsys):
    out = tmp_path / "report.html"
    status = main(["view", str(synth), "--export", str(out)])
    assert status == 0, capsys.readouterr().err
    text = out.read_text()
    assert "window.INTERP_PAYLOADS" in text
    assert "cdn.bokeh.org" not in text and "<script src=" not in text.replace('<script src="data:', "")
    payloads = json.loads(text.split("window.INTERP_PAYLOADS = ", 1)[1].split(";</script>", 1)[0])
    assert "overview?store=0" in payloads


def test_serve_prints_its_address_and_serves_the_page(synth):
    """``interp view STORE --port 0`` as a user runs it: the address on stdout, the page and a payload there."""
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "interp.cli", "view", str(synth), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "serving 1 store(s) at http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as r:
            page = r.read().decode()
        assert "window.INTERP_CONFIG" in page and "window.INTERP_PAYLOADS = " not in page
        with urllib.request.urlopen(url + "api/overview?store=0", timeout=30) as r:
            assert "samples done" in json.loads(r.read())["divs"]["overview_html"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_overview_path_is_relative_below_the_current_folder(synth, tmp_path, monkeypatch):
    """Below the current folder the overview names the store relative to it; elsewhere, absolutely."""
    src = StoreSource(synth)
    monkeypatch.chdir(synth.parent.parent)
    html = api.answer([src], "overview", {})["divs"]["overview_html"]
    assert f"<p class='interp-path'>{synth.parent.name}/{synth.name}</p>" in html
    monkeypatch.chdir(tmp_path)  # another folder: the store is not below it
    html = api.answer([src], "overview", {})["divs"]["overview_html"]
    assert f"<p class='interp-path'>{os.path.abspath(synth)}</p>" in html
