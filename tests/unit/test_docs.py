"""The documentation cannot drift from the code.

- ``mkdocs build --strict`` passes (warnings are errors: broken links, missing snippet files, API
  entries that do not resolve), when mkdocs and its plugins are installed (extra ``interp[docs]``);
- the store schema page lists every variable of ``interp.store.schema.VARIABLES`` with its dimensions,
  and nothing the schema does not have, plus every static and token coordinate;
- the API page documents every public name of ``interp.__all__`` (a mkdocstrings entry that resolves to
  that very object);
- every tutorial is included in some page, every included file exists, every page is in the nav;
- the paper page lists every recipe under ``traces/paper/`` and every table and figure the analyses make.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import interp
from interp.statistics import CATALOGUE, statistic_of
from interp.store.schema import KEY_FIELDS, STATIC_COORDS, VARIABLES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPET = re.compile(r'^\s*--8<--\s+"([^"]+)"', re.MULTILINE)


def pages() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))}


def section(text: str, title: str) -> str:
    """The text of a ``## title`` section, up to the next ``## `` heading."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers")),
    reason="mkdocs, mkdocs-material and mkdocstrings[python] are not installed (pip install 'interp[docs]')",
)
def test_mkdocs_build_strict(tmp_path):
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "definitions.html").is_file()


def test_store_page_lists_every_schema_variable_with_its_dims():
    text = section((DOCS / "store.md").read_text(encoding="utf-8"), "Variables")
    documented: dict[str, tuple[str, ...]] = {}
    for cells in table_rows(text):
        match = re.fullmatch(r"`([a-z0-9_]+)`", cells[0])
        if match is None:
            continue
        name = match.group(1)
        assert name not in documented, f"{name} is listed twice in docs/store.md"
        documented[name] = tuple(d.strip() for d in cells[1].split(","))
    missing = sorted(set(VARIABLES) - set(documented))
    extra = sorted(set(documented) - set(VARIABLES))
    assert not missing, f"docs/store.md lacks schema variables {missing}"
    assert not extra, f"docs/store.md lists variables the schema does not have: {extra}"
    wrong = {n: (documented[n], VARIABLES[n].dims) for n in VARIABLES if documented[n] != VARIABLES[n].dims}
    assert not wrong, f"dims differ between docs/store.md and the schema (doc, schema): {wrong}"


def test_definitions_page_lists_exactly_the_catalogue():
    rows = table_rows(section((DOCS / "definitions.md").read_text(encoding="utf-8"), "Statistics"))
    documented = {}
    for cells in rows[1:]:
        name = re.fullmatch(r"`([a-z0-9_]+)`", cells[0]).group(1)
        variables = tuple(re.findall(r"`([a-z0-9_]+)`", cells[1]))
        needs = frozenset(n.strip() for n in cells[2].split(",") if n.strip())
        documented[name] = (variables, needs)
    declared = {n: (s.variable_names, s.needs) for n, s in CATALOGUE.items()}
    assert list(documented) == list(declared), "docs/definitions.md lists other statistics than the catalogue"
    assert documented == declared, "variables or kernel passes differ between docs/definitions.md and the catalogue"


def test_store_page_names_the_statistic_of_every_statistic_variable():
    text = section((DOCS / "store.md").read_text(encoding="utf-8"), "Variables")
    for cells in table_rows(text):
        match = re.fullmatch(r"`([a-z0-9_]+)`", cells[0])
        if match is None or match.group(1) not in VARIABLES or match.group(1).endswith("_before"):
            continue
        try:
            stat = statistic_of(match.group(1)).name
        except KeyError:
            continue
        assert f"[`{stat}`]" in cells[3], f"docs/store.md: {match.group(1)} is filled by `{stat}`"


def test_store_page_lists_coordinates():
    text = (DOCS / "store.md").read_text(encoding="utf-8")
    for name in (*STATIC_COORDS, *(f"key_{f}" for f in KEY_FIELDS), "timestep", "sigma", "t_over_T", "done"):
        assert f"`{name}`" in text, f"docs/store.md does not mention {name}"


def _resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def test_api_page_documents_every_public_name():
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    entries = re.findall(r"^::: ([\w.]+)", text, flags=re.MULTILINE)
    objects = [_resolve(e) for e in entries]  # every entry resolves (mkdocstrings would fail otherwise)
    for name in interp.__all__:
        target = getattr(interp, name)
        assert any(obj is target for obj in objects), f"docs/api.md has no entry for interp.{name}"


def test_every_tutorial_is_shown_and_every_included_file_exists():
    included = {inc for text in pages().values() for inc in SNIPPET.findall(text)}
    for inc in included:
        assert (ROOT / inc).is_file(), f"a page includes {inc}, which does not exist"
    for script in sorted((ROOT / "tutorials").glob("*.py")):
        assert f"tutorials/{script.name}" in included, f"no page includes tutorials/{script.name}"


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [f for v in node.values() for f in _nav_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in _nav_files(v)]
    return []


def test_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = set(_nav_files(config["nav"]))
    for path in pages():
        rel = path.relative_to(DOCS).as_posix()
        assert rel in nav, f"docs/{rel} is not in the nav of mkdocs.yml"
    for rel in nav:
        assert (DOCS / rel).is_file(), f"mkdocs.yml's nav names docs/{rel}, which does not exist"


def _numbers(text: str, kind: str) -> set[int]:
    """Table (or Figure) numbers a text mentions: 'Table 2', 'Tables 10, 11', 'Tables 19 and 20'."""
    found: set[int] = set()
    for match in re.finditer(rf"\b{kind}s? (\d+(?:(?:, | and |, and )\d+)*)", text):
        found.update(int(n) for n in re.findall(r"\d+", match.group(1)))
    return found


def test_paper_page_maps_every_recipe_and_every_result():
    text = (DOCS / "paper.md").read_text(encoding="utf-8")
    for recipe in sorted((ROOT / "traces" / "paper").glob("*.toml")):
        assert recipe.name in text, f"docs/paper.md does not list the recipe traces/paper/{recipe.name}"
    from interp.analysis.registry import ANALYSES

    tables, figures = _numbers(text, "Table"), _numbers(text, "Figure")
    for analysis in ANALYSES:
        assert f"`{analysis.name}`" in text, f"docs/paper.md does not name the analysis {analysis.name}"
        for label in analysis.outputs:
            kind, _, number = label.partition(" ")
            if kind in ("Table", "Figure") and number.isdigit():
                assert int(number) in (tables if kind == "Table" else figures), f"docs/paper.md lacks {label}"
