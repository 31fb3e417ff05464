"""Evaluation harness: one module per concern (temporal, identity, lipsync, quality) + stats."""
from workbench.metrics.base import EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec
from workbench.metrics.registry import EvalResult, UnknownMetric, evaluate, metric_classes, resolve, score_specs

__all__ = ["EvalInputs", "EvalResult", "FrameStep", "Metric", "MetricUnavailable", "ScoreSpec",
           "UnknownMetric", "evaluate", "metric_classes", "resolve", "score_specs"]
