"""Probe: why per-trace routing objects fail on a compiled denoiser (issue 16; not library code)

Why this exists
---------------
interp traces compiled denoisers through one *stable* route per denoiser (``interp/sites/routed.py``,
``docs/howto/compiled.md``). This script keeps the evidence for that design: it routes with *fresh*
objects per trace, as eager tracing does, on the tiny SD3 pipeline (CPU is enough):

1. compile the transformer in place (``--backend inductor`` for real code generation, ``eager`` for a
   fast check of dynamo's tracing alone) and run the plain pipeline once;
2. trace it ``--traces`` times, each with fresh routing objects: one ``TorchFunctionMode`` entered
   around the pipeline call (outside the compiled region), forward pre/post hooks on the chosen
   attention modules that set / clear the current site (a plain attribute store, traceable), and a
   ``torch.compiler.disable``d handler that records the site and runs the original
   ``scaled_dot_product_attention`` call;
3. print, per trace, the sites that reached the handler, whether the output is bit-identical to the
   compiled plain output, and finally whether the plain compiled pipeline still gives its output.

Findings (torch 2.14, CPU; ``--backend eager`` and ``inductor``): traces on the same sites as before route
every call and stay bit-identical to the compiled plain run (with inductor, where compiled != eager);
but a trace on *other* sites than an earlier one (blocks [2] after [0, 1]) routed none of its calls,
silently: dynamo does not guard on module hooks by default, so a graph traced with the earlier trace's
hook bodies can be reused. The plain compiled pipeline is unaffected.

    python benchmarks/compiled_routing_probe.py --backend eager
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import interp

KW = dict(num_inference_steps=2, output_type="latent", max_sequence_length=32, guidance_scale=5.0, height=32, width=32)
PROMPT = "a photo of a red bench"
LAYERS = ([0, 1], [0, 1], [2], [3], [0, 1])  # the sites of successive traces


def plain(pipe):
    return pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(0), **KW).images


def routed_trace(pipe, layers: list[int]) -> tuple[list[str], torch.Tensor]:
    """One trace with fresh routing objects; returns the sites the handler saw and the output."""

    class State:
        path: str | None = None

    state = State()
    seen: list[str] = []

    @torch.compiler.disable
    def route(path, func, args, kwargs):
        seen.append(path)
        return func(*args, **kwargs)

    class Route(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention and state.path is not None:
                return route(state.path, func, args, kwargs)
            return func(*args, **kwargs)

    handles = []
    for i in layers:
        attn = pipe.transformer.transformer_blocks[i].attn

        def pre(module, args, path=f"transformer_blocks.{i}.attn"):
            state.path = path

        def post(module, args, output):
            state.path = None

        handles += [attn.register_forward_pre_hook(pre), attn.register_forward_hook(post)]
    try:
        with Route():
            out = plain(pipe)
    finally:
        for h in handles:
            h.remove()
    return seen, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="inductor")
    ap.add_argument("--traces", type=int, default=len(LAYERS))
    args = ap.parse_args()
    pipe = interp.pipelines.tiny("sd3")
    eager = plain(pipe)
    pipe.transformer.compile(backend=args.backend)
    t0 = time.perf_counter()
    ref = plain(pipe)
    print(f"compiled plain: first call {time.perf_counter() - t0:.1f} s; equal to eager: {torch.equal(ref, eager)}")
    for n, layers in enumerate(LAYERS[: args.traces]):
        t0 = time.perf_counter()
        seen, out = routed_trace(pipe, layers)
        print(
            f"trace {n} of blocks {layers}: {time.perf_counter() - t0:.1f} s, handler saw {len(seen)} calls "
            f"(expected {2 * len(layers)}: {len(layers)} sites x 2 steps) {sorted(set(seen))}; bit-identical to "
            f"compiled plain: {torch.equal(out, ref)}"
        )
    print(f"compiled plain afterwards unchanged: {torch.equal(plain(pipe), ref)}")


if __name__ == "__main__":
    main()
