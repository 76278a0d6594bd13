"""``interp view`` in a real headless Chromium (Playwright), on a tiny SD3 sweep store the test writes:
the page loads without console errors, the heat map holds the store's values, clicking a cell shows
that cell's per-head values and top keys, the edited sample's image pair is shown, and the exported
file opens offline with the same content. Values are checked against the store with numpy."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.view_store import Page, chromium, serving, write_video_store, write_view_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_view_store(tmp_path_factory.mktemp("view") / "tiny.zarr")


@pytest.fixture(scope="module")
def ds(store):
    import interp

    return interp.open_store(store).load()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(store):
    with serving([store]) as s:
        yield s


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    p = Page(context.new_page()).open(server.url)
    yield p
    context.close()


def _expected_heat(ds, var="max_mass", condition="baseline", branch="cond") -> np.ndarray:
    """Brute force: mean over heads and calls per sample, then over the condition's samples: (step, site)."""
    x = np.asarray(ds[var].values, dtype=np.float64)  # (sample, step, call, site, branch, head)
    x = x[_str(ds["condition"].values) == condition][:, :, :, :, [str(b) for b in ds["branch"].values].index(branch)]
    return np.nanmean(np.nanmean(x, axis=(2, 4)), axis=0)


def _str(values) -> np.ndarray:
    return np.array(np.asarray(values).tolist(), dtype=str)


def _uri_image(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_page_loads_without_console_errors(page, ds):
    assert page.errors == []
    overview = page.text("overview_html")
    assert f"{ds.sizes['sample']} samples done, 0 pending" in overview
    assert "top1_mid" in overview and "tiny:sd3" in overview
    assert page.page.evaluate("window.interpView.errors") == []


def test_heat_map_renders_the_store_values(page, ds):
    page.tab("Sink dynamics")
    data = page.data("heat_src")
    n_steps, n_sites = ds.sizes["step"], ds.sizes["site"]
    assert len(data["value"]) == n_steps * n_sites
    want = _expected_heat(ds)
    for step, site, value in zip(data["step"], data["site"], data["value"], strict=True):
        si = [str(s) for s in ds["site"].values].index(site)
        assert value == pytest.approx(want[int(step), si], rel=1e-5)
    shot = np.asarray(Image.open(io.BytesIO(page.page.screenshot())).convert("RGB"))
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 50  # a drawn heat map, not a blank page
    assert page.errors == []


def test_clicking_a_cell_shows_its_heads_and_top_keys(page, ds):
    page.tab("Sink dynamics")
    n_steps, n_sites = ds.sizes["step"], ds.sizes["site"]
    step, site = 1, 2
    page.click_cell(step, site, n_steps, n_sites)
    page.page.wait_for_function("window.interpView.doc.get_model_by_name('cell_html').text.includes('step 1')")
    page.idle()
    assert f"transformer_blocks.{site}.attn" in page.text("cell_html")
    heads = page.page.locator("table.cell-heads tbody tr")
    base = np.flatnonzero(_str(ds["condition"].values) == "baseline")
    bi = [str(b) for b in ds["branch"].values].index("cond")
    mm = np.asarray(ds["max_mass"].values, dtype=np.float64)[base][:, step, :, site, bi]  # (sample, call, head)
    want = np.nanmean(mm, axis=(0, 1))
    assert heads.count() == want.size
    for h in range(want.size):
        cells = heads.nth(h).locator("td").all_inner_texts()
        assert int(cells[0]) == h
        assert float(cells[1]) == pytest.approx(want[h], rel=1e-3)
    top = page.page.locator("table.cell-top tbody tr").first.locator("td").all_inner_texts()
    rep = int(base[0])
    key = int(ds["topk_keys"].values[rep, step, 0, site, bi, 0, 0])
    assert int(top[2]) == key
    assert float(top[3]) == pytest.approx(float(ds["topk_mass"].values[rep, step, 0, site, bi, 0, 0]), rel=1e-3)
    token = str(np.asarray(ds["key_token_str"].values)[rep, 0, bi, key])
    assert top[4].strip() == token.strip()
    image_keys = np.asarray(ds["topk_keys"].values[rep, step, 0, site, bi, :, :3]).ravel()
    modality = _str(ds["key_modality"].values[rep, 0, bi])
    assert len(page.data("cell_marks_src")["x"]) == int(sum(modality[k] == "image" for k in image_keys if k >= 0))
    assert page.errors == []


def test_edited_sample_shows_its_image_pair(page, ds):
    page.tab("Edits")
    html = page.text("edit_html")
    m = re.search(r"left: baseline \(sample (\d+)\); right: top1_mid \(sample (\d+)\)", html)
    assert m, html
    base, edited = int(m.group(1)), int(m.group(2))
    assert str(ds["prompt"].values[base]) == str(ds["prompt"].values[edited])
    assert int(ds["seed"].values[base]) == int(ds["seed"].values[edited])
    shown_base = _uri_image(page.data("edit_base_src")["url"][0])
    shown_edit = _uri_image(page.data("edit_edited_src")["url"][0])
    np.testing.assert_array_equal(shown_base, ds["image"].values[base])
    np.testing.assert_array_equal(shown_edit, ds["image"].values[edited])
    assert "mask_top1" in html and "edit-verification" in html
    before = np.asarray(ds["edit_mass_before"].values[edited], dtype=np.float64)
    assert f"{np.nanmean(before[np.isfinite(before)]):.4g}" in html
    assert page.errors == []


def test_attention_map_over_the_image(page, ds):
    page.tab("Attention maps")
    rects = page.data("map_rect_src")
    n_image = int((_str(ds["key_modality"].values[0, 0, 0]) == "image").sum())
    assert len(rects["value"]) == n_image
    assert all(v is not None and v >= 0 for v in rects["value"])
    assert page.errors == []


def test_export_opens_offline_with_the_same_content(tmp_path, browser, server, store):
    from interp.cli import main

    out = tmp_path / "report.html"
    assert main(["view", str(store), "--export", str(out)]) == 0
    served = Page(browser.new_page()).open(server.url)
    context = browser.new_context(offline=True)
    asked: list[str] = []
    context.route(
        "**/*",
        lambda route: (
            asked.append(route.request.url),
            route.continue_() if route.request.url.startswith("file:") else route.abort(),
        ),
    )
    offline = Page(context.new_page()).open(out.as_uri())
    assert [u for u in asked if not u.startswith("file:")] == []
    assert offline.errors == []
    assert offline.text("overview_html") == served.text("overview_html")
    assert offline.data("heat_src") == served.data("heat_src")
    offline.tab("Edits")
    served.tab("Edits")
    assert offline.data("edit_edited_src") == served.data("edit_edited_src")
    context.close()


def test_token_identity_counts_the_store_sinks(page, ds):
    """Choosing a step in the page counts that step's sinks: the share of image keys against numpy."""
    page.tab("Token identity")
    page.page.locator("select[name=tok_step]").select_option(label="step 1")
    page.page.wait_for_function("window.interpView.doc.get_model_by_name('tok_html').text.includes('step 1')")
    page.idle()
    data = page.data("tok_src")
    base = np.flatnonzero(_str(ds["condition"].values) == "baseline")
    bi = [str(b) for b in ds["branch"].values].index("cond")
    sinks = np.asarray(ds["argmax_key"].values)[base][:, 1, :, :, bi]  # (sample, call, site, head)
    modality = np.stack([_str(ds["key_modality"].values[s, 0, bi]) for s in base])
    is_image = np.array([[modality[i, k] == "image" for k in sinks[i].ravel()] for i in range(len(base))])
    want = is_image.sum() / is_image.size
    got = dict(zip(data["token"], data["count"], strict=True)).get("[image]", 0.0)
    assert got == pytest.approx(want)
    assert page.errors == []


@pytest.fixture(scope="module")
def video_store(tmp_path_factory):
    return write_video_store(tmp_path_factory.mktemp("view_video") / "tiny_wan.zarr")


@pytest.fixture(scope="module")
def video_ds(video_store):
    import interp

    return interp.open_store(video_store).load()


@pytest.fixture
def video_page(browser, video_store):
    with serving([video_store]) as s:
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        yield Page(context.new_page()).open(s.url)
        context.close()


def _layout(ds, site: str, side: str = "key") -> int:
    return [str(v) for v in ds["layout"].values].index(str(ds[f"site_{side}_layout"].sel(site=site).values))


def test_video_attention_map_per_frame(video_page, video_ds):
    """The frame select shows that frame's image positions, with the store's map values (cross-attention)."""
    ds, page = video_ds, video_page
    page.tab("Attention maps")
    page.page.locator("select[name=map_site]").select_option(label="L0 attn2")
    page.page.wait_for_function("window.interpView.doc.get_model_by_name('map_html').text.includes('attn2')")
    page.idle()
    page.page.locator("select[name=map_frame]").select_option(label="frame 1")
    page.page.wait_for_function("window.interpView.doc.get_model_by_name('map_html').text.includes('frame 1 of 2')")
    page.idle()
    si, bi = (
        [str(s) for s in ds["site"].values].index("blocks.0.attn2"),
        [str(b) for b in ds["branch"].values].index("cond"),
    )
    token = int(page.page.evaluate("window.interpView.doc.get_model_by_name('map_token').value"))
    lq = _layout(ds, "blocks.0.attn2", "query")
    frame = np.asarray(ds["key_image_frame"].values[0, lq, bi])
    rows, cols = np.asarray(ds["key_image_row"].values[0, lq, bi]), np.asarray(ds["key_image_col"].values[0, lq, bi])
    q_index = np.asarray(ds["map_query_index"].values[0, si])
    k_col = list(np.asarray(ds["map_key_index"].values[0, si])).index(token)
    maps = np.asarray(ds["attn_map"].values[0, 0, 0, si, bi], dtype=np.float64)  # (map_head, query, key)
    want = {}
    for i, q in enumerate(q_index):
        if q >= 0 and frame[q] == 1:
            want[(int(rows[q]), int(cols[q]))] = float(np.nanmean(maps[:, i, k_col]))
    rects = page.data("map_rect_src")
    assert len(rects["value"]) == len(want) == int((frame == 1).sum())
    grid_h, grid_w = rows[frame >= 0].max() + 1, cols[frame >= 0].max() + 1
    height, width = ds.sizes["y"], ds.sizes["x"]
    for x, y, v in zip(rects["x"], rects["y"], rects["value"], strict=True):
        r, c = int((height - y) * grid_h / height), int(x * grid_w / width)
        assert v == pytest.approx(want[(r, c)], rel=1e-5)
    assert page.errors == []


def test_video_cell_detail_marks_frame_row_col(video_page, video_ds):
    """A self-attention cell's top keys are video tokens, named by their (frame, row, col)."""
    ds, page = video_ds, video_page
    page.tab("Sink dynamics")
    n_steps, n_sites = ds.sizes["step"], ds.sizes["site"]
    site = [str(s) for s in ds["site"].values].index("blocks.1.attn1")
    page.click_cell(1, site, n_steps, n_sites)
    page.page.wait_for_function("window.interpView.doc.get_model_by_name('cell_html').text.includes('blocks.1.attn1')")
    page.idle()
    bi = [str(b) for b in ds["branch"].values].index("cond")
    lk = _layout(ds, "blocks.1.attn1")
    top = page.page.locator("table.cell-top tbody tr")
    assert top.count() == 3 * ds.sizes["head"]
    for n in range(top.count()):
        cells = top.nth(n).locator("td").all_inner_texts()
        h, rank, key = int(cells[0]), int(cells[1]), int(cells[2])
        assert key == int(ds["topk_keys"].values[0, 1, 0, site, bi, h, rank - 1])
        f, r, c = (int(ds[f"key_image_{a}"].values[0, lk, bi, key]) for a in ("frame", "row", "col"))
        assert cells[7] == f"frame {f}, row {r}, col {c}"
    assert len(page.data("cell_marks_src")["x"]) == top.count()
    assert page.errors == []


def test_dominant_sink_class_map(video_page, video_ds):
    """The layer x step class map: per cell the most frequent class of the sinks, against brute force."""
    from interp.analysis.token_identity import key_classes
    from interp.edits.words import WORD_CLASSES

    ds, page = video_ds, video_page
    page.tab("Token identity")
    data = page.data("tok_heat_src")
    bi = [str(b) for b in ds["branch"].values].index("cond")
    sites = [str(s) for s in ds["site"].values]
    assert len(data["cls"]) == ds.sizes["step"] * len(sites)  # step-major, layers in the store's order
    for j, site in enumerate(sites):
        classes = key_classes(ds, _layout(ds, site))[0, bi]
        for st in range(ds.sizes["step"]):
            i = st * len(sites) + j
            assert data["step"][i] == str(st) and data["layer"][i] == data["layer"][j]
            sinks = np.asarray(ds["argmax_key"].values[0, st, :, j, bi]).ravel()
            sinks = sinks[sinks >= 0]  # -1: no call of this branch
            counts = np.bincount(classes[sinks], minlength=len(WORD_CLASSES))
            assert data["cls"][i] == WORD_CLASSES[int(counts.argmax())]
            assert data["share"][i] == f"{counts.max() / counts.sum():.0%}"
    assert page.errors == []
