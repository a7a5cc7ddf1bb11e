"""Intel CPUs through Paddle Inference: oneDNN INT8, oneDNN FP32 and plain-CPU baselines.

A calibrated model run without the INT8 pass is 5-6x slower than FP32
(docs/measured-facts.md): the INT8 profile therefore always enables `enable_mkldnn_int8`,
which rewrites the quantize/dequantize pairs into oneDNN int8 kernels (`jit_uni_int8`,
`gemm_s8s8s32`). `PaddlePredictor` is the one wrapper of a `paddle.inference` predictor;
the TensorRT adapter uses it too.
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
from quantkit.files import ARTIFACT_RECORD, PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE
from quantkit.model_files import InferenceModel, check_inference_model
from quantkit.targets.artifact import Artifact
from quantkit.targets.base import Availability, copy_paddle_model
from quantkit.targets.onednn_weights import restore_float_weights
from quantkit.targets.options import load_options, option
from quantkit.targets.profile import Backend, Precision, TargetProfile

# Ops oneDNN's INT8 pass may quantize. Naming them keeps the recipe explicit in the
# artifact and lets a profile narrow it. (Paddle 2.6 rejects others, e.g. mul, scale,
# softmax: "not supported by OneDNN quantization"; this list was probed op by op.)
ONEDNN_INT8_OPS = ("conv2d", "depthwise_conv2d", "fused_conv2d", "fc", "matmul",
                   "matmul_v2", "fused_matmul", "pool2d", "elementwise_add",
                   "elementwise_mul", "concat", "reshape2", "transpose2", "nearest_interp",
                   "nearest_interp_v2", "slice", "split", "prior_box", "fusion_gru",
                   "fusion_lstm", "multi_gru")
DEFAULT_INT8_OPS = ONEDNN_INT8_OPS[:17]


@dataclass(frozen=True)
class OneDnnOptions:
    """The `[options]` of a paddle-inference profile."""

    onednn: bool = option(True, help="oneDNN kernels (false: Paddle's plain CPU kernels)")
    int8_ops: tuple[str, ...] = option(DEFAULT_INT8_OPS, choices=ONEDNN_INT8_OPS,
                                       help="ops oneDNN's INT8 pass may quantize")
    ir_optim: bool = option(True, help="Paddle Inference's graph passes")
    cache_capacity: int = option(10, min=1, max=1000,
                                 help="oneDNN shape cache entries (bounded memory with "
                                      "varying batch sizes)")
    delete_passes: tuple[str, ...] = option((), help="graph passes to turn off by name")


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
    def from_profile(cls, profile: TargetProfile) -> "OneDnnRecipe":
        options = load_options(OneDnnOptions, profile.options, profile.backend, profile.where)
        int8 = profile.precision == Precision.INT8
        if int8 and not options.onednn:
            raise QuantkitError(f"profile {profile.name}: int8 on Paddle Inference CPU needs "
                                "onednn = true")
        return cls(onednn=options.onednn, int8=int8, threads=profile.threads,
                   int8_ops=options.int8_ops, ir_optim=options.ir_optim,
                   cache_capacity=options.cache_capacity, delete_passes=options.delete_passes)

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


def open_paddle_predictor(model_file: Path, params_file: Path, configure) -> PaddlePredictor:
    """A predictor on a checked model; `configure(config)` applies the backend's recipe."""
    from paddle import inference

    check_inference_model(model_file.parent, model_file.name, params_file.name)
    config = inference.Config(str(model_file), str(params_file))
    config.disable_glog_info()
    configure(config)
    with captured_native_stderr() as pass_log:
        predictor = inference.create_predictor(config)
    return PaddlePredictor(predictor, pass_log.text)


def open_cpu_predictor(model_file: Path, params_file: Path,
                       recipe: OneDnnRecipe) -> PaddlePredictor:
    return open_paddle_predictor(model_file, params_file, recipe.apply)


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
    backend = Backend.PADDLE_INFERENCE

    def availability(self, profile: TargetProfile) -> Availability:
        from quantkit.machine import cpu_isa

        OneDnnRecipe.from_profile(profile)  # a bad profile is refused, not "available"
        isa = cpu_isa()
        if profile.precision == Precision.INT8 and "avx2" not in isa.flags:
            return Availability(False, "oneDNN INT8 needs at least AVX2; this CPU has "
                                       f"{isa.summary}")
        if profile.precision == Precision.INT8:
            note = ("oneDNN's AVX2 u8s8 int8 kernels (no VNNI: a smaller speed-up than with "
                    "avx512_vnni)" if not isa.vnni else "oneDNN's avx512_core_vnni int8 "
                    "kernels" if not isa.amx else "oneDNN's AMX int8 kernels")
            return Availability(True, f"Paddle Inference oneDNN on {isa.summary}; {note}")
        return Availability(True, f"Paddle Inference CPU on {isa.summary}")

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        recipe = OneDnnRecipe.from_profile(profile)
        if recipe.int8 and not model.quantized:
            raise QuantkitError(
                f"{model.model_file} is an FP32 model and target {profile.name} runs INT8: "
                "calibrate it first (quantkit calibrate, or quantkit.quant.quant_post_static"
                "(...)), then convert the quantized model")
        files = copy_paddle_model(model, profile, out_dir)
        settings = {"recipe": asdict(recipe)}
        if recipe.int8:
            # oneDNN's INT8 pass leaves e.g. conv2d_transpose weights int8 (onednn_weights).
            settings["float_weights"] = restore_float_weights(
                out_dir / files[0], out_dir / files[1]).to_dict()
        return Artifact(folder=out_dir, target=profile.name, backend=self.backend,
                        precision=profile.precision, files=files, settings=settings)

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> PaddlePredictor:
        available = self.availability(profile)
        if not available.can_run:
            raise QuantkitError(f"cannot run {artifact.target} here: {available.reason}")
        recipe = OneDnnRecipe.from_record(artifact.settings.get("recipe") or {},
                                          str(artifact.folder / ARTIFACT_RECORD))
        recipe = replace(recipe, threads=profile.threads)  # open_artifact(threads=...) wins
        return open_cpu_predictor(artifact.folder / PADDLE_MODEL_FILE,
                                  artifact.folder / PADDLE_PARAMS_FILE, recipe)
