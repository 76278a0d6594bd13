"""The plan functions a sweep config may call, by name, and building a condition's plan from them.

Design
------
A condition's plan in a config is a list of calls, each a function name and keyword arguments
(``{fn = "mask_topk", layer = 0.5, k = 1}``). :data:`PLAN_FUNCTIONS` maps the names a config may use
to attribute names of the ``interp`` package; they are looked up lazily with ``getattr`` when a config
is validated, so an edit function the tracing core adds later works as soon as it is exported from
``interp`` and registered here (or with :func:`register`). A name that is registered but not (yet)
exported fails validation with a message saying so.

Plans are built exactly as a user builds them in a ``with tracer.trace(...)`` body: a plan is opened
in the current context (``interp.plan.open_plan``), the functions are called, and the plan is closed.
So the config is checked by the plan functions' own validation, and the resulting :class:`Plan` is
the same object a hand-written trace would get. A function's variadic positional parameter (``record``'s
``*stats``) is given in a config under its own name (``stats = ["mass", "entropy"]``).

An argument whose value is the string ``"@baseline"`` is replaced, when the condition runs, by the
path of a single-sample store holding the trace of the baseline condition of the same prompt and
seed (``mask_topk(..., replay="@baseline")`` replays the baseline's key sets). Validation builds such
plans with the placeholder string itself; they are rebuilt per sample.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interp.plan import Plan, close_plan, open_plan

BASELINE_REF = "@baseline"

PLAN_FUNCTIONS: dict[str, str | Callable[..., Any]] = {
    "record": "record",
    # Edit presets (issue 4), exported from `interp` by the tracing core; each is usable once it exists there.
    "mask_topk": "mask_topk",
    "mask_keys": "mask_keys",
    "mask_bottomk": "mask_bottomk",
    "mask_random": "mask_random",
    "replace_values": "replace_values",
    "noop_edit": "noop_edit",
}
"""Config name -> attribute of the ``interp`` package (looked up lazily) or the function itself."""


class PlanFunctionError(ValueError):
    """A plan call of a config that cannot be made: unknown function, bad arguments or values."""


def register(name: str, fn: str | Callable[..., Any]) -> None:
    """Make ``fn`` (a callable, or the name of an ``interp`` attribute) callable from configs as ``name``."""
    PLAN_FUNCTIONS[name] = fn


def resolve(name: str) -> Callable[..., Any]:
    """The function a config name refers to; ``PlanFunctionError`` if unknown or not available."""
    if name not in PLAN_FUNCTIONS:
        raise PlanFunctionError(f"unknown plan function {name!r}; known: {', '.join(sorted(PLAN_FUNCTIONS))}")
    target = PLAN_FUNCTIONS[name]
    if callable(target):
        return target
    import interp

    fn = getattr(interp, target, None)
    if not callable(fn):
        raise PlanFunctionError(
            f"plan function {name!r} is registered but `interp.{target}` does not exist in this version of interp"
        )
    return fn


@dataclass(frozen=True)
class PlanCall:
    """One call of a plan function: its config name and keyword arguments (TOML values)."""

    fn: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.kwargs)

    @property
    def uses_baseline(self) -> bool:
        return any(_mentions_baseline(v) for _, v in self.kwargs)


def _mentions_baseline(value: Any) -> bool:
    if isinstance(value, str):
        return value == BASELINE_REF
    if isinstance(value, list | tuple):
        return any(_mentions_baseline(v) for v in value)
    if isinstance(value, Mapping):
        return any(_mentions_baseline(v) for v in value.values())
    return False


def _substitute(value: Any, baseline: Any) -> Any:
    if isinstance(value, str) and value == BASELINE_REF:
        return baseline
    if isinstance(value, list):
        return [_substitute(v, baseline) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, baseline) for v in value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, baseline) for k, v in value.items()}
    return value


def bind(call: PlanCall) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The function and its positional / keyword arguments; ``PlanFunctionError`` if they do not fit."""
    fn = resolve(call.fn)
    kwargs = call.arguments
    args: tuple[Any, ...] = ()
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without signatures: let the call itself check
        return fn, args, kwargs
    variadic = next((p.name for p in params.values() if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    if variadic is not None and variadic in kwargs:
        value = kwargs.pop(variadic)
        args = tuple(value) if isinstance(value, list | tuple) else (value,)
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        accepted = [p.name for p in params.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        raise PlanFunctionError(f"{call.fn}(): {exc}; its parameters are: {', '.join(accepted)}") from None
    return fn, args, kwargs


def build_plan(calls: Sequence[PlanCall], baseline: Any = None) -> Plan:
    """Call ``calls`` in order inside a fresh plan context and return the plan.

    ``baseline`` (if not None) replaces ``"@baseline"`` argument values. Errors
    raised by a plan function (``PlanError``, ``ValueError``, ``TypeError``) come back as
    ``PlanFunctionError`` with the index of the failing call in ``.index``.
    """
    token = open_plan()
    try:
        for i, call in enumerate(calls):
            try:
                fn, args, kwargs = bind(call)
                if call.uses_baseline and baseline is not None:
                    args, kwargs = _substitute(args, baseline), _substitute(kwargs, baseline)
                fn(*args, **kwargs)
            except PlanFunctionError as exc:
                exc.index = i  # type: ignore[attr-defined]
                raise
            except (ValueError, TypeError) as exc:
                err = PlanFunctionError(f"{call.fn}(): {exc}")
                err.index = i  # type: ignore[attr-defined]
                raise err from exc
    finally:
        plan = close_plan(token)
    return plan
