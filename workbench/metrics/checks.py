"""What the suite check asks of the metrics (the `suite_check` hook, workbench.hooks): `metrics:` names
known metrics (or groups)."""
from __future__ import annotations

from workbench import hooks
from workbench.metrics.registry import UnknownMetric, resolve
from workbench.suite import Suite


@hooks.register("suite_check", order=30)
def metric_problems(suite: Suite) -> list[str]:
    try:
        resolve(suite.metrics)
    except UnknownMetric as e:
        return [f"metrics: {e}"]
    return []
