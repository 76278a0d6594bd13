"""Edit presets: one line inside ``tracer.trace`` per intervention of the paper, and its controls.

Each preset builds an ``Edit`` (selector, operation, scope) and appends it to the open plan. Scope
keywords are shared by all presets: ``steps=(a, b)`` (step indices, closed), ``phase=(a, b)`` (t/T),
``sigma=(a, b)``, ``calls=[...]``, ``branch="both" | "cond" | "uncond"``, ``queries="all" | "used" |
"image" | "text"`` (query rows that are edited), ``heads=[...]``. ``layer`` (alias ``layers``) takes
every site address of ``record``.

>>> with tracer.trace(pipe, "a photo of a cat", seed=0):          # doctest: +SKIP
...     mask_topk(layer=12, k=1)                                    # Table 2, A1
...     mask_random(layer=12, k=1, match="modality", seed=3)        # its equal-budget control
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypedDict, Unpack

from interp.edits.patching import source_id
from interp.edits.spec import Edit, Operation, Scope, Selector
from interp.plan import QuerySet, SiteSpec, _append, add_source


class ScopeOptions(TypedDict, total=False):
    """The scope keywords every edit preset takes (fields of :class:`~interp.edits.spec.Scope`
    besides ``layers``): step / phase / sigma windows, denoiser calls, CFG branch, query rows, heads."""

    steps: tuple[int, int] | list[int]
    phase: tuple[float, float] | list[float]
    sigma: tuple[float, float] | list[float]
    calls: Sequence[int]
    branch: Literal["both", "uncond", "cond"]
    queries: QuerySet
    heads: Sequence[int]


SCOPE_KEYS: tuple[str, ...] = tuple(ScopeOptions.__annotations__)


def _scope(layer: SiteSpec, scope: ScopeOptions) -> Scope:
    unknown = set(scope) - set(SCOPE_KEYS)
    if unknown:
        raise TypeError(f"unknown scope keyword(s) {sorted(unknown)}; known: {', '.join(SCOPE_KEYS)}")
    conv = {k: tuple(v) if isinstance(v, list) else v for k, v in scope.items()}
    return Scope(layers=tuple(layer) if isinstance(layer, list) else layer, **conv)


def _layer(layer: SiteSpec | None, layers: SiteSpec | None) -> SiteSpec:
    if layer is not None and layers is not None:
        raise TypeError("give layer= or layers=, not both")
    value = layer if layer is not None else layers
    if value is None:
        raise TypeError("an edit needs layer= (a block index, fraction of depth, module path, group or list)")
    return value


def _words(words: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    return (words,) if isinstance(words, str) else tuple(words)


def edit(
    selector: Selector,
    operation: Operation,
    *,
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """The general form: any selector with any operation."""
    item = Edit(selector, operation, _scope(_layer(layer, layers), scope), name or selector.kind)
    return _append(item, "edit")


def mask_topk(
    *,
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    k: int = 1,
    eta: float = 0.0,
    select: str = "head",
    by: str = "used",
    modality: str | None = None,
    replay: str | None = None,
    replay_sample: int | None = None,
    words: list[str] | tuple[str, ...] | str = (),
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """Suppress the ``k`` keys with the largest incoming mass (score path, logit bias log eta).

    Sinks come from the same call's unedited attention (``select="head"``: per head; ``"union"``: one
    set for all heads by head-averaged mass), or from a baseline store with ``replay=PATH``.
    ``words`` keeps only the top-k keys of these word classes (``interp.edits.words``; e.g.
    ``"non_content"``: BOS / EOS, padding, function words), so a head whose sink is another kind of key
    edits nothing.
    """
    kind = "replay" if replay is not None else "topk"
    sel = Selector(
        kind=kind,
        k=k,
        select=select,
        by=by,
        modality=modality,
        source=replay,
        source_sample=replay_sample,
        words=_words(words),
    )
    return _append(
        Edit(sel, Operation("score", eta=eta), _scope(_layer(layer, layers), scope), name or f"mask_top{k}"),
        "mask_topk",
    )


def mask_keys(
    *,
    keys: list[Any] | tuple[Any, ...],
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    eta: float = 0.0,
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """Suppress fixed keys, by index or identity (``clip_bos``, ``clip_eos``, ``clip_pad``, ``t5_eos``,
    ``t5_pad`` (T5 and UMT5), ``image:ROW,COL``, on video ``image:FRAME,ROW,COL``)."""
    sel = Selector(kind="keys", keys=tuple(keys), k=len(keys))
    return _append(
        Edit(sel, Operation("score", eta=eta), _scope(_layer(layer, layers), scope), name or "mask_keys"),
        "mask_keys",
    )


def mask_bottomk(
    *,
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    k: int = 1,
    eta: float = 0.0,
    select: str = "head",
    by: str = "used",
    modality: str | None = None,
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """Control: suppress the ``k`` keys with the smallest incoming mass."""
    sel = Selector(kind="bottomk", k=k, select=select, by=by, modality=modality)
    return _append(
        Edit(sel, Operation("score", eta=eta), _scope(_layer(layer, layers), scope), name or f"mask_bottom{k}"),
        "mask_bottomk",
    )


def mask_random(
    *,
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    k: int = 1,
    eta: float = 0.0,
    select: str = "head",
    by: str = "used",
    modality: str | None = None,
    match: str | None = None,
    seed: int = 0,
    words: list[str] | tuple[str, ...] | str = (),
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """Control: suppress ``k`` random keys (seeded per sample, step, call, site and branch).

    ``match="modality"`` draws as many text and image keys as the top-k set has; ``"token_class"``
    matches its padding / content / special composition; ``"mass"`` draws random keys outside the
    top-k set until their total mass is closest to the top-k set's (the count may differ from k).
    ``words``: the control of ``mask_topk(words=...)``: per head as many keys as the top-k set has of
    these word classes (matched on that subset), never drawn from the whole top-k set.
    """
    sel = Selector(
        kind="random", k=k, select=select, by=by, modality=modality, match=match, seed=seed, words=_words(words)
    )
    return _append(
        Edit(
            sel,
            Operation("score", eta=eta),
            _scope(_layer(layer, layers), scope),
            name or f"mask_random{k}" + (f"_{match}" if match else ""),
        ),
        "mask_random",
    )


def replace_values(
    *,
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    k: int = 1,
    mode: str = "zero",
    alpha: float = 0.0,
    mean_over: str | None = None,
    select: str = "head",
    by: str = "used",
    keys: list[Any] | None = None,
    modality: str | None = None,
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """Value path: replace the values of the top-k keys (or fixed ``keys``) by 0, the mean value of the
    non-edited keys, or ``alpha * v + (1 - alpha) * mean`` (``mode="lerp"``)."""
    sel = (
        Selector(kind="keys", keys=tuple(keys), k=len(keys))
        if keys is not None
        else Selector(kind="topk", k=k, select=select, by=by, modality=modality)
    )
    op = Operation("value", mode=mode, alpha=alpha, mean_over=mean_over)
    return _append(Edit(sel, op, _scope(_layer(layer, layers), scope), name or f"values_{mode}"), "replace_values")


def noop_edit(
    *,
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    k: int = 1,
    select: str = "head",
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """The noise floor: a zero-bias edit (eta = 1) forced through the edit kernel."""
    sel = Selector(kind="topk", k=k, select=select)
    return _append(
        Edit(
            sel,
            Operation("score", eta=1.0, force_kernel=True),
            _scope(_layer(layer, layers), scope),
            name or "noop_kernel",
        ),
        "noop_edit",
    )


def patch(
    *,
    source: Any,
    layer: SiteSpec | None = None,
    layers: SiteSpec | None = None,
    target: str = "values",
    keys: list[Any] | None = None,
    name: str | None = None,
    **scope: Unpack[ScopeOptions],
) -> Edit:
    """Activation patching: replace this site's values (all, or fixed ``keys``), or its output rows
    (``target="output"``), with those ``source`` captured at the same step, call and branch.

    ``source`` is a finished ``Trace`` whose plan had ``record("capture", layers=...)``.
    """
    if not hasattr(source, "captured"):
        raise TypeError("patch(source=...) takes a Trace object traced with record('capture', ...)")
    sid = source_id(source)
    add_source(sid, source, "patch")
    sel = Selector(kind="keys", keys=tuple(keys), k=len(keys)) if keys is not None else Selector(kind="none", k=0)
    op = Operation("patch", target=target, source=sid)
    return _append(Edit(sel, op, _scope(_layer(layer, layers), scope), name or f"patch_{target}"), "patch")
