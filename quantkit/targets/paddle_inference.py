"""Intel CPUs through Paddle Inference: oneDNN INT8, oneDNN FP32 and plain-CPU baselines.

A calibrated model run without the INT8 pass is 5-6x slower than FP32
(docs/measured-facts.md): the INT8 profile therefore always enables `enable_mkldnn_int8`,
which rewrites the quantize/dequantize pairs into oneDNN int8 kernels (`jit_uni_int8`,
`gemm_s8s8s32`). The recipe and the predictor wrapper live in `paddle_runtime` (the
paddle3 side environment runs them too); this module turns profiles into recipes and
artifacts. The TensorRT and Paddle 3 adapters build on it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from quantkit.errors import QuantkitError
from quantkit.files import ARTIFACT_RECORD, PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE
from quantkit.model_files import InferenceModel, check_inference_model
from quantkit.targets.artifact import Artifact
from quantkit.targets.base import Availability, copy_paddle_model
from quantkit.calibration.onednn_weights import restore_float_weights
from quantkit.targets.options import load_options, option
from quantkit.targets.paddle_runtime import (DEFAULT_INT8_OPS, ONEDNN_INT8_OPS, OneDnnRecipe,
                                             PaddlePredictor, create_predictor)
from quantkit.targets.profile import Backend, Precision, TargetProfile


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


def recipe_from_profile(profile: TargetProfile) -> OneDnnRecipe:
    """The recipe a paddle-inference profile asks for, refusing int8 without oneDNN."""
    options = load_options(OneDnnOptions, profile.options, profile.backend, profile.where)
    int8 = profile.precision == Precision.INT8
    if int8 and not options.onednn:
        raise QuantkitError(f"profile {profile.name}: int8 on Paddle Inference CPU needs "
                            "onednn = true")
    return OneDnnRecipe(onednn=options.onednn, int8=int8, threads=profile.threads,
                        int8_ops=options.int8_ops, ir_optim=options.ir_optim,
                        cache_capacity=options.cache_capacity,
                        delete_passes=options.delete_passes)


def open_paddle_predictor(model_file: Path, params_file: Path, configure) -> PaddlePredictor:
    """A predictor on a checked model; `configure(config)` applies the backend's recipe."""
    check_inference_model(model_file.parent, model_file.name, params_file.name)
    return create_predictor(model_file, params_file, configure)


def open_cpu_predictor(model_file: Path, params_file: Path,
                       recipe: OneDnnRecipe) -> PaddlePredictor:
    return open_paddle_predictor(model_file, params_file, recipe.apply)


class PaddleInferenceAdapter:
    backend = Backend.PADDLE_INFERENCE

    def availability(self, profile: TargetProfile) -> Availability:
        from quantkit.machine import cpu_isa

        recipe_from_profile(profile)  # a bad profile is refused, not "available"
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
        recipe = recipe_from_profile(profile)
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
