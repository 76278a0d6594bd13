"""Attention sites as child modules: stable, addressable places to read q, k, v and statistics.

Design
------
Tools that work on module trees (nnsight, ``named_modules``, forward hooks of one's own) address
values by *module path*. A site of ``interp`` is not a module: it is an interception of the attention
kernel call inside a module (``interp.sites.intercept``). This module gives every site a module of its
own, installed as a child of the attention module it belongs to:

- ``<attention>.interp_site`` (:class:`AttentionSite`): called once per attention kernel call with the
  final per-head ``(q, k, v, out)`` (B, H, N, D) the model passed to
  ``F.scaled_dot_product_attention`` and that call's output; it returns ``out`` unchanged, so an
  observer sees exactly what the model computed and the model gets exactly what it computed. A tool
  that replaces the site's output (an nnsight assignment to ``.output``) thereby replaces the
  attention output of that call.
- ``<attention>.interp_site.stats`` (:class:`SiteStatistics`): called right after the site with a
  dict of ``interp``'s statistics of that call (``max_mass``, ``entropy``, ... per batch row and head,
  the same tensors a trace stores) and its labels (``step``, ``call``, ``branches``); it returns the
  dict unchanged.

Both modules have no parameters and no buffers, so they change no ``state_dict`` and no device
placement. They are installed and removed by ``interp.interop.install.site_modules``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

SITE_ATTR = "interp_site"
"""Attribute name of the site module under its attention module."""


class SiteStatistics(nn.Module):
    """Identity module that receives one call's statistics: ``forward(values) -> values``.

    ``values`` maps statistic names (``max_mass``, ``argmax_key``, ``topk_keys``, ``topk_mass``,
    ``mass_per_key``, ``entropy``, ``mass_topk``, ``query_topk``, ``act_pre_max``, ``act_pre_p95``)
    to tensors whose first axis is the batch row of the call, and carries the labels ``step``
    (denoising step index), ``call`` (denoiser call within the step) and ``branches`` (CFG branch of
    each batch row).
    """

    def forward(self, values: dict[str, Any]) -> dict[str, Any]:
        return values


class AttentionSite(nn.Module):
    """Identity module of one attention site: ``forward(q, k, v, out) -> out``.

    ``site_path`` is the site's module path inside the denoiser (``transformer_blocks.3.attn``), the
    same identity the store uses (not ``path``: nnsight's envoys have a ``path`` of their own).
    ``stats`` is the child that receives the call's statistics.
    """

    def __init__(self, site_path: str) -> None:
        super().__init__()
        self.site_path = site_path
        self.stats = SiteStatistics()

    def forward(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor) -> Tensor:
        return out

    def extra_repr(self) -> str:
        return f"site_path={self.site_path!r}"
