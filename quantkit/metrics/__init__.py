"""Output metrics, pure numpy, one module per kind of output.

`classification` (top-1, argmax agreement) and `generic` (cosine, max abs diff, SQNR)
score any target's saved outputs the same way, wherever they were computed; calibration
(sensitivity, budgets) and benchmarks both read them from here.
"""
from quantkit.metrics.classification import argmax_agreement, class_scores, label_vector, top1
from quantkit.metrics.generic import SQNR_CAP_DB, cosine_mean, max_abs_diff, sqnr_db

__all__ = ["SQNR_CAP_DB", "argmax_agreement", "class_scores", "cosine_mean", "label_vector",
           "max_abs_diff", "sqnr_db", "top1"]
