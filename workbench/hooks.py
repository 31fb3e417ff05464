"""Extension points: the small protocol through which lower modules call code that lives above them.

The Runner (`experiment.py`) and the suite check (`suite.check_suite`) know nothing of the creative
workflow, the model adapters or the metrics: they call the hooks registered here, by name. A module
registers its hooks when it is imported (`@hooks.register("after_run")`), the way a model adapter
registers itself (`@models.base.register`); the built-in providers of each hook are named in `BUILTIN`
as module names (like packaging entry points) and imported the first time a hook is asked for.

The hooks (each optional: with none registered, the Runner and the check do their plain work):

- `suite_check(suite) -> list[str]`: semantic problems of a suite ('key.path: what; the fix'), run by
  `suite.check_suite` in registration order (the workflow's, then the models', then the metrics').
- `element_library(folder) -> library`: the Element library in a folder (`Suite.element_library`).
- `resolve_case(suite, case, enhance) -> (case, info, error)`: before the jobs, a case with concrete
  inputs (an Element's portrait, speech made from `text:`), what was resolved for the record, an error.
- `resolve_model(case, model, suite) -> (model, route, error)`: a model entry as it runs for a case
  (`auto` -> the router's pick).
- `for_model(suite, case, model, info, error) -> (case, info, error)`: the case as one model runs it
  (the prompt enhancer writes for that model's family).
- `objective(spec) -> callable(record) -> float | None`: the suite's best-of-N objective, parsed.
- `face_reference(suite, element_name) -> FaceReference | None`: an Element's stored face embedding.
- `after_run(runner) -> {name: Path}`: files written once every job has run (rankings, compositions).

A foundation: imports nothing from the workbench.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

HOOKS = ("suite_check", "element_library", "resolve_case", "resolve_model", "for_model", "objective", "face_reference", "after_run")

# the built-in providers of the hooks, imported on first use (another provider: add its module here)
BUILTIN: tuple[str, ...] = ("workbench.workflow.steps", "workbench.models.checks", "workbench.metrics.checks")

_registered: dict[str, list[tuple[int, Callable[..., Any]]]] = {name: [] for name in HOOKS}
_loaded = False


def register(name: str, order: int = 50) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: provide hook `name` (lower `order` runs first; a single-valued hook takes the first)."""
    if name not in _registered:
        raise KeyError(f"unknown hook '{name}'; known: {', '.join(HOOKS)}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        entries = [e for e in _registered[name] if e[1] is not fn and
                   (e[1].__module__, e[1].__qualname__) != (fn.__module__, fn.__qualname__)]  # a reload replaces
        _registered[name] = sorted([*entries, (order, fn)], key=lambda e: e[0])
        return fn
    return deco


def load_builtin() -> None:
    """Import the built-in providers once (each registers its hooks on import)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN:
        importlib.import_module(module)


def providers(name: str) -> list[Callable[..., Any]]:
    """Every function registered for hook `name`, in order."""
    load_builtin()
    return [fn for _, fn in _registered[name]]


def first(name: str) -> Callable[..., Any] | None:
    """The function registered first for hook `name`, or None."""
    found = providers(name)
    return found[0] if found else None
