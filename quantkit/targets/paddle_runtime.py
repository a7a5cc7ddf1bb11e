"""The one Paddle Inference CPU predictor: a recipe, a `paddle.inference` predictor, numpy out.

numpy, paddle and quantkit.errors only: the paddle3 side environment (Paddle 3.3.1, no
quantkit installed) runs it from the runner kit (quantkit.kit), so the
paddle3-onednn-int8 target is timed with the very recipe the oneDNN adapter records.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantkit.errors import QuantkitError

# Ops oneDNN's INT8 pass may quantize. Naming them keeps the recipe explicit in the
# artifact and lets a profile narrow it. (Paddle 2.6 rejects others, e.g. mul, scale,
# softmax: "not supported by OneDNN quantization"; this list was probed op by op.)
ONEDNN_INT8_OPS = ("conv2d", "depthwise_conv2d", "fused_conv2d", "fc", "matmul",
                   "matmul_v2", "fused_matmul", "pool2d", "elementwise_add",
                   "elementwise_mul", "concat", "reshape2", "transpose2", "nearest_interp",
                   "nearest_interp_v2", "slice", "split", "prior_box", "fusion_gru",
                   "fusion_lstm", "multi_gru")
# The default leaves nearest_interp(_v2) in float: oneDNN's int8 upsampling feeding the
# int8 adds of the PP-OCRv4 detector's FPN costs text-map IoU 0.869 -> 0.932 (vs FP32, 24
# held-out pages at 640) for 1.2 ms at 640; leaving the elementwise ops in float instead
# gives the same IoU and is slower. It also leaves fc (the linear layers Paddle fuses from
# matmul_v2 + weight) in float: oneDNN's int8 fc costs the PP-OCRv4 recogniser 1.8 points
# of CER (3.77% -> 2.00% vs FP32's 1.55%, 128 held-out lines, mse scales) at the same b1
# latency; skipping the linear weights at calibration does not help, because the pass
# computes fc weight scales itself (docs/measured-facts.md).
DEFAULT_INT8_OPS = tuple(op for op in ONEDNN_INT8_OPS[:17]
                         if op not in ("fc", "nearest_interp", "nearest_interp_v2"))


@dataclass(frozen=True)
class OneDnnRecipe:
    """The Paddle Inference CPU settings of a target, serialisable beside its numbers."""

    onednn: bool
    int8: bool
    threads: int
    int8_ops: tuple[str, ...] = DEFAULT_INT8_OPS
    ir_optim: bool = True
    cache_capacity: int = 10
    delete_passes: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, record: dict, where: str) -> "OneDnnRecipe":
        """The recipe saved in artifact.json, refusing a record edited into nonsense."""
        try:
            recipe = cls(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in record.items()})
        except TypeError as exc:
            raise QuantkitError(f"{where}: 'settings.recipe' is not a oneDNN recipe ({exc}); "
                                "convert the model again") from None
        if not all(isinstance(getattr(recipe, name), bool) for name in ("onednn", "int8",
                                                                       "ir_optim")):
            raise QuantkitError(f"{where}: 'settings.recipe' flags must be true/false")
        return recipe

    def apply(self, config) -> None:
        """Set this recipe on a `paddle.inference.Config`.

        Paddle 3's PIR pipeline is turned off: on a calibrated legacy model it either drops
        the quantize/dequantize ops (runs FP32) or fails ("trying to retrieve float32 ...
        int8"); its legacy pipeline runs the oneDNN INT8 kernels as Paddle 2.6 does.
        """
        if hasattr(config, "enable_new_ir"):  # Paddle 3 (2.6.2 has no PIR pipeline)
            config.enable_new_ir(False)
            config.enable_new_executor(False)
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(self.threads)
        config.switch_ir_optim(self.ir_optim)
        config.enable_memory_optim()
        if self.onednn:
            config.enable_mkldnn()
            config.set_mkldnn_cache_capacity(self.cache_capacity)
            if self.int8:
                config.enable_mkldnn_int8(set(self.int8_ops))
        else:
            config.disable_mkldnn()
        for name in self.delete_passes:
            config.delete_pass(name)


class PaddlePredictor:
    """A `paddle.inference` predictor: numpy in, float numpy out, in fetch order."""

    def __init__(self, predictor, pass_log: str = "") -> None:
        self._predictor = predictor
        self.pass_log = pass_log  # what Paddle's passes printed (oneDNN's INT8 report)
        self.input_names = tuple(self._predictor.get_input_names())
        self._output_names = tuple(self._predictor.get_output_names())

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self.input_names:
            handle = self._predictor.get_input_handle(name)
            handle.reshape(feeds[name].shape)
            handle.copy_from_cpu(np.ascontiguousarray(feeds[name]))
        self._predictor.run()
        outputs = []
        for name in self._output_names:
            value = self._predictor.get_output_handle(name).copy_to_cpu()
            outputs.append(value if value.dtype.kind == "f" else value.astype(np.float32))
        return outputs


class _CapturedText:
    text = ""


@contextlib.contextmanager
def captured_native_stderr():
    """Capture what C++ passes print to fd 2 (oneDNN's INT8 pass report).

    Keeps the user's terminal clean and keeps the report, e.g. "quantized 27
    fused_conv2d ops", as evidence of which kernels the predictor runs. On failure the
    captured text is replayed to stderr.
    """
    captured = _CapturedText()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        except BaseException:
            _restore(saved)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        else:
            _restore(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")


def _restore(saved: int) -> None:
    if saved >= 0:
        os.dup2(saved, 2)
        os.close(saved)


def int8_pass_summary(pass_log: str) -> dict[str, int]:
    """Counts from oneDNN's quantize pass report: {"fused_conv2d": 27, ...}."""
    counts: dict[str, int] = {}
    for match in re.finditer(r"quantized\s+(\d+)\s+(\w+)\s+ops?", pass_log):
        counts[match.group(2)] = counts.get(match.group(2), 0) + int(match.group(1))
    return {op: count for op, count in counts.items() if count}




def create_predictor(model_file: Path, params_file: Path, configure) -> PaddlePredictor:
    """A predictor on a model; `configure(config)` applies the backend's recipe."""
    from paddle import inference

    config = inference.Config(str(model_file), str(params_file))
    config.disable_glog_info()
    configure(config)
    with captured_native_stderr() as pass_log:
        predictor = inference.create_predictor(config)
    return PaddlePredictor(predictor, pass_log.text)
