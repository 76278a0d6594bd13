"""Token classes, gathering dominant keys and the stability statistics, against brute force."""

from collections import Counter

import numpy as np
import xarray as xr

from interp.analysis.sink_identity import IMAGE_BASE, _gather, key_classes, modal_share
from interp.edits.words import WORD_CLASSES


def test_modal_share_matches_counter():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(7, 5, 3))
    valid = rng.random((7, 5, 3)) > 0.2
    for axis in range(3):
        got = modal_share(x, valid, axis)
        xm, vm = np.moveaxis(x, axis, 0), np.moveaxis(valid, axis, 0)
        for idx in np.ndindex(xm.shape[1:]):
            vals = [int(v) for v, ok in zip(xm[(slice(None), *idx)], vm[(slice(None), *idx)], strict=True) if ok]
            want = max(Counter(vals).values()) / len(vals) if vals else np.nan
            assert (np.isnan(got[idx]) and np.isnan(want)) or got[idx] == want


def layout_ds() -> xr.Dataset:
    """One sample, one layout, one branch: [4 image patches (2x2), CLIP BOS, 'a', EOS, pad, T5 'a', </s>, <pad>]."""
    mod = ["image"] * 4 + ["text"] * 7
    enc = ["image"] * 4 + ["CLIP-L/G"] * 4 + ["T5"] * 3
    bos = [0] * 4 + [1, 0, 0, 0, 0, 0, 0]
    eos = [0] * 4 + [0, 0, 1, 0, 0, 1, 0]
    pad = [0] * 4 + [0, 0, 0, 1, 0, 0, 1]
    row = [0, 0, 1, 1] + [-1] * 7
    col = [0, 1, 0, 1] + [-1] * 7
    dims = ("sample", "layout", "branch", "key")

    def v(x, dtype):
        return (dims, np.asarray(x, dtype=dtype).reshape(1, 1, 1, -1))

    return xr.Dataset(
        coords={
            "layout": ["joint"],
            "key_modality": v(mod, object),
            "key_encoder": v(enc, object),
            "key_is_bos": v(bos, bool),
            "key_is_eos": v(eos, bool),
            "key_is_pad": v(pad, bool),
            "key_image_row": v(row, np.int64),
            "key_image_col": v(col, np.int64),
        }
    )


def test_key_classes_of_a_joint_layout():
    kc = key_classes(layout_ds(), analysis="t")
    names = [kc.classes[c] for c in kc.class_code[0, 0, 0]]
    assert names == ["image"] * 4 + [
        "CLIP BOS",
        "CLIP content",
        "CLIP EOS",
        "CLIP pad",
        "T5 content",
        "T5 EOS",
        "T5 pad",
    ]
    ident = kc.identity[0, 0, 0]
    assert [kc.identity_name(int(i)) for i in ident[:4]] == ["image (0,0)", "image (0,1)", "image (1,0)", "image (1,1)"]
    assert ident[0] == IMAGE_BASE and kc.identity_name(int(ident[4])) == "CLIP BOS"


def test_gather_matches_indexing():
    rng = np.random.default_rng(2)
    table = rng.integers(0, 50, size=(3, 2, 9))
    keys = rng.integers(-1, 9, size=(3, 4, 1, 2, 5, 2))
    got = _gather(table, keys)
    for idx in np.ndindex(keys.shape):
        s, _, _, b, _, _ = idx
        k = keys[idx]
        assert got[idx] == (table[s, b, k] if k >= 0 else -1)


def two_layout_ds(site_layouts_: list[str]) -> xr.Dataset:
    """Two layouts of 4 keys, one sample and branch: ``image`` (2x2 patches) and ``text`` (CLIP BOS, 'a',
    'cat', EOS); one site per entry of ``site_layouts_`` (the layout name it reads its keys in)."""
    dims = ("sample", "layout", "branch", "key")

    def v(image, text, dtype):
        return (dims, np.asarray([image, text], dtype=dtype).reshape(1, 2, 1, 4))

    return xr.Dataset(
        coords={
            "layout": ["image", "text"],
            "site": [f"s{i}" for i in range(len(site_layouts_))],
            "key_modality": v(["image"] * 4, ["text"] * 4, object),
            "key_encoder": v(["image"] * 4, ["CLIP-L"] * 4, object),
            "key_token_str": v([""] * 4, ["<|startoftext|>", "a", "cat", "<|endoftext|>"], object),
            "key_is_bos": v([0] * 4, [1, 0, 0, 0], bool),
            "key_is_eos": v([0] * 4, [0, 0, 0, 1], bool),
            "key_is_pad": v([0] * 4, [0] * 4, bool),
            "key_image_row": v([0, 0, 1, 1], [-1] * 4, np.int64),
            "key_image_col": v([0, 1, 0, 1], [-1] * 4, np.int64),
        },
        data_vars={"site_key_layout": ("site", np.array(site_layouts_, dtype=object))},
    )


def test_each_site_is_read_in_its_own_layout():
    from interp.analysis.sink_identity import _layout_index
    from interp.analysis.token_identity import class_counts, layout_classes, site_layouts

    ds = two_layout_ds(["image", "text"])
    assert list(site_layouts(ds)) == [0, 1]
    kc = key_classes(ds, analysis="t")
    assert [_layout_index(ds, kc, s) for s in ("s0", "s1")] == [0, 1]
    # key 2 at both sites: image patch (1, 0) in the image layout, the noun "cat" in the text one
    keys = np.full((1, 1, 2, 1, 1, 1), 2, np.int64)  # (sample, step, site, branch, head, rank)
    counts = class_counts(keys, layout_classes(ds), site_layouts(ds))[0, 0, :, 0]  # (site, class)
    want = np.zeros_like(counts)
    want[0, WORD_CLASSES.index("image")] = want[1, WORD_CLASSES.index("noun")] = 1
    np.testing.assert_array_equal(counts, want)


def test_a_site_layout_the_store_lacks_is_refused():
    import pytest

    from interp.analysis.sink_identity import _layout_index
    from interp.analysis.token_identity import site_layouts

    ds = two_layout_ds(["image", "video"])
    with pytest.raises(ValueError, match="video"):
        site_layouts(ds)
    with pytest.raises(ValueError, match="video"):
        _layout_index(ds, key_classes(ds, analysis="t"), "s1")
    no_names = ds.drop_vars("site_key_layout")
    with pytest.raises(ValueError, match="site_key_layout"):
        site_layouts(no_names)
