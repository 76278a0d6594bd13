"""Applying the edits of one site call, and recording what they did.

Design
------
The observer calls ``apply_edits`` for a site call with the edits whose scope covers this step and
call. For each edit it

1. ranks keys by the call's *unedited* incoming mass over the selector's query set (the fused
   log-sum-exp path where it applies), or takes fixed / random / replayed keys (``select.py``);
2. restricts the key sets to the (batch row, head) pairs in scope (branch and heads);
3. accumulates a per-key logit bias (score path: log eta, -inf for eta = 0) or replaces values
   (value path);

then runs the edit kernel (``interp.kernels.edit``) once for all edits of the call, and returns, with
the output, the verification of each edit per (branch, head) (``EditVerification``): the edited keys,
their incoming mass before the edit and after it, both *measured* over the scope's query rows, and
the entropy after it. The observer stores them per (step, call, site).
An edit that changes nothing (eta = 1, empty key set, nothing in scope) returns the original kernel
output, bit-identical to no edit, unless the operation forces the edit kernel (the noise floor).

Several edits may act on one call (their biases add up, value replacements apply in plan order) if
they share the same query-row, branch and head scope.

What an edit sees of the call is a narrow ``SiteContext`` (``interp.edits.context``): the engine
builds it, this module reads it and returns what it did; it never reaches into the observer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.edits.context import SiteContext
from interp.edits.select import choose_keys
from interp.edits.spec import Edit
from interp.kernels.edit import edited_attention, edited_attention_lse, rounded_bias
from interp.kernels.lse_path import compute_stats
from interp.kernels.reference import StatRequest, mask_to_bias
from interp.plan import PlanError
from interp.sites.intercept import SDPACall


@dataclass(frozen=True)
class EditVerification:
    """What one edit did at one call, per (batch row, head): the stored ``edit_*#i`` variables."""

    edit: int  # the edit's index in the plan
    keys: Tensor  # (B, H, K) int32 edited keys, -1 padded
    n_keys: Tensor  # (B, H) int32
    mass_before: Tensor  # (B, H) measured incoming mass of the keys, unedited (NaN out of scope)
    mass_after: Tensor  # (B, H) the same, edited
    entropy_after: Tensor  # (B, H) entropy of the edited attention

    def variables(self) -> dict[str, Tensor]:
        """Store variable name -> value, for this edit."""
        i = self.edit
        return {
            f"edit_keys#{i}": self.keys,
            f"edit_n_keys#{i}": self.n_keys,
            f"edit_mass_before#{i}": self.mass_before,
            f"edit_mass_after#{i}": self.mass_after,
            f"edit_entropy_after#{i}": self.entropy_after,
        }


@dataclass
class EditResult:
    """What the edits of a call did: the output, the bias in force (the records of the call need it)
    and each edit's verification."""

    output: Tensor
    key_bias: Tensor | None  # (B, H, Nk), fp32, as the kernel applied it (rounded to the call's dtype)
    row_mask: Tensor | None  # (Nq,) bool: rows the bias applies to (None: all)
    changed: bool
    # (B, H, Nq) row log-sum-exp of the edited logits, when the kernel gave it: only for whole-scope edits
    # of calls without a mask, so it always belongs to exactly the logits ``key_bias`` describes
    lse: Tensor | None = None
    verifications: tuple[EditVerification, ...] = ()


def _member(keys: Tensor, n_keys: int) -> Tensor:
    """(B, H, Nk) bool membership of a -1 padded (B, H, K) key tensor."""
    b, h, _ = keys.shape
    idx = torch.where(keys >= 0, keys, torch.full_like(keys, n_keys))
    m = torch.zeros(b, h, n_keys + 1, dtype=torch.bool, device=keys.device)
    m.scatter_(-1, idx, True)
    return m[..., :n_keys]


def _replace_values(v: Tensor, member: Tensor, edit: Edit, modality_mask: Tensor | None) -> Tensor:
    op = edit.operation
    out = v.clone()
    if op.mode == "zero":
        return out.masked_fill(member[..., None], 0.0)
    keep = ~member
    if modality_mask is not None:
        keep = keep & modality_mask
    w = keep.to(v.dtype)[..., None]
    mean = (v * w).sum(dim=2, keepdim=True) / w.sum(dim=2, keepdim=True).clamp(min=1)
    target = mean.expand_as(v) if op.mode == "mean" else op.alpha * v + (1.0 - op.alpha) * mean
    return torch.where(member[..., None], target.to(v.dtype), out)


def apply_edits(ctx: SiteContext, call: SDPACall, active: Sequence[tuple[int, Edit]]) -> EditResult:
    """Apply the ``active`` (edit index, edit) pairs to this call; the result says what they did."""
    q, k, v = call.q, call.k, call.v
    b, h, nq, _ = q.shape
    nk = k.shape[-2]
    site = ctx.site
    branches = list(ctx.branches)
    scopes = {(e.scope.queries, e.scope.branch, e.scope.heads) for _, e in active}
    if len(scopes) > 1:
        raise PlanError(
            f"site {site.path}: edits active at the same call must share their query-row, branch "
            f"and head scope; got {sorted(map(str, scopes))}"
        )
    scope = active[0][1].scope
    layouts = [ctx.layout(site.key_layout, br, nk) for br in branches]
    dev = q.device
    # the (row, head) scope is known on the host: no device sync to decide what runs
    if scope.heads is not None and max(scope.heads) >= h:
        raise PlanError(f"site {site.path} has {h} heads; the edit names head {max(scope.heads)}")
    pairs_host = np.array(
        [
            [scope.branch in ("both", br) and (scope.heads is None or hi in scope.heads) for hi in range(h)]
            for br in branches
        ],
        dtype=bool,
    )
    all_pairs, any_pair = bool(pairs_host.all()), bool(pairs_host.any())
    pairs = torch.as_tensor(pairs_host).to(dev, non_blocking=True)
    rows = ctx.query_rows(scope.queries, nq, dev)  # "all" leaves out rows a mask blocks (HunyuanVideo 1.5)
    if scope.queries == "all" and rows.numel() == nq:
        rows = None
    scope_rows = rows if rows is not None else torch.arange(nq, device=dev)
    mask_bias = mask_to_bias(call.attn_mask)
    mass_cache: dict[str, Tensor] = {}

    def canonical(query_set: str) -> str:
        """Query sets naming the same rows share one mass computation ("used" is "all" where no
        stream's outputs are discarded)."""
        if query_set == "__scope__":
            query_set = scope.queries
        return "all" if query_set == "used" and not site.unused_query_streams else query_set

    def unedited_mass(query_set: str) -> Tensor:
        query_set = canonical(query_set)
        if query_set not in mass_cache:
            r = scope_rows if query_set == "all" and rows is None else ctx.query_rows(query_set, nq, dev)
            mass_cache[query_set] = compute_stats(
                q,
                k,
                scale=call.scale,
                query_rows=r,
                request=StatRequest(mass_full=True),
                bias=mask_bias,
                kernel=ctx.kernel,
            )["mass_per_key"]
        return mass_cache[query_set]

    key_bias = torch.zeros(b, h, nk, dtype=torch.float32, device=dev)
    values: Tensor | None = None
    output_patch: Tensor | None = None
    forced = False
    changed = False
    verifications = []
    for ei, e in active:
        sel = e.selector
        mass = unedited_mass(sel.by) if sel.kind in ("topk", "bottomk", "random") else None
        cand = ctx.candidates(site.key_layout, branches, sel.modality, dev) if mass is not None else None
        replayed = None
        if sel.kind == "replay":
            replayed = ctx.sources[ei].lookup(site.path, ctx.step, ctx.call, branches).to(dev)
        keys = choose_keys(
            sel,
            mass,
            layouts,
            n_heads=h,
            seed_parts=(ctx.seed, ctx.step, ctx.call, ctx.site_index, ei),
            replayed=replayed,
            candidate_mask=cand,
            device=dev,
        )
        keys = torch.where(pairs[..., None], keys, torch.full_like(keys, -1))
        member = _member(keys, nk)
        if sel.kind == "none":  # every key (patching a whole site)
            member = pairs[..., None].expand(b, h, nk)
        op = e.operation
        if op.path == "patch":
            src = patch_source(ctx.sources[ei], site.path, ctx.step, ctx.call, branches, dev)
            if op.target == "values":
                base = values if values is not None else v
                values = torch.where(member[..., None], src["v"].to(base.dtype), base)
            else:
                output_patch = src["out"]
            changed = True
        elif op.path == "score":
            bias_val = -math.inf if op.eta == 0.0 else math.log(op.eta)
            # a fill with a Python scalar: no host-to-device copy (a scalar tensor would synchronise)
            key_bias = key_bias + torch.zeros_like(key_bias).masked_fill_(member, bias_val)
            changed |= keys.shape[-1] > 0 and any_pair and op.eta != 1.0
        else:
            mod = None
            if op.mean_over is not None:
                lay_mod = np.stack([lay.modality == op.mean_over for lay in layouts])
                mod = torch.as_tensor(lay_mod, device=dev)[:, None, :].expand(b, h, nk)
            values = _replace_values(values if values is not None else v, member, e, mod)
            changed |= keys.shape[-1] > 0 and any_pair
        forced |= op.force_kernel
        verifications.append((ei, keys, member))
    nothing = not changed and not forced
    key_bias = rounded_bias(key_bias, q.dtype)  # what the kernel applies, and what verification measures
    whole = rows is None and all_pairs and output_patch is None and call.attn_mask is None
    if nothing or scope_rows.numel() == 0 or not any_pair:
        out = call.run_original()
        result = EditResult(out, None, None, False)
    elif whole:
        out, lse = edited_attention_lse(
            q, k, v, scale=call.scale, key_bias=key_bias, values=values, cache=ctx.kernel_cache
        )
        result = EditResult(out, key_bias, None, True, lse)
    else:
        partial = rows is not None or not all_pairs
        original = call.run_original() if partial else None
        out = edited_attention(
            q,
            k,
            v,
            scale=call.scale,
            key_bias=key_bias,
            values=values,
            rows=rows,
            pairs=None if all_pairs else pairs,
            attn_mask=call.attn_mask,
            original=original,
        )
        row_mask = None
        if rows is not None:
            row_mask = torch.zeros(nq, dtype=torch.bool, device=dev)
            row_mask[rows] = True
        if output_patch is not None:
            region = out.index_select(2, scope_rows)
            source_rows = output_patch.index_select(2, scope_rows).to(out.dtype)
            patched = torch.where(pairs[:, :, None, None], source_rows, region)
            out = out.clone()
            out[:, :, scope_rows] = patched
        result = EditResult(out, key_bias, row_mask, True)
    result.verifications = _verify(
        ctx, call, verifications, key_bias, mask_bias, scope_rows, pairs, unedited_mass, result.lse
    )
    return result


def patch_source(
    source: Any, path: str, step: int, call: int, branches: list[str], device: torch.device
) -> dict[str, Tensor]:
    """The source trace's captured values and output at this site, step and call, rows by branch."""
    entry = source.captured.get((path, step, call))
    if entry is None:
        raise PlanError(f"patch source has no capture of {path} at step {step}, call {call}")
    rows = []
    for br in branches:
        if br not in entry["branches"]:
            raise PlanError(f"patch source has no {br!r} branch at {path}")
        rows.append(entry["branches"].index(br))
    idx = torch.as_tensor(rows, device=entry["v"].device)
    return {"v": entry["v"].index_select(0, idx).to(device), "out": entry["out"].index_select(0, idx).to(device)}


def _verify(
    ctx: SiteContext,
    call: SDPACall,
    verifications: list,
    key_bias: Tensor,
    mask_bias: Tensor | None,
    scope_rows: Tensor,
    pairs: Tensor,
    unedited_mass,
    lse: Tensor | None = None,
) -> tuple[EditVerification, ...]:
    """Per edit: keys, measured mass before and after over the scope's rows, entropy after.

    ``lse``: the edited kernel's row log-sum-exp (whole scope, no mask), so the fused path measures
    the edited attention in one pass."""
    before = unedited_mass("__scope__")
    bias = key_bias[:, :, None, :]
    if mask_bias is not None:
        bias = bias + mask_bias
    after = compute_stats(  # the fused GPU path on CUDA; the exact reference path on CPU or when asked
        call.q,
        call.k,
        scale=call.scale,
        query_rows=scope_rows,
        request=StatRequest(mass_full=True, entropy=True),
        bias=bias,
        kernel="reference" if ctx.kernel == "reference" else "auto",
        lse=lse,
    )
    nan = float("nan")  # a Python scalar: torch.where takes it without a host-to-device copy
    out = []
    for ei, keys, member in verifications:
        width = max(keys.shape[-1], 1)
        padded = torch.full((*keys.shape[:-1], width), -1, dtype=torch.int32, device=keys.device)
        padded[..., : keys.shape[-1]] = keys.to(torch.int32)
        out.append(
            EditVerification(
                edit=ei,
                keys=padded,
                n_keys=member.sum(-1).to(torch.int32),
                mass_before=torch.where(pairs, (before * member).sum(-1), nan),
                mass_after=torch.where(pairs, (after["mass_per_key"] * member).sum(-1), nan),
                entropy_after=torch.where(pairs, after["entropy"], nan),
            )
        )
    return tuple(out)
