"""One calibration's statistics, turned into any number of program variants.

Why: "which layer hurts?" and "skip the fewest layers that keep the drop in budget" both
need many quantized programs that differ only in their skip list. Collecting statistics
is the expensive part, so a session collects them once (`quantkit.calibration.driver`)
and writes each variant from them: a fresh copy of the FP32 program in its own scope,
core's passes, then either run in memory (simulated quantization, QDQ ops on float
kernels: what every INT8 back end approximates) or saved like `quant_post_static` saves.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from quantkit.calibration import driver
from quantkit.calibration.config import CalibrationConfig
from quantkit.calibration.scoped_paddle import forward_kernels
from quantkit.errors import QuantkitError
from quantkit.evaluation import predict_rows
from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE
from quantkit.model_files import InferenceModel, op_input_names, refuse_quantized
from quantkit.native_memory import release_freed_memory
from quantkit.static_mode import static_mode

# Rows per executor run of a variant: at most 64, and about 1 MB of input. A simulated-
# quantization program keeps ~1000x its input in intermediate tensors: 64 PP-OCRv4
# recogniser lines (11.8 MB of input) peaked at 19 GB and ran 5x slower per row than 8.
EVAL_ROWS_MAX = 64
EVAL_INPUT_BYTES = 1 << 20


@dataclass(frozen=True)
class Layer:
    """A quantizable op with a weight: what a skip list entry (its weight name) turns off."""

    weight: str
    op_type: str
    output: str


class CalibrationSession:
    """Statistics of one calibration of `model`, and variants written from them."""

    def __init__(self, model: InferenceModel, config: CalibrationConfig, batches: Iterable,
                 on_batch: Callable[[], None] | None = None,
                 engine: driver.EngineOptions = driver.DEFAULT_ENGINE) -> None:
        reason = driver.core_only_reason(config)
        if reason:
            raise QuantkitError(f"sensitivity analysis and accuracy budgets need quantkit's "
                                f"driver, but {reason}")
        refuse_quantized(model)
        self.model, self.config, self.engine = model, config, engine
        self._op_inputs = op_input_names(model)  # read once: every variant's skip is checked
        with self._prepared(config.skip_tensor_list) as (executor, ptq, scope):
            self.stats = driver.collect_activation_stats(executor, ptq, batches, config,
                                                         scope, on_batch, engine)
            self.layers = _layers_in_order(ptq)
        driver.warn_if_short(self.stats.batches_seen, config.batch_nums)

    def outputs(self, inputs: Mapping[str, np.ndarray], skip: Iterable[str] | None = None,
                quantized: bool = True) -> np.ndarray:
        """The model's first output on `inputs`: quantized with `skip` left in float, or FP32."""
        with self._prepared(skip) as (executor, ptq, scope):
            if quantized:
                driver.write_quantized_program(ptq, self.config, self.stats, scope)
            with forward_kernels(self.engine.onednn_variants), \
                    driver.inference_attrs(ptq._program):
                return _run(executor, ptq, scope, inputs)

    def save(self, out_dir: Path, skip: Iterable[str] | None = None,
             save_model_filename: str = PADDLE_MODEL_FILE,
             save_params_filename: str | None = PADDLE_PARAMS_FILE) -> None:
        """Write the variant with `skip` in float into the existing folder `out_dir`."""
        from quantkit.calibration.paddle_core import save_quantized

        with self._prepared(skip) as (executor, ptq, scope):
            driver.write_quantized_program(ptq, self.config, self.stats, scope)
            save_quantized(ptq, Path(out_dir), save_model_filename, save_params_filename)

    @contextlib.contextmanager
    def _prepared(self, skip: Iterable[str] | None):
        import paddle

        from quantkit.calibration.paddle_core import quiet_core

        skip = self.config.skip_tensor_list if skip is None else tuple(skip)
        driver.check_skip_list(self._op_inputs, skip)
        scope = paddle.static.Scope()
        executor = paddle.static.Executor(paddle.CPUPlace())
        try:
            with static_mode(), paddle.static.scope_guard(scope), quiet_core():
                ptq = driver.prepare_program(executor, self.model, self.config, scope, skip)
                yield executor, ptq, scope
        finally:
            del executor, scope
            release_freed_memory()  # each variant's pages, or RSS grows by GBs per variant


def _layers_in_order(ptq) -> list[Layer]:
    layers, seen = [], set()
    for block in ptq._program.blocks:
        for op in block.ops:
            for name in op.input_arg_names:
                if name in ptq._quantized_weight_var_name and name not in seen:
                    seen.add(name)
                    layers.append(Layer(name, op.type, op.output_arg_names[0]))
    return layers


def _run(executor, ptq, scope, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    fetch = ptq._fetch_list[:1]

    def run(feed: dict) -> list[np.ndarray]:
        return executor.run(ptq._program, feed=feed, fetch_list=fetch, scope=scope,
                            return_numpy=True)

    return predict_rows(run, inputs, eval_rows(inputs))[0]


def eval_rows(inputs: Mapping[str, np.ndarray]) -> int:
    """Rows per run: EVAL_ROWS_MAX, fewer when a row's input is large (at least 1)."""
    row_bytes = sum(array[:1].nbytes for array in inputs.values())
    return max(1, min(EVAL_ROWS_MAX, EVAL_INPUT_BYTES // max(1, row_bytes)))
