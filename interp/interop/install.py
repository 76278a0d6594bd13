"""Installing site modules on a pipeline for the duration of a ``with`` block.

Design
------
``site_modules(pipe, layers, stats=...)`` is the module-tree face of a trace's sites, for tools that
run the pipeline themselves (nnsight, a user's own loop). On enter it

1. resolves ``layers`` against the pipeline's sites exactly as ``record(layers=...)`` does
   (``interp.sites.select``) and runs the engine's pre-generation checks on them
   (``interp.engine.prepare``: attention backends that bypass the interception point, compiled
   regions), and refuses a module that already has a child of that name;
2. adds an :class:`~interp.interop.modules.AttentionSite` child (``interp_site``) to each chosen
   attention module, and opens an engine session (``interp.engine.Session``): interp's own
   interception on each attention module and the step clock on the denoiser;
3. at every attention kernel call, the session's handler lets interp's observer
   (``interp.engine.Observer``, the same code a trace runs) run the original kernel call and
   compute the requested statistics, then calls the site module with ``(q, k, v, out)`` and its
   ``stats`` child with the statistics. The handler returns what the site module returned: ``out``
   itself unless a tool replaced it.

On exit (also after an exception) every hook is removed and every child deleted, so the pipeline's
modules are exactly as before. Observation is bit-identical: the attention output is the original
kernel call's result, unchanged. Statistics that need the module's *output* (``act_norms`` with
``where="post_out"``) are not available here (they come after the site call); ``act_norms`` means
the ``pre_out`` norms. ``capture``, ``maps`` and edits belong to ``tracer.trace``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import Tensor, nn

from interp.adapters import adapter_for
from interp.adapters.base import Adapter
from interp.engine import CallSpec, Observer, Session, SiteRequest, TraceBuffer, prepare
from interp.interop.modules import SITE_ATTR, AttentionSite
from interp.plan import Plan, PlanError, Record, SiteSpec
from interp.sites.intercept import SDPACall
from interp.sites.select import resolve_sites
from interp.statistics import SITE_STATISTICS


@dataclass
class InstalledSites:
    """The site modules of one ``site_modules`` block.

    ``modules`` maps each site's module path inside the denoiser to its :class:`AttentionSite`;
    ``address(path)`` is that module's path from the pipeline (``transformer.transformer_blocks.3.attn.
    interp_site``), which is also its nnsight address on a wrapper from ``nnsight_pipeline``.
    """

    denoiser_attr: str
    modules: dict[str, AttentionSite] = field(default_factory=dict)
    record: Record | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self.modules)

    def address(self, path: str) -> str:
        if path not in self.modules:
            raise KeyError(f"no site module at {path!r}; installed: {', '.join(self.modules)}")
        return f"{self.denoiser_attr}.{path}.{SITE_ATTR}"

    def __getitem__(self, path: str) -> AttentionSite:
        if path not in self.modules:
            raise KeyError(f"no site module at {path!r}; installed: {', '.join(self.modules)}")
        return self.modules[path]


def _record(stats: Sequence[str], paths: Sequence[str], **options: Any) -> Record | None:
    stats = (stats,) if isinstance(stats, str) else tuple(stats)
    for name in stats:
        if name not in SITE_STATISTICS:
            raise PlanError(
                f"site modules receive the statistics computed at the kernel call ({', '.join(SITE_STATISTICS)}); "
                f"got {name!r} (use tracer.trace for it)"
            )
    if not stats:
        return None
    return Record(stats=stats, layers=tuple(paths), where=("pre_out",), **options)


def _handler(observer: Observer, req: SiteRequest, site: AttentionSite, call: SDPACall) -> Tensor:
    observer.buffer = TraceBuffer()  # one call's statistics at a time
    out = observer.on_sdpa(req.site.path, call)
    values: dict[str, Any] = {var: entries[-1][4] for var, entries in observer.buffer.entries.items() if entries}
    result = site(call.q, call.k, call.v, out)
    clock = observer.clock
    site.stats({**values, "step": clock.step, "call": clock.call, "branches": tuple(clock.branches)})
    return result


@contextlib.contextmanager
def site_modules(
    pipe: Any,
    layers: SiteSpec = "all",
    *,
    stats: Sequence[str] = (),
    queries: str = "used",
    top: int = 8,
    k: int = 5,
    ord: Sequence[str] = ("2", "inf"),
    prompt: str | None = None,
    negative_prompt: str | None = None,
    call_kwargs: dict[str, Any] | None = None,
    kernel: str = "auto",
) -> Iterator[InstalledSites]:
    """Install an ``interp_site`` child module (and its ``stats`` child) on every chosen attention.

    ``layers`` takes every site address of ``record`` (block index, fraction of depth, module path,
    group, list). ``stats``, ``queries``, ``top``, ``k`` and ``ord`` mean what they mean in
    ``record``. ``prompt`` / ``negative_prompt`` (optional) label the text keys' token identities;
    without them text keys are unknown tokens, which changes no statistic. ``call_kwargs`` are the
    pipeline call's keyword arguments where an adapter needs them for the token layout (PixArt's
    ``max_sequence_length``, Flux's ``prompt_2``).
    """
    adapter: Adapter = adapter_for(pipe)
    denoiser: nn.Module = adapter.denoiser(pipe)
    chosen = resolve_sites(layers, adapter.sites(pipe), adapter)
    ords = tuple("inf" if str(o) in ("inf", "float('inf')") else str(o) for o in ord)
    record = _record(stats, [s.path for s in chosen], queries=queries, top=top, k=k, ord=ords)
    requests = [SiteRequest(s, i, (record,) if record is not None else ()) for i, s in enumerate(chosen)]
    # the texts only label the token layouts; the uncond branch's is "" unless given
    call = CallSpec(prompt, None, dict(call_kwargs or {}), negative_prompt=negative_prompt or "")
    plan = Plan((record,) if record is not None else ())
    prepared = prepare(pipe, plan, call, kernel=kernel, adapter=adapter, requests=requests)
    for site in chosen:
        module = denoiser.get_submodule(site.path)
        if SITE_ATTR in module._modules or hasattr(module, SITE_ATTR):
            raise RuntimeError(
                f"{site.path} already has an attribute {SITE_ATTR!r}: site modules are installed there already "
                "(nested site_modules blocks on one pipeline are not supported)"
            )
    installed = InstalledSites(adapter.denoiser_attr, record=record)
    for req in requests:
        installed.modules[req.site.path] = AttentionSite(req.site.path)

    def handler(observer: Observer, req: SiteRequest) -> Any:
        return partial(_handler, observer, req, installed.modules[req.site.path])

    added: list[tuple[nn.Module, AttentionSite]] = []
    try:
        for path, site_module in installed.modules.items():
            module = denoiser.get_submodule(path)
            module.add_module(SITE_ATTR, site_module)
            added.append((module, site_module))
        # post_output=False: statistics of the module's output come after the site call (docstring)
        with Session(prepared, handler=handler, post_output=False):
            yield installed
    finally:
        for module, site_module in added:
            if module._modules.get(SITE_ATTR) is site_module:
                del module._modules[SITE_ATTR]
