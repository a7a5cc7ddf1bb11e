"""Output metrics, pure numpy, one module per kind of output.

`classification` (top-1, argmax agreement), `generic` (cosine, max abs diff, SQNR),
`dense` (detection maps -> PP-OCR's boxes, box matching) and `sequence` (CTC decoding,
character error rate) score any target's saved outputs the same way, wherever they were
computed; `tasks.score` picks the ones a model's task needs. Calibration (sensitivity,
budgets) and benchmarks both read them from here.
"""
from quantkit.metrics.classification import argmax_agreement, class_scores, label_vector, top1
from quantkit.metrics.generic import SQNR_CAP_DB, cosine_mean, max_abs_diff, sqnr_db
from quantkit.metrics.tasks import Headline, headline, score

__all__ = ["SQNR_CAP_DB", "Headline", "argmax_agreement", "class_scores", "cosine_mean",
           "headline", "label_vector", "max_abs_diff", "score", "sqnr_db", "top1"]
