"""Interop with module-tree tools: attention sites as child modules, and an nnsight pipeline wrapper.

- ``site_modules(pipe, layers, stats=...)`` (context manager): every chosen attention module gets a
  child ``interp_site`` whose forward receives ``(q, k, v, out)`` of each attention kernel call and a
  grandchild ``interp_site.stats`` that receives interp's statistics of the call; removed on exit.
  Useful on its own (forward hooks on the site modules, ``named_modules``) and with nnsight.
- ``nnsight_pipeline(pipe)``: ``nnsight.NNsight`` over a module view of the pipeline (optional extra
  ``interp[nnsight]``), so the site modules are read inside an nnsight trace at stable addresses.

See ``docs/howto/nnsight.md``.
"""

from interp.interop.install import SITE_STATISTICS, InstalledSites, site_modules
from interp.interop.modules import SITE_ATTR, AttentionSite, SiteStatistics
from interp.interop.nnsight_wrapper import PipelineModule, nnsight_pipeline

__all__ = [
    "SITE_ATTR",
    "SITE_STATISTICS",
    "AttentionSite",
    "InstalledSites",
    "PipelineModule",
    "SiteStatistics",
    "nnsight_pipeline",
    "site_modules",
]
