"""Which tokens are the sinks? Token identity of the dominant keys, per layer and step.

Run from anywhere: ``python tutorials/sink_token_identity.py`` (seconds on CPU, no download). It
traces four GenEval prompts into ``tutorial_out/identity.zarr``, names the dominant key of every head
by hand from the store's token coordinates, then runs the packaged analysis
(``interp.analysis.sink_identity``), which writes its tables and figure to
``tutorial_out/identity/``. Shown in docs/howto/sink_identity.md.
"""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np

import interp
from interp import record, tracer
from interp.analysis import sink_identity
from interp.analysis.config import AnalysisConfig
from interp.analysis.context import Context
from interp.summary import dominant_keys, key_label
from interp.sweep.prompts import balanced_subset, geneval

OUT = Path("tutorial_out")
STORE = OUT / "identity.zarr"
shutil.rmtree(STORE, ignore_errors=True)

pipe = interp.pipelines.tiny("sd3")
kwargs = interp.pipelines.tiny_call_kwargs("sd3")
for i, row in enumerate(balanced_subset(geneval(), n=4, seed=0)):  # 4 GenEval prompts, balanced by tag
    with tracer.trace(pipe, row.text, seed=i, store=STORE, tag=row.tag, **kwargs):
        record("mass", layers="all", queries="image", top=4)  # argmax_key and the top-4 keys per head

ds = interp.open_store(STORE)

# 1. By hand: every key has an identity in the store. Text keys carry their encoder, token id and
#    string, and BOS / EOS / padding flags (CLIP pads with its end-of-text token: EOS is the first
#    one, later ones are padding, told apart by position); image keys carry their patch row and column.
sample, site = 0, "transformer_blocks.1.attn"
layout = str(ds.site_key_layout.sel(site=site).values)  # "joint": [image patches, CLIP 77, T5]
keys = ds.sel(layout=layout, branch="cond").isel(sample=sample)
n_image = int((keys.key_modality == "image").sum())
print(f"layout {layout!r}: {n_image} image keys, then {int((keys.key_modality == 'text').sum())} text keys")
print(
    f"key 0 is {key_label(ds, sample, layout, 'cond', 0)}; key {n_image} is "
    f"{key_label(ds, sample, layout, 'cond', n_image)}"
)  # the 'index 0' of the paper's code is neither
assert bool(keys.key_is_bos.isel(key=n_image))  # CLIP BOS is the first text key, not key 0

# 2. How often is each identity the argmax key at this site (over samples, steps, heads)?
counts = dominant_keys(ds, site, branch="cond")
total = sum(counts.values())
for label, n in counts.most_common(5):
    print(f"  {n / total:6.1%}  {label}")

# The same count by class, from the raw arrays: image / CLIP BOS / CLIP EOS / CLIP pad / T5 / ...
arg = ds.argmax_key.sel(site=site, branch="cond").values  # (sample, step, call, head)
classes = Counter()
for s in range(ds.sizes["sample"]):
    lay = ds.isel(sample=s).sel(layout=layout, branch="cond")
    mod, enc = lay.key_modality.values, lay.key_encoder.values
    bos, eos, pad = lay.key_is_bos.values, lay.key_is_eos.values, lay.key_is_pad.values
    for k in arg[s].ravel():
        role = "BOS" if bos[k] else "EOS" if eos[k] else "pad" if pad[k] else "content"
        classes["image" if mod[k] == "image" else f"{str(enc[k]).split('-')[0]} {role}"] += 1
print("argmax key by class:", dict(classes.most_common()))
assert sum(classes.values()) == total

# 3. The packaged analysis: class shares per layer and step, stability across steps, heads and
#    prompts, and the index-0 overlap (key 0 vs image patch (0, 0) vs CLIP BOS), as tables and a figure.
ctx = Context(ds, AnalysisConfig(identity_top=1), out=OUT / "identity")
ctx.out.mkdir(parents=True, exist_ok=True)
for result in (sink_identity.run(ctx), sink_identity.run_index0(ctx)):
    for note in result.notes:
        print(note)
    print("wrote", ", ".join(sorted(p.name for p in result.files)))
    assert all(p.exists() for p in result.files)
assert np.all(np.isin(arg, np.arange(ds.sizes["key"])))
