"""Pairing by prompt and seed: a join on coordinates, never on row order."""

import numpy as np
import pandas as pd
import pytest

from interp.analysis.errors import StoreLacks
from interp.analysis.pairing import aligned


def table(seeds_per_prompt: int = 1, shuffle: int | None = 0) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for p in range(6):
        for r in range(seeds_per_prompt):
            for c in ("baseline", "edit", "control"):
                rows.append(
                    {"prompt": f"p{p}", "seed": 10 * p + r, "condition": c, "tag": f"t{p % 2}", "x": rng.normal()}
                )
    df = pd.DataFrame(rows)
    if shuffle is not None:
        df = df.sample(frac=1.0, random_state=shuffle).reset_index(drop=True)
    df["sample"] = np.arange(len(df))
    return df


def test_join_matches_brute_force_lookup_in_any_row_order():
    df = table()
    al = aligned(df, "x", ["edit", "baseline", "control"])
    assert al.n == 6 and al.clusters is None and al.n_dropped == 0
    lookup = {(r.prompt, r.seed, r.condition): (r.x, r.sample) for r in df.itertuples()}
    for i in range(al.n):
        prompt = al.prompts[i]
        seed = int(df.loc[al.samples[i, 0], "seed"])
        for j, c in enumerate(al.conditions):
            assert al.values[i, j] == lookup[(prompt, seed, c)][0]
            assert al.samples[i, j] == lookup[(prompt, seed, c)][1]
        assert al.tags[i] == df.loc[al.samples[i, 0], "tag"]


def test_several_seeds_per_prompt_give_clusters():
    al = aligned(table(seeds_per_prompt=3), "x", ["edit", "baseline"])
    assert al.n == 18 and al.clusters is not None and set(al.clusters) == {f"p{i}" for i in range(6)}


def test_missing_partners_are_dropped_and_counted():
    df = table()
    df = df[~((df.condition == "baseline") & (df.prompt.isin(["p1", "p4"])))]
    al = aligned(df, "x", ["edit", "baseline"])
    assert al.n == 4 and al.n_dropped == 2 and set(al.prompts) == {"p0", "p2", "p3", "p5"}


def test_errors_name_what_is_missing():
    df = table()
    with pytest.raises(StoreLacks, match="condition 'nope'"):
        aligned(df, "x", ["edit", "nope"], analysis="t")
    with pytest.raises(StoreLacks, match="sample coordinate 'seed'"):
        aligned(df.drop(columns="seed"), "x", ["edit", "baseline"])
    dup = pd.concat([df, df[df.condition == "edit"].head(1)])
    with pytest.raises(ValueError, match="condition 'edit' has 2 samples sharing pairing keys"):
        aligned(dup, "x", ["edit", "baseline"])
    with pytest.raises(StoreLacks, match="pairs"):
        aligned(df[df.prompt == "p0"], "x", ["edit", "baseline"])
