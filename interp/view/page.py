"""The page: the views' Bokeh models (named, empty) in tabs, the page's script, and the offline resources.

Design
------
Bokeh draws the heat maps, images and bars and gives the selects and tabs; every model a payload fills
has a ``name`` (``interp.view.payload``). The models start empty; the script (``static/view.js``) asks
for each view's payload when the page has loaded, and again when a select changes or a heat-map cell is
clicked, and applies it. BokehJS is inlined from the installed package (``bokeh.resources.INLINE``), so
the page needs no network, served or exported. :data:`PARAMS` says which select feeds which request
parameter; the exporter enumerates requests with the same table.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

PARAMS: dict[str, dict[str, str]] = {
    # view: {request parameter: select name}
    "overview": {},
    "dynamics": {
        "var": "dyn_var",
        "condition": "dyn_condition",
        "sample": "dyn_sample",
        "branch": "dyn_branch",
        "head": "dyn_head",
    },
    "cell": {},
    "tokens": {"condition": "tok_condition", "tag": "tok_tag", "branch": "tok_branch", "step": "tok_step"},
    "maps": {
        "sample": "map_sample",
        "site": "map_site",
        "step": "map_step",
        "frame": "map_frame",
        "head": "map_head",
        "dir": "map_dir",
        "token": "map_token",
    },
    "edits": {"condition": "edit_condition", "pair": "edit_pair"},
}
RESETS: dict[str, list[str]] = {
    # a select whose change makes other parameters meaningless: they go back to their defaults
    "dyn_condition": ["sample"],
    "tok_condition": [],
    "map_sample": ["token", "site", "frame"],
    "map_frame": ["token"],
    "map_dir": ["token"],
    "map_site": ["head"],
    "edit_condition": ["pair"],
}
INITIAL = ("overview", "dynamics", "tokens", "maps", "edits")
CSS = """
.interp-table { border-collapse: collapse; font: 12px sans-serif; margin: 4px 0; }
.interp-table td, .interp-table th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
.interp-table th { background: #f0f0f0; }
.interp-note { color: #444; font: 13px sans-serif; }
.interp-warning { color: #8a5a00; font: 13px sans-serif; font-weight: bold; }
.interp-error { color: #b00020; font: 13px sans-serif; font-weight: bold; }
"""


def _css() -> Any:
    """The tables' and messages' style: Bokeh renders a Div in a shadow root, so it carries its own sheet."""
    from bokeh.models import InlineStyleSheet

    return InlineStyleSheet(css=CSS)


def _image_figure(prefix: str, title: str, size: int = 300) -> tuple[Any, Any]:
    from bokeh.models import ColumnDataSource, Range1d
    from bokeh.plotting import figure

    fig = figure(
        title=title,
        width=size,
        height=size,
        x_range=Range1d(0, 1, name=f"{prefix}_x"),
        y_range=Range1d(0, 1, name=f"{prefix}_y"),
        tools="",
        toolbar_location=None,
        match_aspect=True,
        name=f"{prefix}_fig",
    )
    src = ColumnDataSource({"url": [], "x": [], "y": [], "w": [], "h": []}, name=f"{prefix}_src")
    fig.image_url(url="url", x="x", y="y", w="w", h="h", anchor="top_left", source=src)
    fig.axis.visible = False
    fig.grid.visible = False
    return fig, src


def _select(name: str, title: str, view: str, width: int = 220) -> Any:
    from bokeh.models import CustomJS, Select

    widget = Select(name=name, title=title, options=[], value="", width=width)
    widget.js_on_change("value", CustomJS(code=f"window.interpView.changed({json.dumps(view)}, {json.dumps(name)});"))
    return widget


def build(
    store_names: list[str],
    *,
    payloads: dict[str, Any] | None = None,
    assets: dict[str, str] | None = None,
    title: str = "interp view",
) -> str:
    """The page's HTML; with ``payloads`` (export) the script reads them instead of asking a server, and
    images named ``asset:N`` in them from ``assets``."""
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import (
        CategoricalColorMapper,
        ColorBar,
        ColumnDataSource,
        CustomJS,
        Div,
        FactorRange,
        HoverTool,
        LinearColorMapper,
        TabPanel,
        Tabs,
        TapTool,
    )
    from bokeh.palettes import Category10, Inferno256, Viridis256
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    from interp.edits.words import WORD_CLASSES

    store = _select("store", "store", "store")
    store.options = [[str(i), n] for i, n in enumerate(store_names)]
    store.value = "0"
    header = Div(stylesheets=[_css()], text=f"<h2>interp view</h2><p>{len(store_names)} store(s)</p>", name="header")

    overview = Div(stylesheets=[_css()], text="", name="overview_html", width=900)

    heat_src = ColumnDataSource({"step": [], "layer": [], "value": [], "site": [], "shown": []}, name="heat_src")
    mapper = LinearColorMapper(palette=Viridis256, low=0, high=1, nan_color="#dddddd", name="heat_mapper")
    heat = figure(
        title="layer x step",
        x_range=FactorRange(factors=["0"], name="heat_x"),
        y_range=FactorRange(factors=["L0"], name="heat_y"),
        width=520,
        height=520,
        tools="",
        toolbar_location=None,
        name="heat_fig",
        x_axis_label="denoising step",
        y_axis_label="layer",
    )
    cells = heat.rect(
        x="step",
        y="layer",
        width=1,
        height=1,
        source=heat_src,
        line_color=None,
        fill_color={"field": "value", "transform": mapper},
        nonselection_fill_alpha=1.0,
        selection_line_color="red",
        selection_line_width=3,
        name="heat_cells",
    )
    heat.add_tools(
        TapTool(renderers=[cells]),
        HoverTool(renderers=[cells], tooltips=[("layer", "@layer"), ("step", "@step"), ("value", "@shown")]),
    )
    heat.add_layout(ColorBar(color_mapper=mapper, width=12), "right")
    heat_src.selected.js_on_change(
        "indices", CustomJS(code="if (cb_obj.indices.length) window.interpView.cell(cb_obj.indices[0]);")
    )
    cell_img, _ = _image_figure("cell_img", "top keys on the image", 260)
    marks = ColumnDataSource({"x": [], "y": [], "label": []}, name="cell_marks_src")
    cell_img.scatter(
        x="x", y="y", source=marks, marker="circle_x", size=14, fill_alpha=0.0, line_color="red", line_width=2
    )
    dyn_selects = [_select(w, p, "dynamics") for p, w in PARAMS["dynamics"].items()]
    dynamics = column(
        row(*dyn_selects),
        Div(stylesheets=[_css()], text="", name="dyn_note", width=900),
        row(heat, column(cell_img)),
        Div(stylesheets=[_css()], text="<i>click a cell of the heat map</i>", name="cell_html", width=900),
    )

    tok_src = ColumnDataSource({"token": [], "count": []}, name="tok_src")
    tok_fig = figure(
        title="share of sink cells per token",
        x_range=FactorRange(factors=["-"], name="tok_x"),
        width=900,
        height=320,
        tools="",
        toolbar_location=None,
        name="tok_fig",
    )
    tok_fig.vbar(x="token", top="count", width=0.8, source=tok_src)
    tok_fig.xaxis.major_label_orientation = 0.9
    tok_heat_src = ColumnDataSource({"step": [], "layer": [], "cls": [], "share": []}, name="tok_heat_src")
    classes = list(WORD_CLASSES)
    class_mapper = CategoricalColorMapper(
        factors=classes, palette=Category10[10][: len(classes)], name="tok_class_mapper"
    )
    tok_heat = figure(
        title="dominant sink's word class, layer x step",
        x_range=FactorRange(factors=["0"], name="tok_heat_x"),
        y_range=FactorRange(factors=["L0"], name="tok_heat_y"),
        width=560,
        height=420,
        tools="",
        toolbar_location=None,
        name="tok_heat_fig",
        x_axis_label="denoising step",
        y_axis_label="layer",
    )
    tok_cells = tok_heat.rect(
        x="step",
        y="layer",
        width=1,
        height=1,
        source=tok_heat_src,
        line_color=None,
        fill_color={"field": "cls", "transform": class_mapper},
        legend_field="cls",
    )
    tok_heat.add_tools(
        HoverTool(
            renderers=[tok_cells],
            tooltips=[("layer", "@layer"), ("step", "@step"), ("class", "@cls"), ("share", "@share")],
        )
    )
    tok_heat.add_layout(tok_heat.legend[0], "right")
    tokens = column(
        row(*[_select(w, p, "tokens") for p, w in PARAMS["tokens"].items()]),
        tok_fig,
        tok_heat,
        Div(stylesheets=[_css()], text="", name="tok_html", width=900),
    )

    map_fig, _ = _image_figure("map_img", "attention over the image", 360)
    map_mapper = LinearColorMapper(palette=Inferno256, low=0, high=1, name="map_mapper")
    map_rects = ColumnDataSource({"x": [], "y": [], "w": [], "h": [], "value": []}, name="map_rect_src")
    map_fig.rect(
        x="x",
        y="y",
        width="w",
        height="h",
        source=map_rects,
        fill_color={"field": "value", "transform": map_mapper},
        fill_alpha=0.6,
        line_color=None,
    )
    map_marks = ColumnDataSource({"x": [], "y": []}, name="map_marks_src")
    map_fig.scatter(
        x="x", y="y", source=map_marks, marker="circle_x", size=16, fill_alpha=0.0, line_color="cyan", line_width=2
    )
    map_fig.add_layout(ColorBar(color_mapper=map_mapper, width=10), "right")
    bar_src = ColumnDataSource({"token": [], "value": []}, name="map_bar_src")
    bar_fig = figure(
        title="attention over the prompt's tokens",
        x_range=FactorRange(factors=["-"], name="map_bar_x"),
        width=560,
        height=360,
        tools="",
        toolbar_location=None,
    )
    bar_fig.vbar(x="token", top="value", width=0.8, source=bar_src)
    bar_fig.xaxis.major_label_orientation = 1.2
    maps = column(
        row(*[_select(w, p, "maps", 150) for p, w in PARAMS["maps"].items()]),
        Div(stylesheets=[_css()], text="", name="map_html", width=900),
        row(map_fig, bar_fig),
    )

    base_fig, _ = _image_figure("edit_base", "reference (unedited)")
    edited_fig, _ = _image_figure("edit_edited", "edited")
    edits = column(
        row(*[_select(w, p, "edits") for p, w in PARAMS["edits"].items()]),
        row(base_fig, edited_fig),
        Div(stylesheets=[_css()], text="", name="edit_html", width=900),
    )

    tabs = Tabs(
        tabs=[
            TabPanel(child=overview, title="Overview"),
            TabPanel(child=dynamics, title="Sink dynamics"),
            TabPanel(child=tokens, title="Token identity"),
            TabPanel(child=maps, title="Attention maps"),
            TabPanel(child=edits, title="Edits"),
        ],
        name="tabs",
    )
    doc = column(header, store, tabs)
    page = file_html(doc, resources=INLINE, title=title)
    notes = {
        "overview": "overview_html",
        "dynamics": "dyn_note",
        "cell": "cell_html",
        "tokens": "tok_html",
        "maps": "map_html",
        "edits": "edit_html",
    }
    config = {"params": PARAMS, "resets": RESETS, "notes": notes, "initial": list(INITIAL), "stores": store_names}
    script = resources.files("interp.view").joinpath("static/view.js").read_text(encoding="utf-8")
    inject = f"<style>{CSS}</style>\n<script>window.INTERP_CONFIG = {_json(config)};</script>\n"
    if payloads is not None:
        inject += f"<script>window.INTERP_PAYLOADS = {_json(payloads)};</script>\n"
        inject += f"<script>window.INTERP_ASSETS = {_json(assets or {})};</script>\n"
    inject += f"<script>\n{script}\n</script>\n"
    head, close, body = page.rpartition("</head>")  # the last: BokehJS (inlined above) spells the tag too
    return head + inject + close + body


def _json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")
