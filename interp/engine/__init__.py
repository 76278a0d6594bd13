"""The engine: one trace's lifecycle, shared by ``tracer.trace``, the sweep and the module-tree interop.

Design
------
Three stages, one module each (docs/design.md, The trace lifecycle):

- ``prepare`` (``prepare.py``): resolve the plan's sites once and run every check that can run
  before generation (store meaning, attention backends, edits, map budget, compiled regions); returns
  a ``Prepared`` and touches nothing;
- ``Session`` (``session.py``): for one ``with`` block, install the step clock and the site hooks of a
  ``Prepared`` and always remove them; it owns the per-trace caches (kernel cache, candidate keys,
  the edits' sources) and the observer;
- ``Observer`` (``observer.py``): the SDPA handler of every site; it computes the records'
  statistics, hands the edits a narrow ``SiteContext`` (``interp.edits.context``) and stores what
  they return, in a ``TraceBuffer``.

Dependencies run one way: engine -> edits, sites, kernels, clock, store checks; nothing below imports
the engine. Laying the buffer out as a dataset and appending it to a store stay with the caller
(``interp.tracer``), which knows the trace's sample.
"""

from interp.engine.observer import Observer, SiteRequest, TraceBuffer, site_requests
from interp.engine.prepare import CallSpec, Prepared, StoreTarget, prepare, resolve_requests
from interp.engine.session import LatentsProbe, Session

__all__ = [
    "CallSpec",
    "LatentsProbe",
    "Observer",
    "Prepared",
    "Session",
    "SiteRequest",
    "StoreTarget",
    "TraceBuffer",
    "prepare",
    "resolve_requests",
    "site_requests",
]
