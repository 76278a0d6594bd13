"""``interp analyze``: listing, names and paper labels, exit codes, messages naming what is missing."""

import argparse

import pytest

from interp.analysis import ANALYSES, resolve
from interp.analysis.cli import add_analyze_command, list_text, main, script_main
from tests.fixtures.analysis_store import default_conditions, synthetic_store


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "small.zarr"
    keep = {"baseline", "noop_kernel", "sink_k1", "random_k1"}
    synthetic_store(path, n_prompts=4, conditions=[c for c in default_conditions() if c.name in keep])
    return path


def test_list_names_every_analysis_and_its_paper_results(capsys):
    assert main(["--list"]) == 0
    text = capsys.readouterr().out
    assert text == list_text() + "\n"
    for a in ANALYSES:
        assert a.name in text
    for n in range(1, 21):
        assert f"Table {n}:" in text or f"Table {n}," in text, n
    for n in range(2, 9):
        assert f"Figure {n}" in text, n


def test_resolve_by_name_and_label():
    assert resolve("table2").name == "interventions"
    assert resolve("Table 11").name == "dose" and resolve("figure04").name == "dose"
    assert resolve("table1").name == resolve("figure2").name == "h1_dynamics"
    with pytest.raises(KeyError, match="unknown analysis 'table99'"):
        resolve("table99")


def test_subcommand_wires_into_a_parser():
    parser = argparse.ArgumentParser(prog="interp")
    sub = parser.add_subparsers(dest="command")
    add_analyze_command(sub)
    args = parser.parse_args(["analyze", "S.zarr", "--out", "o", "--only", "table2", "--margin", "clip_t=0.02"])
    assert args.store == "S.zarr" and args.only == ["table2"] and callable(args.func)


def test_only_writes_the_asked_tables(small_store, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(small_store), "--out", str(out), "--only", "table17", "table3", "--resamples", "99"])
    assert code == 0, capsys.readouterr().err
    assert (out / "table17_noop.md").exists() and (out / "table03_sink_vs_random.csv").exists()
    assert (out / "index.md").exists()
    assert "ok       noop" in capsys.readouterr().out


def test_exit_codes_and_messages(small_store, tmp_path, capsys):
    assert main([str(small_store), "--out", str(tmp_path), "--only", "table99"]) == 2
    assert "unknown analysis 'table99'" in capsys.readouterr().err
    assert main([str(small_store), "--out", str(tmp_path), "--only", "table5", "--resamples", "99"]) == 2
    err = capsys.readouterr().err
    assert "value_path: the store lacks condition 'value-path edit (replace_values)'" in err
    assert main([str(small_store), "--out", str(tmp_path), "--only", "table2", "--margin", "clip_t"]) == 2
    assert "METRIC=VALUE" in capsys.readouterr().err
    assert main([]) == 2


def test_script_entry_point(small_store, tmp_path, capsys):
    assert script_main("noop", [str(small_store), "--out", str(tmp_path), "--resamples", "99"]) == 0
    assert (tmp_path / "table17_noop.md").read_text().startswith("## Table 17")


def test_analyses_folder_has_one_entry_point_per_registered_analysis():
    """``analyses/`` holds only entry points: each script runs one analysis of ``interp.analysis`` by name
    (the same as ``interp analyze --only NAME``), and every registered analysis has its script."""
    import re
    from pathlib import Path

    from interp.analysis.registry import ANALYSES

    folder = Path(__file__).resolve().parents[2] / "analyses"
    named = []
    for script in sorted(folder.glob("*.py")):
        if script.name == "run_all.py":
            continue
        names = re.findall(r'script_main\("([a-z0-9_]+)"\)', script.read_text(encoding="utf-8"))
        assert len(names) == 1, f"{script.name} is not a one-analysis entry point"
        named.extend(names)
    assert sorted(named) == sorted(a.name for a in ANALYSES)
