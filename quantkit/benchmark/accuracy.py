"""How good one target's outputs are: top-1 against labels, agreement with the FP32 reference.

Pure numpy on outputs the runner already saved, so accuracy is scored the same way for
every backend and host, and can be recomputed from saved outputs without any runtime.
"""
from __future__ import annotations

import numpy as np

from quantkit.benchmark.results import Accuracy
from quantkit.data.feeds import check_label_range
from quantkit.errors import QuantkitError
from quantkit.metrics import (argmax_agreement, class_scores, cosine_mean, label_vector,
                              max_abs_diff, top1)


def measure_accuracy(outputs: np.ndarray, labels: np.ndarray | None = None,
                     reference_outputs: np.ndarray | None = None,
                     reference_top1: float | None = None,
                     source: str = "eval set") -> Accuracy:
    """Everything the inputs allow: top-1 with labels, drop with a reference top-1 too,
    agreement with reference outputs. `source` names the eval set in errors."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 0:
        raise QuantkitError(f"{source}: outputs are a scalar, not one row per eval row")
    accuracy = None
    if labels is not None:
        scores = class_scores(outputs)
        labels = label_vector(labels, scores.shape[0])
        check_label_range(labels, scores.shape[1], source)
        accuracy = top1(scores, labels)
    drop = None
    if accuracy is not None and reference_top1 is not None:
        drop = (float(reference_top1) - accuracy) * 100.0
    fields: dict[str, float] = {}
    if reference_outputs is not None:
        fields["cosine_mean"] = cosine_mean(outputs, reference_outputs)
        fields["max_abs_diff"] = max_abs_diff(outputs, reference_outputs)
        fields["argmax_agreement"] = argmax_agreement(outputs, reference_outputs)
    return Accuracy(rows=int(outputs.shape[0]), top1=accuracy,
                    reference_top1=None if reference_top1 is None else float(reference_top1),
                    drop_points=drop, **fields)
