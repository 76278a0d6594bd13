"""Every analysis reads a site's keys in the site's own key layout (``site_key_layout``).

Families whose sites attend over different keys (Wan: ``attn1`` over the video tokens, ``attn2`` over
the UMT5 text; SDXL: ``attn1`` over the image patches at the block's resolution, ``attn2`` over the CLIP
text) store several token layouts; the store's first layout is the text one. A tiny store of each
(2 steps, both attentions of every block recorded) is labelled by the token-identity counts (study
tables), the sink-identity analysis and the text summary, and checked against brute force over the
store's own per-site layouts: self-attention sinks are image / video tokens, cross-attention sinks text.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import interp
from interp import record, tracer
from interp.analysis import sink_identity
from interp.analysis.config import AnalysisConfig
from interp.analysis.context import Context
from interp.analysis.token_identity import (
    as_str,
    dominant_counts,
    key_classes,
    layout_classes,
    site_layouts,
)
from interp.edits.words import WORD_CLASSES
from interp.summary import dominant_keys

FAMILIES = {"wan": {"num_frames": 5}, "sdxl": {}}  # Wan: 5 frames -> 2 latent frames


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def store(request, tmp_path_factory):
    fam = request.param
    path = tmp_path_factory.mktemp(fam) / "obs.zarr"
    pipe = interp.pipelines.tiny(fam)
    kw = {**interp.pipelines.tiny_call_kwargs(fam), "num_inference_steps": 2, **FAMILIES[fam]}
    for i, prompt in enumerate(("a photo of a cat", "a red car")):
        with tracer.trace(pipe, prompt, seed=i, store=path, **kw):
            record("mass", layers="all")
    ds = interp.open_store(path).load()
    sites = [str(s) for s in ds.site.values]
    assert any(s.endswith("attn1") for s in sites) and any(s.endswith("attn2") for s in sites)
    assert ds.sizes["layout"] > 1 and str(ds.layout.values[0]) in ("umt5", "clip")  # layout 0 is the text
    return ds


def _site_layout(ds, site: str):
    """The store's own key layout of ``site`` (sample, branch, key), read by name."""
    return ds.sel(layout=str(ds.site_key_layout.sel(site=site).values))


def _self(site: str) -> bool:
    return site.endswith("attn1")


def test_site_layouts_are_the_stored_names(store):
    names = as_str(store.layout.values)
    got = site_layouts(store)
    assert list(names[got]) == list(as_str(store.site_key_layout.values))
    for j, site in enumerate(as_str(store.site.values)):  # self-attention: image/video keys; cross: text
        mod = as_str(store.key_modality.isel(layout=int(got[j])).values)
        assert set(np.unique(mod[mod != ""])) == ({"image"} if _self(site) else {"text"})


def test_token_identity_counts_sinks_in_each_sites_layout(store):
    argmax = np.asarray(store.argmax_key.isel(call=0).transpose("sample", "step", "site", "branch", "head").values)
    got = dominant_counts(argmax, layout_classes(store), site_layouts(store))  # (sample, branch, site, step, class)
    image = WORD_CLASSES.index("image")
    want = np.zeros_like(got)
    for j, site in enumerate(as_str(store.site.values)):  # brute force: each sink looked up in its site's layout
        name = str(store.site_key_layout.sel(site=site).values)
        classes = key_classes(store, list(as_str(store.layout.values)).index(name))
        for s, t, b, h in np.ndindex(argmax.shape[0], argmax.shape[1], argmax.shape[3], argmax.shape[4]):
            k = argmax[s, t, j, b, h]
            if k >= 0:
                want[s, b, j, t, classes[s, b, k]] += 1
        per_class = got[:, :, j].sum(axis=(0, 1, 2))
        assert per_class.sum() == (argmax[:, :, j] >= 0).sum() > 0
        if _self(site):  # every self-attention sink is an image / video token
            assert per_class[image] == per_class.sum()
        else:  # every cross-attention sink is a text token
            assert per_class[image] == 0
    np.testing.assert_array_equal(got, want)


def test_sink_identity_names_video_tokens_at_attn1_and_text_at_attn2(store, tmp_path):
    res = sink_identity.run(Context(store, AnalysisConfig(n_resamples=99), tmp_path))
    rows = {r["site"]: r for r in res.tables[0].rows}
    assert set(rows) == set(as_str(store.site.values))
    kc = sink_identity.key_classes(store, analysis="test")
    for site, row in rows.items():
        lay = _site_layout(store, site)
        arg = np.asarray(store.argmax_key.sel(site=site).transpose("sample", "step", "call", "branch", "head").values)
        names = Counter()  # brute force: the identity of every sink, from the site's own layout
        for s, t, c, b, h in zip(*np.nonzero(arg >= 0), strict=True):
            k = arg[s, t, c, b, h]
            mod = str(lay.key_modality.values[s, b, k])
            if mod == "image":
                r, col = int(lay.key_image_row.values[s, b, k]), int(lay.key_image_col.values[s, b, k])
                frame = f"{int(lay.key_image_frame.values[s, b, k])}," if kc.video else ""
                names[f"image ({frame}{r},{col})"] += 1
            else:
                names[kc.classes[kc.class_code[s, kc.layouts.index(str(lay.layout.values)), b, k]]] += 1
        total = sum(names.values())
        assert row["n_dominant"] == total
        assert row["identity_1_share"] == pytest.approx(max(names.values()) / total)
        assert names[row["identity_1"]] == max(names.values())
        if _self(site):
            assert row["share image"] == 1.0 and row["identity_1"].startswith("image (")
        else:
            assert row["share image"] == 0.0 and not row["identity_1"].startswith("image")


def test_summary_labels_each_sites_keys_in_its_layout(store):
    for site in as_str(store.site.values):
        labels = dominant_keys(store, site)
        assert labels and all(lab.startswith("image patch") == _self(site) for lab in labels)


def test_summary_without_site_key_layout_needs_a_single_layout(store):
    site = str(store.site.values[0])
    with pytest.raises(ValueError, match="but no site_key_layout"):
        dominant_keys(store.drop_vars("site_key_layout"), site)  # several layouts: which is the site's?
    one = store.isel(layout=[int(site_layouts(store)[0])]).drop_vars("site_key_layout")
    assert dominant_keys(one, site) == dominant_keys(store, site)  # the only layout is the site's
