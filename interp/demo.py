"""The main job: H1 observation and the A1 intervention on the trained model organism, end to end.

For held-out captions of every GenEval tag (``interp.organism.eval_prompts``), each (caption, seed)
is traced twice with the same seed: the baseline, recording incoming mass, entropy and concentration
at every layer and step, and the A1 condition, suppressing the top-1 key per head at the middle
block (``mask_topk(layer=0.5, k=1)``, eta = 0) with the same records. Both go into one Zarr store.
The organism's exact scorer then checks every image, and the job prints the H1 summary (max mass per
layer, the dominant key's identity), the measured mass the edit removed, and the paired difference
in GenEval-style accuracy with the BCa bootstrap CI that ``interp analyze`` uses for the same pairs
(``interp.stats.paired_difference_ci``; the method is printed with the interval).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

RECORDS = ("mass", "entropy", "mass_topk")


def run_organism_demo(store: Path, n_per_tag: int = 4, steps: int | None = None, seed: int = 0) -> str:
    from interp import mask_topk, open_store, record, tracer
    from interp.organism import eval_prompts, load_organism, score
    from interp.summary import summarize

    pipe = load_organism()
    pairs = eval_prompts(n_per_tag, seed_offset=seed)
    kwargs = {} if steps is None else {"num_inference_steps": steps}
    images: dict[str, list] = {"baseline": [], "A1_mid_top1": []}
    captions, tags = [], []
    for spec, s in tqdm(pairs, desc="organism: baseline + A1", unit="prompt"):
        for cond in images:
            with tracer.trace(pipe, spec.caption, seed=s, store=store, condition=cond, tag=spec.tag, **kwargs) as t:
                record(*RECORDS, layers="all")
                # the baseline's eta = 1 edit is a no-op (plain kernel, bit-identical) that keeps the store's
                # variables the same for both conditions
                mask_topk(layer=0.5, k=1, eta=0.0 if cond == "A1_mid_top1" else 1.0, name="A1")
            images[cond].append(t.image)
        captions.append(spec.caption)
        tags.append(spec.tag)
    base = score(images["baseline"], captions)
    edit = score(images["A1_mid_top1"], captions)
    ds = open_store(store)
    lines = [f"store: {store} ({ds.sizes['sample']} samples: {len(pairs)} held-out captions x 2 conditions)", ""]
    lines.append("H1 (baseline): " + summarize(ds.isel(sample=np.flatnonzero(ds.condition.values == "baseline"))))
    edited = ds.isel(sample=np.flatnonzero(ds.condition.values == "A1_mid_top1"))
    before = float(np.nanmean(edited.edit_mass_before.values))
    after = float(np.nanmean(edited.edit_mass_after.values))
    lines += [
        "",
        f"A1 (mask_topk(layer=0.5, k=1), eta=0): removed incoming mass per head, measured: "
        f"{before:.4f} before -> {after:.4f} after (uniform = {1 / int(ds.site_keys.max()):.4f})",
    ]
    lines.append(accuracy_line(edit.correct, base.correct, captions))
    for tag in dict.fromkeys(tags):
        sel = np.array([t == tag for t in tags])
        lines.append(f"  {tag:<14} baseline {base.correct[sel].mean():.2f}  A1 {edit.correct[sel].mean():.2f}")
    return "\n".join(lines)


def accuracy_line(edited: np.ndarray, baseline: np.ndarray, captions: list[str]) -> str:
    """The paired accuracy difference with its CI, by the method of ``interp analyze`` (Table 8):
    ``interp.stats.paired_difference_ci``, so one set of pairs gets one interval wherever it is printed."""
    from interp.stats import paired_difference_ci

    e, b = np.asarray(edited, dtype=float), np.asarray(baseline, dtype=float)
    ci = paired_difference_ci(e, b, prompts=captions)
    return (
        f"accuracy (exact scorer): baseline {b.mean():.3f}, A1 {e.mean():.3f}, paired difference "
        f"{(e - b).mean():+.3f} [{ci.low:+.3f}, {ci.high:+.3f}] over {e.size} pairs, {ci.describe()}"
    )
