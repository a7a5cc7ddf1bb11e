"""Intel CPUs through Paddle Inference: oneDNN INT8, oneDNN FP32 and plain-CPU baselines.

A calibrated model run without the INT8 pass is 5-6x slower than FP32 (DESIGN.md): the
INT8 profile therefore always enables `enable_mkldnn_int8`, which rewrites the
quantize/dequantize pairs into oneDNN int8 kernels (`jit_uni_int8`, `gemm_s8s8s32`).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.model_files import InferenceModel, check_inference_model
from quantkit.targets.base import Artifact, Availability, copy_paddle_model, is_quantized
from quantkit.targets.onednn_weights import restore_float_weights
from quantkit.targets.profile import TargetProfile

# Ops oneDNN's INT8 pass may quantize. An empty set means "all it supports"; naming them
# keeps the recipe explicit in the artifact and lets a profile narrow it.
# (Paddle 2.6 rejects others, e.g. mul, scale, softmax: "not supported by OneDNN
# quantization"; this list was probed op by op.)
DEFAULT_INT8_OPS = ("conv2d", "depthwise_conv2d", "fused_conv2d", "fc", "matmul",
                    "matmul_v2", "fused_matmul", "pool2d", "elementwise_add",
                    "elementwise_mul", "concat", "reshape2", "transpose2", "nearest_interp",
                    "nearest_interp_v2", "slice", "split")

_OPTION_KEYS = {"onednn", "int8_ops", "ir_optim", "cache_capacity", "delete_passes"}


@dataclass(frozen=True)
class OneDnnRecipe:
    """The Paddle Inference CPU settings of a target, serialisable beside its numbers."""

    onednn: bool
    int8: bool
    threads: int
    int8_ops: tuple[str, ...] = DEFAULT_INT8_OPS
    ir_optim: bool = True
    cache_capacity: int = 10  # oneDNN shape cache entries (bounded memory with varying batch)
    delete_passes: tuple[str, ...] = ()

    @classmethod
    def from_profile(cls, profile: TargetProfile) -> "OneDnnRecipe":
        options = profile.backend_options(_OPTION_KEYS)
        onednn = bool(options.get("onednn", True))
        int8 = profile.precision == "int8"
        if int8 and not onednn:
            raise QuantkitError(f"profile {profile.name}: int8 on Paddle Inference CPU needs "
                                "onednn = true")
        return cls(onednn=onednn, int8=int8, threads=profile.threads,
                   int8_ops=tuple(options.get("int8_ops", DEFAULT_INT8_OPS)),
                   ir_optim=bool(options.get("ir_optim", True)),
                   cache_capacity=int(options.get("cache_capacity", 10)),
                   delete_passes=tuple(options.get("delete_passes", ())))

    def apply(self, config) -> None:
        """Set this recipe on a `paddle.inference.Config`."""
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


class _FloatOutputs:
    """Wrap a `paddle.inference` predictor: numpy in, float numpy out, in fetch order."""

    def __init__(self, predictor):
        self._predictor = predictor
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


def open_cpu_predictor(model_file: Path, params_file: Path,
                       recipe: OneDnnRecipe) -> _FloatOutputs:
    from paddle import inference

    config = inference.Config(str(model_file), str(params_file))
    config.disable_glog_info()
    recipe.apply(config)
    with captured_native_stderr() as pass_log:
        predictor = _FloatOutputs(inference.create_predictor(config))
    predictor.pass_log = pass_log.text
    return predictor


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


class PaddleInferenceAdapter:
    backend = "paddle-inference"

    def availability(self, profile: TargetProfile) -> Availability:
        from quantkit.targets.machine import cpu_isa

        isa = cpu_isa()
        if profile.precision == "int8" and "avx2" not in isa.flags:
            return Availability(False, "oneDNN INT8 needs at least AVX2; this CPU has "
                                       f"{isa.summary}")
        if profile.precision == "int8":
            note = "int8 via AVX2 u8s8 (no VNNI: expect a smaller speed-up than on " \
                   "Xeon with avx512_vnni)" if not isa.vnni else "int8 with VNNI/AMX"
            return Availability(True, f"Paddle Inference oneDNN on {isa.summary}; {note}")
        return Availability(True, f"Paddle Inference CPU on {isa.summary}")

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        recipe = OneDnnRecipe.from_profile(profile)
        if recipe.int8 and not is_quantized(model):
            raise QuantkitError(
                f"{model.model_file} is an FP32 model and target {profile.name} runs INT8: "
                "calibrate it first (quantkit.quant.quant_post_static(...), or the demo's "
                "'quantkit demo'), then convert the quantized model")
        files = copy_paddle_model(model, profile, out_dir)
        settings = {"recipe": asdict(recipe)}
        if recipe.int8:
            # oneDNN's INT8 pass leaves e.g. conv2d_transpose weights int8 (onednn_weights).
            settings["float_weights"] = restore_float_weights(
                out_dir / files[0], out_dir / files[1]).to_dict()
        return Artifact(folder=out_dir, target=profile.name, backend=self.backend,
                        precision=profile.precision, files=files, settings=settings)

    def open_predictor(self, artifact: Artifact, profile: TargetProfile):
        available = self.availability(profile)
        if not available.can_run:
            raise QuantkitError(f"cannot run {artifact.target} here: {available.reason}")
        check_inference_model(artifact.folder, "model.pdmodel", "model.pdiparams")
        recipe = OneDnnRecipe(**_tuples(artifact.settings["recipe"]))
        recipe = replace(recipe, threads=profile.threads)  # open_artifact(threads=...) wins
        return open_cpu_predictor(artifact.folder / "model.pdmodel",
                                  artifact.folder / "model.pdiparams", recipe)


def _tuples(record: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
