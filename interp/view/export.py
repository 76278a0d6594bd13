"""``interp view --export report.html``: the page with the payloads of a bounded set of selections inlined.

Design
------
The exported file is the served page (``interp.view.page``) with a table of payloads keyed by request
(``interp.view.api.request_key``); the page's script reads from the table instead of a server, so the
file opens offline and shows exactly what the server would. The table holds, per store: the overview;
the first request of each view (the selects empty, as the page sends them on load) and, for the
selections that file can hold, each option of each select named in :data:`VARY`, one select at a time
from the default selection (at most :data:`MAX_PER_VIEW` payloads per view); and the detail of every
cell of the default heat map. A selection that is not in the file says so in its view.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp.view import api, page
from interp.view.source import StoreSource

VARY: dict[str, tuple[str, ...]] = {
    "dynamics": ("var", "condition", "branch", "head"),
    "tokens": ("condition", "tag", "branch", "step"),
    "maps": ("step", "frame", "token"),
    "edits": ("condition", "pair"),
}
MAX_PER_VIEW = 100
MAX_CELLS = 2000


def _resolved(payload: dict[str, Any], view: str) -> dict[str, str]:
    return {p: payload["selects"].get(w, {}).get("value", "") for p, w in page.PARAMS[view].items()}


def _options(payload: dict[str, Any], view: str, param: str) -> list[str]:
    widget = page.PARAMS[view][param]
    return [o[0] for o in payload["selects"].get(widget, {}).get("options", [])]


def payloads(sources: Sequence[StoreSource]) -> dict[str, Any]:
    """The request -> payload table of an export (module docstring)."""
    table: dict[str, Any] = {}

    def put(view: str, params: dict[str, str]) -> dict[str, Any]:
        key = api.request_key(view, params)
        if key not in table:
            table[key] = api.answer(sources, view, params)
        return table[key]

    for i in range(len(sources)):
        store = {"store": str(i)}
        put("overview", store)
        for view in ("dynamics", "tokens", "maps", "edits"):
            first = put(view, {**store, **dict.fromkeys(page.PARAMS[view], "")})
            base = _resolved(first, view)
            put(view, {**store, **base})
            if view == "dynamics":
                heat = first["sources"].get("heat_src", {})
                for site, step in list(zip(heat.get("site", []), heat.get("step", []), strict=True))[:MAX_CELLS]:
                    put("cell", {**store, **base, "site": site, "step": step})
            one_at_a_time = [(p, v) for p in VARY[view] for v in _options(first, view, p)]
            for param, value in one_at_a_time[:MAX_PER_VIEW]:
                resets = page.RESETS.get(page.PARAMS[view][param], [])
                params = {**store, **base, param: value, **dict.fromkeys(resets, "")}  # as the page asks
                got = put(view, params)
                if _resolved(got, view) != {k: v for k, v in params.items() if k != "store"}:
                    put(view, {**store, **_resolved(got, view)})  # the key the page sends after applying it
    return table


def shared_images(table: dict[str, Any]) -> dict[str, str]:
    """Move every image (a data URI in a source's ``url`` column) into one table of assets, in place:
    payloads then name an image as ``asset:N``, so an image shown by many payloads (the clicked cells of
    one heat map) is in the file once. Returns the assets."""
    assets: dict[str, str] = {}
    ids: dict[str, str] = {}
    for payload in table.values():
        for data in payload.get("sources", {}).values():
            urls = data.get("url")
            if not urls:
                continue
            for i, uri in enumerate(urls):
                if isinstance(uri, str) and uri.startswith("data:"):
                    if uri not in ids:
                        ids[uri] = f"asset:{len(ids)}"
                        assets[ids[uri]] = uri
                    urls[i] = ids[uri]
    return assets


def export(sources: Sequence[StoreSource], out: str | os.PathLike) -> Path:
    """Write the self-contained report; returns its path."""
    path = Path(out)
    table = payloads(sources)
    assets = shared_images(table)
    html = page.build([s.name for s in sources], payloads=table, assets=assets, title=f"interp view: {path.stem}")
    path.write_text(html, encoding="utf-8")
    return path
