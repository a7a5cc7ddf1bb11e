"""quantkit's calibration engine: Paddle core's program passes, quantkit's statistics.

Why: core's `PostTrainingQuantization` samples with Python loops (KL takes ~2.5 min on
MobileNetV1 and 10 batches), reads every activation back through the scope one by one and,
for KL/hist, runs the model twice. What core does well is loading the program, finding
the quantizable ops and rewriting the program in both formats (`onnx_format` True/False);
this driver keeps exactly that and replaces the sampling:

1. `prepare_program`: core's `_load_model_data` + `_collect_target_varnames` (quantizable
   ops, `skip_tensor_list`, `is_full_quantize`, `optimize_model`'s BN fusion).
2. `collect_activation_stats`: one `executor.run` per batch fetching every activation
   together, as views of Paddle's tensors (`zero_copy`), into the numpy observers
   (`quantkit.calibration.observers`); two-pass algos replay the first pass's activations
   from memory (bounded) instead of a second forward; the forward runs on oneDNN kernels
   where Paddle has them (5-7x faster on this CPU).
3. `write_quantized_program`: raw thresholds into core's dicts, then core's own tail
   (`_update_program`, output thresholds, persistable move) and save.

Statistics are kept apart from the program so one calibration can write many variants
(different skip lists: sensitivity analysis, accuracy budget) without touching the data
again. Recipe and measurements: docs/calibration-driver-notes.md.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from quantkit.calibration.algorithms import Engine, algorithm
from quantkit.calibration.config import CalibrationConfig
from quantkit.calibration.observers import PerChannelAbsMaxObserver, weight_quant_axis
from quantkit.calibration.scoped_paddle import fast_graph_edits, forward_kernels
from quantkit.calibration.zero_copy import fetch_arrays
from quantkit.errors import QuantkitError
from quantkit.suggest import did_you_mean
from quantkit.model_files import InferenceModel


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs (not what it computes): passed explicitly, never a global."""

    # Forwards on oneDNN FP32 kernels: 5-7x faster here, activations equal to the plain
    # kernels' within float32 rounding (~1e-7 relative). False: plain kernels, which give
    # core's programs bit for bit (the tests compare them).
    onednn_forward: bool = True
    # Program variants (sensitivity analysis, accuracy budgets) on oneDNN kernels too: 1.6x
    # faster, but oneDNN's cache outlives each variant's program: +0.5 GB of RSS per variant
    # on 64 PP-OCRv4 recogniser lines (an analysis of its 47 layers passed 20 GB). Off.
    onednn_variants: bool = False
    # Pass-1 activations kept for pass 2 of KL/hist; above this, pass 2 runs the model again.
    replay_budget_bytes: int = 1 << 30


DEFAULT_ENGINE = EngineOptions()


def core_only_reason(config: CalibrationConfig) -> str | None:
    """Why `config` must run on Paddle core's PTQ instead of this driver, or None."""
    if algorithm(config.algo).engine is Engine.PADDLE_CORE:
        return f"algo '{config.algo}' has no quantkit observer"
    if config.round_type == "adaround":
        return "round_type 'adaround' trains rounding with core's own data loop"
    return None


@dataclass
class ActivationStats:
    """What calibration measured: everything a program variant needs, no program."""

    algo: str
    thresholds: dict[str, float] = field(default_factory=dict)  # abs threshold T
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # min_max: signed
    empty: set[str] = field(default_factory=set)  # tensors that never had values
    batches_seen: int = 0
    seconds: float = 0.0


def prepare_program(executor, model: InferenceModel, config: CalibrationConfig, scope,
                    skip_tensor_list: Iterable[str] | None = None):
    """Core's PTQ object with the model loaded into `scope` and its targets collected.

    `skip_tensor_list` overrides the config's (variants of one calibration). Callers check
    skip entries first (`check_skip_list`): core silently ignores unknown names.
    """
    from paddle.static.quantization import PostTrainingQuantization

    settings = config.to_dict()
    for name in ("batch_size", "batch_nums"):
        settings.pop(name)
    settings["quantizable_op_type"] = list(config.quantizable_op_type)
    skip = config.skip_tensor_list if skip_tensor_list is None else tuple(skip_tensor_list)
    settings["skip_tensor_list"] = list(skip) or None
    ptq = PostTrainingQuantization(
        executor=executor, model_dir=str(model.model_dir), scope=scope,
        model_filename=model.model_filename, params_filename=model.params_filename,
        data_loader=_loader_stub(), batch_nums=1, **settings)
    ptq._load_model_data()
    ptq._collect_target_varnames()
    return ptq


def check_skip_list(inputs: list[str], skip: Iterable[str]) -> None:
    """Refuse skip entries that name no op input: core would silently quantize everything."""
    unknown = [name for name in skip if name not in inputs]
    if not unknown:
        return
    hints = [f"{name!r}{did_you_mean(name, inputs, n=3)}" for name in unknown]
    raise QuantkitError("skip_tensor_list names no tensor an op of this model reads: "
                        + "; ".join(hints) + " (entries match op input names, e.g. a "
                        "conv's weight 'conv2d_3.w_0')")


def collect_activation_stats(executor, ptq, batches: Iterable[dict], config: CalibrationConfig,
                             scope, on_batch: Callable[[], None] | None = None,
                             engine: EngineOptions = DEFAULT_ENGINE) -> ActivationStats:
    """Feed the batches, every activation fetched at once, into one observer per tensor."""
    started = time.perf_counter()
    spec = algorithm(config.algo)
    if spec.engine is not Engine.QUANTKIT:
        raise QuantkitError(f"no quantkit observer for algo {config.algo!r}: "
                            f"{core_only_reason(config)}")
    names = sorted(ptq._quantized_act_var_name)
    observers = {name: spec.observer(config, name) for name in names}
    two_pass = spec.passes == 2
    kept: list[list[np.ndarray]] | None = [] if two_pass else None
    kept_bytes = 0
    seen = 0

    def feed(tensors: list[str], values: list[np.ndarray]) -> None:
        for name, value in zip(tensors, values):
            observers[name].observe(value)
        if on_batch is not None:
            on_batch()

    with forward_kernels(engine.onednn_forward), inference_attrs(ptq._program):
        for item in batches:
            values = fetch_arrays(executor, ptq._program, item, names, scope)
            if kept is not None:
                kept_bytes += sum(v.nbytes for v in values)
                if kept_bytes > engine.replay_budget_bytes:
                    kept = None  # pass 2 runs the model again
                else:
                    kept.append(values)
            feed(names, values)
            seen += 1
        if seen == 0:
            raise QuantkitError("the calibration data produced no batch")
        if two_pass:
            for observer in observers.values():
                observer.end_pass()
            again = [name for name in names if getattr(observers[name], "needs_second_pass",
                                                       True)]
            if again and kept is not None:
                where = [names.index(name) for name in again]
                for values in kept:
                    feed(again, [values[i] for i in where])
            elif again:
                for item in batches:
                    feed(again, [np.asarray(item[name]) for name in again]
                         if all(name in item for name in again)  # model inputs: no forward
                         else fetch_arrays(executor, ptq._program, item, again, scope))
            else:  # every threshold is known already: the progress bar's second pass is done
                for _ in range(seen if on_batch is not None else 0):
                    on_batch()
            for observer in observers.values():
                observer.end_pass()
    stats = ActivationStats(algo=config.algo, batches_seen=seen)
    for name, observer in observers.items():
        if not observer.has_data:
            stats.empty.add(name)
            continue
        stats.thresholds[name] = float(observer.scale())
        if spec.signed_range:
            stats.ranges[name] = (observer.min_value, observer.max_value)
    stats.seconds = time.perf_counter() - started
    return stats


def write_quantized_program(ptq, config: CalibrationConfig, stats: ActivationStats, scope) -> None:
    """Give core's PTQ object the thresholds and run the rest of core's `quantize()`."""
    from paddle.static.quantization import utils as core_utils

    spec = algorithm(config.algo)
    _fill_weight_thresholds(ptq, config, scope)
    for name in ptq._quantized_act_var_name:
        if name in stats.empty or name not in stats.thresholds:
            ptq._zero_size_var_names.add(name)
            continue
        _threshold_dict(ptq, config)[name] = stats.thresholds[name]
        if spec.signed_range:
            ptq._quantized_var_min[name], ptq._quantized_var_max[name] = stats.ranges[name]
    with fast_graph_edits():
        # Core's min_max only writes min/max attrs (`_save_input_threhold`) and no scale, so
        # the model it saves is not quantized at all; here it gets the symmetric threshold
        # max(|min|, |max|) like every other algo (the min/max attrs are kept as well).
        if spec.signed_range:
            ptq._save_input_threhold()
        ptq._update_program()
        if not ptq.FLAG:
            ptq._save_output_threshold()
    if any(op_type in ptq.quant_config.activation_quant_operation_types
           for op_type in ptq._dynamic_quantize_op_type):
        ptq._collect_dynamic_quantize_op_threshold(ptq._dynamic_quantize_op_type)
    core_utils.move_persistable_var_to_global_block(ptq._program)


def _threshold_dict(ptq, config: CalibrationConfig) -> dict:
    """Core reads KL/hist thresholds from one dict and the others' from another."""
    return ptq._quantized_var_threshold if algorithm(config.algo).var_thresholds \
        else ptq._quantized_threshold


def _fill_weight_thresholds(ptq, config: CalibrationConfig, scope) -> None:
    """Weight thresholds as core computes them: one float, or one per output channel."""
    per_channel = config.weight_quantize_type == "channel_wise_abs_max"
    target = _threshold_dict(ptq, config)
    for name in sorted(ptq._quantized_weight_var_name):
        weight = np.array(scope.find_var(name).get_tensor())
        axis = weight_quant_axis(ptq._weight_op_pairs[name])
        observer = PerChannelAbsMaxObserver(axis=axis if per_channel else 0, name=name)
        observer.observe(weight if per_channel else weight.reshape(1, -1))
        peaks = observer.peaks
        target[name] = [float(v) for v in peaks] if per_channel else float(peaks[0])
        if algorithm(config.algo).signed_range:  # core's attrs; the program uses `peaks`
            rows = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1) \
                if per_channel else weight.reshape(1, -1)
            low = [float(v) for v in rows.min(axis=1)]
            high = [float(v) for v in rows.max(axis=1)]
            ptq._quantized_var_min[name] = low if per_channel else low[0]
            ptq._quantized_var_max[name] = high if per_channel else high[0]


def quantize_with_observers(executor, model: InferenceModel, batches, config: CalibrationConfig,
                            out_dir: Path, save_model_filename: str,
                            save_params_filename: str | None, scope=None,
                            on_batch: Callable[[], None] | None = None,
                            engine: EngineOptions = DEFAULT_ENGINE):
    """Calibrate `model` with quantkit's observers and save it into `out_dir`.

    Always in a private scope (`scope` is accepted for PaddleSlim's signature): oneDNN
    forwards may leave tensors in oneDNN layouts, and a later plain-kernel run of another
    model whose variables share those names (conv2d_0.w_0 ...) in that scope then fails
    ("could not create a primitive descriptor for a reorder primitive").
    """
    import paddle

    from quantkit.calibration.paddle_core import CoreRunStats, quiet_core, save_quantized

    del scope
    started = time.perf_counter()
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope), quiet_core():
        ptq = prepare_program(executor, model, config, scope)
        stats = collect_activation_stats(executor, ptq, batches, config, scope, on_batch,
                                         engine)
        warn_if_short(stats.batches_seen, config.batch_nums)
        write_quantized_program(ptq, config, stats, scope)
        save_quantized(ptq, Path(out_dir), save_model_filename, save_params_filename)
    return CoreRunStats(seconds=time.perf_counter() - started, batches_seen=stats.batches_seen)


def warn_if_short(seen: int, asked: int | None) -> None:
    """Fewer batches than `batch_nums`: calibrate on what exists, but say so."""
    if asked is not None and seen < asked:
        warnings.warn(f"calibration asked for batch_nums={asked} but the data gave only {seen} "
                      f"batch(es); calibrated on those {seen}", stacklevel=3)


def _loader_stub():
    """Core checks isinstance(data_loader, paddle.io.DataLoader); the driver feeds batches."""
    import paddle

    class _DriverFeedsBatches(paddle.io.DataLoader):
        def __init__(self) -> None:  # noqa: D401 - no worker set-up, never iterated
            pass

        def __len__(self) -> int:
            return 0

        def __iter__(self):
            raise RuntimeError("quantkit's calibration driver feeds the batches itself")

        __call__ = __iter__

    return _DriverFeedsBatches()


_IS_TEST_ONLY_PICKS_KERNELS = ("conv2d", "depthwise_conv2d", "conv2d_transpose",
                               "depthwise_conv2d_transpose", "pool2d")


@contextlib.contextmanager
def inference_attrs(program):
    """Forward with is_test=True where it only picks the kernel.

    Exported models may keep is_test=False (the PP-OCRv4 detector does) and oneDNN's
    conv2d_transpose refuses to run then ("works only for inference"). Restored afterwards,
    so the written program still matches core's.
    """
    changed = [op for block in program.blocks for op in block.ops
               if op.type in _IS_TEST_ONLY_PICKS_KERNELS and op.has_attr("is_test")
               and not op.attr("is_test")]
    for op in changed:
        op._set_attr("is_test", True)
    try:
        yield
    finally:
        for op in changed:
            op._set_attr("is_test", False)
