"""Attention sites as modules: read q, k, v and interp's statistics with forward hooks, then in nnsight.

Run from anywhere: ``python tutorials/nnsight_sites.py`` (seconds on CPU, no download; needs the
optional extra: ``pip install 'interp[nnsight]'``). Shown in docs/howto/nnsight.md.
"""

import nnsight
import torch

import interp
from interp.interop import nnsight_pipeline, site_modules

pipe = interp.pipelines.tiny("sd3")
kwargs = interp.pipelines.tiny_call_kwargs("sd3")  # 4 steps, CFG: each site runs once per step on [uncond, cond]
kwargs["output_type"] = "pt"
PROMPT, SEED = "a photo of a cat", 0

# 1. Site modules without nnsight. Inside the block every chosen attention module has a child
#    `interp_site` (forward(q, k, v, out) -> out) with a child `stats` (forward(dict) -> dict).
seen = []
with site_modules(pipe, layers=[1], stats=["mass", "entropy"], prompt=PROMPT) as sites:
    site = sites["transformer_blocks.1.attn"]
    print(pipe.transformer.transformer_blocks[1].attn.interp_site)  # an ordinary child module
    site.register_forward_hook(lambda module, args, out: print("q, k, v, out:", [tuple(a.shape) for a in args]))
    site.stats.register_forward_hook(lambda module, args, out: seen.append(out))
    pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(SEED), **kwargs)
assert not hasattr(pipe.transformer.transformer_blocks[1].attn, "interp_site")  # removed on exit
print("statistics of step 0:", {k: tuple(v.shape) if torch.is_tensor(v) else v for k, v in seen[0].items()})

# 2. The same sites inside an nnsight trace. nnsight_pipeline wraps the pipeline with nnsight.NNsight
#    (public API only); seed= gives the same CPU generator tracer.trace uses.
model = nnsight_pipeline(pipe)
with site_modules(pipe, layers=[1, 3], stats=["mass", "entropy"], prompt=PROMPT) as sites:
    with model.trace(PROMPT, seed=SEED, **kwargs) as tracer:  # read
        max_mass = nnsight.save([])
        queries = nnsight.save([])
        for _step in tracer.iter[:4]:  # one occurrence of each site per denoiser call
            site = model.transformer.transformer_blocks[1].attn.interp_site
            q, k, v, out = site.inputs[0]  # the final per-head tensors the model gave SDPA
            queries.append(q.clone())
            max_mass.append(site.stats.output["max_mass"])  # (batch row = [uncond, cond], head)
        plain = nnsight.save(model.output.images)
    with model.trace(PROMPT, seed=SEED, **kwargs) as tracer:  # write
        for _step in tracer.iter[:4]:
            # the context-pre-only last block, addressed by its store path (sites.address gives it)
            last = model.get(sites.address("transformer_blocks.3.attn"))
            last.output = torch.zeros_like(last.output)  # writing a site's output edits the attention
        edited = nnsight.save(model.output.images)
print(
    "q per step:",
    tuple(queries[0].shape),
    "max_mass (cond, mean over heads):",
    [round(float(m[1].mean()), 5) for m in max_mass],
)

# 3. Compare with tracer.trace: the statistics are interp's own and the image is the same, bit for bit.
with interp.tracer.trace(pipe, PROMPT, seed=SEED, **kwargs) as t:
    interp.record("mass", "entropy", layers=[1], queries="used")
ref = torch.as_tensor(t.stats.max_mass.isel(call=0, site=0).values)  # (step, branch, head)
assert all(torch.equal(max_mass[s], ref[s]) for s in range(4))
assert torch.equal(plain, t.output.images)
print(
    "statistics and image equal to tracer.trace's; zeroing the last site's output changed the image:",
    not torch.equal(edited, plain),
)
