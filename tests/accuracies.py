"""Accuracy records for report and recommendation tests, as measure_accuracy writes them."""
from __future__ import annotations

from quantkit.benchmark.results import Accuracy


def top1_accuracy(rows: int, top1: float, reference_top1: float | None = None,
                  drop_points: float | None = None, **metrics: float) -> Accuracy:
    """A classifier scored against labels (top-1), beside FP32's top-1."""
    return Accuracy(rows=rows, task="classification", metric="top1", label="top-1 accuracy",
                    value=top1, reference_value=reference_top1, drop_points=drop_points,
                    metrics={"top1": top1, **metrics})


def agreement_accuracy(rows: int, agreement: float) -> Accuracy:
    """A classifier without labels: its agreement with FP32's top class."""
    return Accuracy(rows=rows, task="classification", metric="argmax_agreement",
                    label="agreement with FP32's top class", value=agreement,
                    drop_points=(1 - agreement) * 100, metrics={"argmax_agreement": agreement})
