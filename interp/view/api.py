"""Requests to views: ``/api/<view>?store=I&...`` answered with a payload, and the canonical request key.

Design
------
:data:`VIEWS` maps a view's name to its payload function; :func:`answer` runs one for a store and its
parameters and turns a :class:`~interp.view.source.ViewError` (or a store the analyses cannot read) into a
payload with the message in the view's note, so a bad request shows a sentence, never a blank view.
:func:`request_key` is the one spelling of a request (sorted parameters) that the page's script, the
server and the exported file's payload table share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlencode

from interp.view import dynamics, edits, maps, overview, tokens
from interp.view.payload import Payload, empty, message
from interp.view.source import StoreSource, ViewError

VIEWS: dict[str, tuple[Callable[[StoreSource, dict[str, str]], Payload], str]] = {
    # name: (payload function, the div that shows its messages)
    "overview": (overview.payload, "overview_html"),
    "dynamics": (dynamics.heatmap, "dyn_note"),
    "cell": (dynamics.cell, "cell_html"),
    "tokens": (tokens.payload, "tok_html"),
    "maps": (maps.payload, "map_html"),
    "edits": (edits.payload, "edit_html"),
}


def request_key(view: str, params: Mapping[str, str]) -> str:
    """``view?k=v&...`` with sorted keys: how the page names a request."""
    return f"{view}?{urlencode(sorted((str(k), str(v)) for k, v in params.items()))}"


def answer(sources: Sequence[StoreSource], view: str, params: Mapping[str, str]) -> Payload:
    """The payload of ``view`` for ``params`` (``store`` picks the source; default the first)."""
    if view not in VIEWS:
        raise ViewError(f"no view {view!r}; the views are {sorted(VIEWS)}")
    fn, note = VIEWS[view]
    args = {k: v for k, v in params.items() if k != "store"}
    try:
        index = int(params.get("store", "0") or 0)
        if not 0 <= index < len(sources):
            raise ViewError(f"no store {index}: {len(sources)} store(s) are open")
        return fn(sources[index], args)
    except (ViewError, LookupError, ValueError) as exc:
        out = empty()
        out["divs"][note] = message(f"cannot show this: {exc}", "error")
        return out
