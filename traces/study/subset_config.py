"""Write a smaller copy of the study config: fewer captions per tag, seeds or steps, same conditions.

    python traces/study/subset_config.py OUT.toml [--per-tag N] [--seeds S] [--steps T] [--conditions a,b]

Used by ``run_study.sh`` (``PER_TAG`` / ``SEEDS`` / ``STEPS``) for the CPU run and the tests. The copy
keeps the recipe's prompt file (absolute path), seed base and conditions, so its samples are the same
(caption, seed) samples as in the full study (the sweep's seeds follow the caption's line in the file;
``per_tag`` is the sweep's seeded, tag-balanced subset). ``--steps`` changes the samples (tests only).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "organism_study.toml"


def _value(v: object) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    return repr(v)


def dumps(data: dict) -> str:
    """TOML text of a sweep config (tables of scalars, arrays of tables of scalars / inline tables)."""
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list):
            for item in v:
                lines += ["", f"[[{k}]]"] + [f"{kk} = {_value(vv)}" for kk, vv in item.items()]
    return "\n".join(lines) + "\n"


def subset(
    *,
    per_tag: int | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    conditions: list[str] | None = None,
    recipe: Path = RECIPE,
) -> dict:
    data = tomllib.loads(recipe.read_text(encoding="utf-8"))
    data["store"] = "store.zarr"  # beside the written config (the CLI's --store overrides it)
    data["prompts"]["path"] = str((recipe.parent / data["prompts"]["path"]).resolve())
    if per_tag is not None:
        data["prompts"]["per_tag"] = per_tag
    if seeds is not None:
        data["seeds"]["per_prompt"] = seeds
    if steps is not None:
        data["sampler"]["steps"] = steps
    if conditions:
        unknown = set(conditions) - {c["name"] for c in data["conditions"]}
        if unknown:
            raise SystemExit(f"unknown conditions: {sorted(unknown)}")
        data["conditions"] = [c for c in data["conditions"] if c["name"] in conditions or c["name"] == "baseline"]
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--per-tag", type=int)
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--conditions", help="comma-separated condition names (the baseline is always kept)")
    args = ap.parse_args(argv)
    conds = [c for c in (args.conditions or "").split(",") if c]
    data = subset(per_tag=args.per_tag, seeds=args.seeds, steps=args.steps, conditions=conds or None)
    Path(args.out).write_text(dumps(data), encoding="utf-8")
    print(f"{args.out}: {len(data['conditions'])} conditions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
