"""The one shape every view's answer has, and the small helpers the views share to fill it.

Design
------
The page (``interp.view.page``) is a fixed set of Bokeh models with names; a view's answer to a request
is a :class:`Payload` that says, by those names, what to show: column data of sources, HTML of divs,
options and value of selects, factors of categorical ranges, limits of colour mappers and ranges. The
page's script applies any payload the same way, so the views are plain Python functions of (store,
parameters) that return data, and the server and the exported file differ only in where a payload
comes from (a request to the server, or a table of payloads computed when exporting).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

Payload = dict[str, Any]
MAX_IMAGE_PX = 384


def empty() -> Payload:
    return {"sources": {}, "divs": {}, "selects": {}, "factors": {}, "mappers": {}, "ranges": {}}


def select(p: Payload, name: str, options: Sequence[tuple[str, str]], value: str) -> str:
    """Set a select's options ((value, label) pairs) and its value (the first option if ``value`` is not one)."""
    values = [v for v, _ in options]
    chosen = value if value in values else (values[0] if values else "")
    p["selects"][name] = {"options": [[v, label] for v, label in options], "value": chosen}
    return chosen


def message(text: str, kind: str = "note") -> str:
    return f'<div class="interp-{kind}">{html.escape(text)}</div>'


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, cls: str = "") -> str:
    """An HTML table (escaped); floats with 4 significant digits, NaN as an empty cell."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="interp-table {cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        v = float(value)
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(value)


def floats(values: Any) -> list[float | None]:
    """A float list for JSON (NaN as null: Bokeh draws nothing there)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    return [None if not math.isfinite(v) else float(v) for v in arr]


def image_uri(rgb: np.ndarray) -> str:
    """A PNG data URI of a (y, x, 3) uint8 image, down-scaled to at most MAX_IMAGE_PX on a side."""
    from PIL import Image

    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    if max(img.size) > MAX_IMAGE_PX:
        img.thumbnail((MAX_IMAGE_PX, MAX_IMAGE_PX))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_source(uri: str, height: int, width: int) -> dict[str, list[Any]]:
    """Column data of an ``image_url`` glyph covering (0, 0)-(width, height), y up."""
    return {"url": [uri], "x": [0], "y": [height], "w": [width], "h": [height]}
