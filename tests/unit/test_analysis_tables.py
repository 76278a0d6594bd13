"""Tables: markdown shows formatted cells (pipes escaped), CSV keeps every raw number."""

import math

import pandas as pd

from interp.analysis.tables import Column, Table, ci_cell, num, pval, stars


def test_formatting():
    assert num(float("nan")) == "–" and num(None) == "–" and num(0.0) == "0" and num(3) == "3"
    assert num(0.12345) == "0.1235" and num(1.2e-6) == "1.20e-06"
    assert pval(1e-7) == "<1e-4" and pval(0.0312) == "0.0312" and pval(math.nan) == "–"
    assert ci_cell({"x": 0.5, "x_low": 0.25, "x_high": 0.75}, "x") == "0.5000 [0.2500, 0.7500]"
    assert stars(0.01) == "*" and stars(0.001) == "**" and stars(1e-5) == "***" and stars(0.2) == ""


def test_write_markdown_and_csv(tmp_path):
    rows = [{"name": "a|b", "x": 1 / 3, "x_low": 0.1, "x_high": 0.5, "extra": 7}, {"name": "c", "x": float("nan")}]
    t = Table("t", "Title", [Column("name |", "name"), Column("x [CI]", fmt=lambda r: ci_cell(r, "x"))], rows, ["note"])
    md, csv = t.write(tmp_path)
    text = md.read_text()
    assert "| name \\| | x [CI] |" in text and "a\\|b" in text and "- note" in text
    assert text.count("\n|") == 4  # header, rule, two rows
    df = pd.read_csv(csv)
    assert list(df.columns) == ["name", "x", "x_low", "x_high", "extra"]
    assert df.loc[0, "x"] == 1 / 3 and math.isnan(df.loc[1, "x"])
