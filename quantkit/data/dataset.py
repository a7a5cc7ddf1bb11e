"""`Dataset`: checked rows for a model, and the batches every stage reads from them.

The one data type of the kit (in the spirit of ONNX Runtime's `CalibrationDataReader` and
`nncf.Dataset`): calibration iterates `reader()` batches, benchmarks score all rows,
smoke checks and servers feed the same checked arrays. A Dataset is made only through
`Dataset.checked`, so its arrays always fit the model's feeds.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from quantkit.data.feeds import FeedSpec, check_feeds, check_labels, check_rows
from quantkit.errors import QuantkitError


@dataclass(frozen=True)
class DataRole:
    """What a data set is for, in the words and flags the user typed."""

    noun: str  # "eval set" / "calibration data"
    data_flag: str  # "--eval" / "--calib"
    limit_flag: str  # "--eval-limit" / "--calib-limit"


EVAL = DataRole("eval set", "--eval", "--eval-limit")
CALIBRATION = DataRole("calibration data", "--calib", "--calib-limit")


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Dataset:
    """Checked rows: one array per model feed (N rows each) and optional int64 labels [N]."""

    name: str
    source: str
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    classes: Mapping[str, int] | None = None  # label names, where the source had them
    # Ground truth that is not a class index, one entry per row: boxes of a detection
    # image (an array [K, 4, 2] of corner points), the text of a recognition line.
    truth: tuple | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. image-folder settings

    @classmethod
    def checked(cls, name: str, source: str, inputs: Mapping[str, Any], labels: Any,
                feeds: Sequence[FeedSpec], limit: int | None = None, where: str | None = None,
                **details) -> "Dataset":
        """Check `inputs`/`labels` against `feeds` (first `limit` rows) and wrap them.

        `where` names the data in messages (default: `source`), e.g. "eval set x.npz".
        """
        where = where or source
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        scalars = [key for key, value in inputs.items() if value.ndim == 0]
        if scalars:
            raise QuantkitError(f"{where}: input '{scalars[0]}' is a single value, not rows")
        counts = {f"input '{key}'": value.shape[0] for key, value in inputs.items()}
        if labels is not None:
            labels = np.asarray(labels)
            counts["labels"] = labels.shape[0] if labels.ndim else 1
        check_rows(counts, where)
        inputs = {key: value[:limit] for key, value in inputs.items()}
        checked = check_feeds(inputs, feeds, where)
        if labels is not None:
            labels = check_labels(labels[:limit], where)
        truth = details.pop("truth", None)
        if truth is not None:
            truth = tuple(truth)[:limit]
            check_rows({"inputs": len(next(iter(checked.values()))), "truth": len(truth)},
                       where)
        return cls(name=name, source=source, inputs=checked, labels=labels, truth=truth,
                   **details)

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive row slices of `size` (the last may be shorter)."""
        if size < 1:
            raise QuantkitError(f"batch size must be >= 1, got {size}")
        for start in range(0, self.rows, size):
            yield {name: array[start:start + size] for name, array in self.inputs.items()}

    def reader(self, feeds: Sequence[FeedSpec], batch_size: int,
               batch_nums: int | None = None):
        """Re-iterable calibration batches (`FeedBatches`) of `batch_size` rows."""
        from quantkit.data.readers import FeedBatches

        return FeedBatches(feeds, lambda: self.batches(batch_size), batch_nums)

    def batch_count(self, batch_size: int, batch_nums: int | None = None) -> int:
        available = -(-self.rows // batch_size)
        return available if batch_nums is None else min(available, batch_nums)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of names, dtypes, shapes and bytes: two runs used the same rows iff equal."""
        digest = hashlib.sha256()
        arrays = sorted(self.inputs.items())
        if self.labels is not None:
            arrays.append(("\0labels", self.labels))
        for name, array in arrays:
            array = np.ascontiguousarray(array)
            digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
            digest.update(array.tobytes())
        return "sha256:" + digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What results.json and run.json record, so runs compare only on equal data."""
        record = {
            "name": self.name,
            "source": self.source,
            "rows": self.rows,
            "labelled": self.labels is not None,
            "shapes": {name: list(array.shape) for name, array in self.inputs.items()},
            "dtypes": {name: str(array.dtype) for name, array in self.inputs.items()},
            "fingerprint": self.fingerprint,
        }
        if self.classes is not None:
            record["classes"] = dict(self.classes)
        return record | dict(self.extra)
