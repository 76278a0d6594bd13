"""Analyse a store lazily: dask-backed arrays, chunk-wise reductions, nothing loaded until asked.

Run from anywhere: ``python tutorials/analyse_lazily.py`` (seconds on CPU, no download). It traces four
GenEval prompts into ``tutorial_out/lazy.zarr`` (full per-key mass at every layer, the big variable of
real stores) and then works on the store the way one works on a 100 GB one. Shown in
docs/howto/lazy.md.
"""

import shutil
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

import interp
from interp import record, tracer
from interp.sweep.prompts import balanced_subset, geneval

STORE = Path("tutorial_out/lazy.zarr")
shutil.rmtree(STORE, ignore_errors=True)

# A small store to work on: one sample per trace, appended.
pipe = interp.pipelines.tiny("sd3")
kwargs = interp.pipelines.tiny_call_kwargs("sd3")
for i, row in enumerate(balanced_subset(geneval(), n=4, seed=0)):  # 4 GenEval prompts, balanced by tag
    with tracer.trace(pipe, row.text, seed=i, store=STORE, tag=row.tag, **kwargs):
        record("mass", "mass_full", "entropy", layers="all", queries="image")

# 1. Open lazily. Only metadata is read; every variable is a dask array chunked by sample
#    (`chunks={"sample": 64}` groups 64 one-sample chunks per dask task, a good default for scalars).
ds = interp.open_store(STORE, chunks={"sample": 64})
assert isinstance(ds.mass_per_key.data, da.Array)
print(f"mass_per_key {ds.mass_per_key.dims}: {ds.mass_per_key.data!r}")
print(f"mass_per_key would be {ds.mass_per_key.nbytes / 2**20:.1f} MiB in memory; nothing is loaded yet")

# 2. Reduce before loading: the mean MaxMass per layer and step, over samples, heads and branches.
#    xarray builds a dask graph; .compute() runs it chunk by chunk.
curve = ds.max_mass.isel(call=0).mean(("sample", "head", "branch"))
print(curve.compute().to_pandas().T.round(5).to_string())

# 3. Select by coordinates first (cheap), then compute: one tag, the cond branch, the last step.
#    Per-sample coordinates are small: load them (.values) to index, never index with a dask mask.
counting = ds.isel(sample=np.flatnonzero((ds.tag == "counting").values))
last = counting.entropy.sel(branch="cond").isel(step=-1, call=0).mean("head")
print("entropy at the last step, 'counting' prompts:", last.compute().values.round(4))

# 4. Several results in one pass over the data: dask.compute shares the reads.
mass = ds.mass_per_key.sel(branch="cond").isel(call=0)
text_keys = (ds.key_modality.sel(branch="cond") == "text").squeeze("layout", drop=True)
text_share = mass.where(text_keys).sum("key") / mass.sum("key")  # share of incoming mass on text keys
peak = mass.max("key")
text_share, peak = dask.compute(text_share.mean(("sample", "head")), peak.mean(("sample", "head")))
print("share of mass on text keys, per layer (rows) and step:\n" + text_share.to_pandas().T.round(3).to_string())

# Incoming mass sums to 1 over keys, and its maximum is the stored max_mass: the same numbers lazily.
assert np.allclose(ds.mass_per_key.sum("key").compute(), 1.0, atol=1e-5)
xr.testing.assert_allclose(peak, ds.max_mass.sel(branch="cond").isel(call=0).mean(("sample", "head")).compute())

# 5. Scale out: the same code runs on a dask cluster (dask.distributed.Client()) or with more threads
#    (dask.config.set(scheduler="threads", num_workers=8)); the store is read where the workers are.
with dask.config.set(scheduler="synchronous"):  # one thread: handy for debugging a reduction
    print("max over everything:", float(ds.max_mass.max().compute()))
