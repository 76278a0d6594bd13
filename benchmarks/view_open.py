"""Time to open stores in ``interp view``: opening the store, the first payload of every view, and the
page in headless Chromium until every view is drawn (docs/howto/view.md quotes the numbers).

    python benchmarks/view_open.py STORE [STORE ...] [--synthetic 512] [--out DIR]

``--synthetic N`` also writes an N-sample SYNTHETIC store (tests/fixtures/analysis_store.py: a baseline
and a top-k edit, 4 layers x 4 steps) and times it. Prints a markdown table (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.view import api, page  # noqa: E402
from interp.view.source import StoreSource  # noqa: E402
from tests.fixtures.view_store import Page, chromium, serving  # noqa: E402


def time_store(path: Path, browser) -> dict[str, float | str | int]:
    t0 = time.perf_counter()
    src = StoreSource(path)
    opened = time.perf_counter() - t0
    t1 = time.perf_counter()
    for view in page.INITIAL:
        api.answer([src], view, dict.fromkeys(page.PARAMS[view], ""))
    payloads = time.perf_counter() - t1
    with serving([path]) as server:
        t2 = time.perf_counter()
        p = Page(browser.new_page())
        p.open(server.url)
        ready = time.perf_counter() - t2
        assert not p.errors, p.errors
    return {"store": path.name, "samples": src.n_done, "open_s": opened, "payloads_s": payloads, "page_s": ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", type=Path)
    parser.add_argument("--synthetic", type=int, default=0, help="also time an N-sample synthetic store")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        stores = list(args.stores)
        if args.synthetic:
            from tests.fixtures.analysis_store import default_conditions, synthetic_store

            conds = [c for c in default_conditions() if c.name in ("baseline", "sink_k1")]
            path = Path(tmp) / f"synthetic_{args.synthetic}.zarr"
            synthetic_store(path, n_prompts=args.synthetic // len(conds), conditions=conds)
            stores.append(path)
        for s in stores:
            rows.append(time_store(s, browser))
    lines = [
        "| store | samples | open (s) | first payloads of all views (s) | page drawn in Chromium (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['store']} | {r['samples']} | {r['open_s']:.2f} | {r['payloads_s']:.2f} | {r['page_s']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "view_open.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
