"""Sensitivity analysis and accuracy-budget calibration on checked data sets.

The Python face of `quantkit analyze` and `--max-drop` (calibrate, run): data sets are
`quantkit.data.Dataset`s (inputs per feed, optional labels), the heavy lifting is in
`quantkit.calibration.sensitivity` and `quantkit.calibration.budget`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from quantkit.atomic import staged_folder
from quantkit.calibration import budget
from quantkit.calibration.config import CalibrationConfig
from quantkit.calibration.driver import DEFAULT_ENGINE, EngineOptions
from quantkit.calibration.sensitivity import SensitivityReport, analyze
from quantkit.calibration.session import CalibrationSession
from quantkit.data import Dataset
from quantkit.errors import QuantkitError
from quantkit.files import BUDGET_RECORD, PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE
from quantkit.metrics.tasks import fp32_drop
from quantkit.model_files import InferenceModel, check_inference_model
from quantkit.zoo.config import Task


def open_session(model: InferenceModel, calib_set: Dataset, config: CalibrationConfig,
                 on_batch: Callable[[], None] | None = None,
                 engine: EngineOptions = DEFAULT_ENGINE) -> CalibrationSession:
    return CalibrationSession(model, config,
                              calib_set.reader(model.feeds, config.batch_size,
                                               config.batch_nums), on_batch, engine)


def analyze_model(model_dir, calib_set, eval_set, config: CalibrationConfig,
                  model_filename: str | None = None, params_filename: str | None = None,
                  on_layer: Callable[[int, int, str], None] = lambda done, total, name: None
                  ) -> SensitivityReport:
    """Rank the layers of the model in `model_dir` by their isolated quantization harm."""
    model = check_inference_model(model_dir, model_filename, params_filename)
    session = open_session(model, calib_set, config)
    return analyze(session, eval_set.inputs, eval_set.labels, on_layer)


def calibrate_within_budget(model_dir, calib_set, eval_set, out_dir, config: CalibrationConfig,
                            max_drop: float, max_trials: int = budget.DEFAULT_MAX_TRIALS,
                            algos=None, model_filename: str | None = None,
                            params_filename: str | None = None,
                            save_model_filename: str = PADDLE_MODEL_FILE,
                            save_params_filename: str = PADDLE_PARAMS_FILE,
                            on_event: Callable[[str], None] = lambda message: None,
                            task: str | None = None) -> budget.BudgetResult:
    """Save the first variant whose drop on `eval_set` is within `max_drop` points.

    Writes the quantized model and `budget.json` (every trial) into `out_dir`, atomically;
    raises QuantkitError listing the trials, and writes nothing, if no trial met it.
    """
    if eval_set is None:
        raise QuantkitError("an accuracy budget (--max-drop) needs eval data (--eval)")
    model = check_inference_model(model_dir, model_filename, params_filename)
    result, session = budget.search(lambda c: open_session(model, calib_set, c), config,
                                    eval_set.inputs, eval_set.labels, max_drop, algos,
                                    max_trials, on_event, drop_of=task_drop(eval_set, task))
    if session is None:
        raise QuantkitError(result.summary().replace("\n", "; "))
    with staged_folder(out_dir) as staging:
        session.save(staging, result.chosen.skip, save_model_filename, save_params_filename)
        write_budget_record(result, staging)
    return result


def task_drop(eval_set: Dataset, task: str | None = None):
    """The budget's drop for a detection or recognition eval set (its task metric, vs FP32);
    None (top-1 or disagreement) for the others. The task: `task`, else the eval set's own
    (zoo data declares it)."""
    task = task or eval_set.extra.get("task")
    if task is None or Task.parse(task, "task") not in (Task.DETECTION, Task.RECOGNITION):
        return None
    return fp32_drop(task, eval_set.truth)


def write_budget_record(result: budget.BudgetResult, folder: Path) -> Path:
    path = Path(folder) / BUDGET_RECORD
    path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return path
