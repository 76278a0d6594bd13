"""Token classes, gathering dominant keys and the stability statistics, against brute force."""

from collections import Counter

import numpy as np
import xarray as xr

from interp.analysis.sink_identity import IMAGE_BASE, _gather, key_classes, modal_share


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
