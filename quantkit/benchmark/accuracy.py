"""How good one target's outputs are, with the metric the model's task needs.

Pure numpy on outputs the runner already saved, so accuracy is scored the same way for
every backend and host, and can be recomputed from saved outputs without any runtime.
The metrics themselves live in `quantkit.metrics.tasks`; this module picks the task, scores
a target against the eval set's truth and FP32's outputs, and names the headline.
"""
from __future__ import annotations

import numpy as np

from quantkit.benchmark.results import Accuracy
from quantkit.data.dataset import Dataset
from quantkit.data.feeds import check_label_range
from quantkit.errors import QuantkitError
from quantkit.metrics import class_scores, label_vector
from quantkit.metrics.tasks import choose_headline, drop_points, score
from quantkit.zoo.config import Task


def resolve_task(explicit: Task | str | None, eval_set: Dataset | None) -> Task:
    """The task named (option or zoo entry), else the one the eval set was made for (zoo
    data), else classification when it has labels, else generic: outputs whose meaning is
    unknown are compared with FP32's, never argmaxed into an "accuracy"."""
    if explicit is not None:
        return Task.parse(explicit, "task")
    declared = eval_set.extra.get("task") if eval_set is not None else None
    if declared:
        return Task.parse(declared, "task")
    if eval_set is not None and eval_set.labels is not None:
        return Task.CLASSIFICATION
    return Task.GENERIC


def measure_accuracy(outputs: np.ndarray, task: Task | str, eval_set: Dataset | None = None,
                     reference_outputs: np.ndarray | None = None,
                     reference: Accuracy | None = None, source: str = "eval set") -> Accuracy:
    """Score `outputs` (the eval set's rows, in order) for `task`.

    `reference_outputs`/`reference` are FP32's outputs and Accuracy on the same rows; both
    None for the reference itself, which is then scored against the truth alone.
    """
    task = Task.parse(task, "task")
    outputs = np.asarray(outputs)
    if outputs.ndim == 0:
        raise QuantkitError(f"{source}: outputs are a scalar, not one row per eval row")
    labels = eval_set.labels if eval_set is not None else None
    truth = eval_set.truth if eval_set is not None else None
    if labels is not None and task is Task.CLASSIFICATION:
        scores = class_scores(outputs)
        check_label_range(label_vector(labels, scores.shape[0]), scores.shape[1], source)
    elif labels is not None:
        labels = None  # class labels say nothing about maps or sequences
    if truth is not None and task in (Task.CLASSIFICATION, Task.GENERIC):
        truth = None
    with_truth = labels is not None or (truth is not None
                                        and any(item is not None for item in truth))
    rows = int(outputs.shape[0])
    is_reference = reference_outputs is None
    if is_reference and not with_truth:  # FP32 against itself: agreement is perfect
        line = choose_headline(task, {}, with_truth=False)
        perfect = None if line.unit == "dB" else 1.0 if line.higher_is_better else 0.0
        return Accuracy(rows=rows, task=str(task), metric=line.metric, label=line.label,
                        higher_is_better=line.higher_is_better, unit=line.unit,
                        value=perfect, drop_points=0.0)
    try:
        metrics = score(task, outputs, reference_outputs, truth=truth if with_truth else None,
                        labels=labels)
    except QuantkitError as exc:
        raise QuantkitError(f"{source}: {exc} (is --task {task} right for this model?)") \
            from None
    line = choose_headline(task, metrics, with_truth)
    value = metrics.get(line.metric)
    reference_value = None
    if with_truth:
        reference_value = value if is_reference else (
            reference.value if reference is not None and reference.metric == line.metric
            else None)
    drop = 0.0 if is_reference else drop_points(line, metrics, reference_value)
    return Accuracy(rows=rows, task=str(task), metric=line.metric, label=line.label,
                    higher_is_better=line.higher_is_better, unit=line.unit, value=value,
                    reference_value=reference_value, drop_points=drop,
                    metrics={key: float(number) for key, number in metrics.items()})
