"""NVIDIA GPUs through Paddle Inference + TensorRT, kept as a plain serialisable recipe.

CPU builds of Paddle raise on `enable_tensorrt_engine` ("compile with TENSORRT"), so the
settings live in `TensorRtRecipe` (printable, saved in the artifact) and are applied to a
`paddle.inference.Config` only where CUDA and TensorRT exist.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE
from quantkit.model_files import InferenceModel
from quantkit.targets.artifact import Artifact
from quantkit.targets.base import Availability, copy_paddle_model
from quantkit.targets.options import load_options, option
from quantkit.targets.paddle_inference import open_paddle_predictor
from quantkit.targets.paddle_runtime import PaddlePredictor
from quantkit.targets.profile import Backend, Precision, TargetProfile

SHAPE_RANGE_FILE = "shape_range_info.pbtxt"
ENGINE_CACHE_DIR = "trt_engine_cache"


@dataclass(frozen=True)
class TensorRtOptions:
    """The `[options]` of a tensorrt profile."""

    workspace_size: int = option(1 << 30, min=1 << 20, help="TensorRT workspace bytes")
    min_subgraph_size: int = option(3, min=1, help="smallest subgraph handed to TensorRT")
    max_batch_size: Optional[int] = option(None, min=1, max=65536,
                                           help="largest batch (default: the profile's)")
    use_static: bool = option(True, help="serialise engines into the cache, reuse them")
    gpu_memory_mb: int = option(256, min=1, help="initial GPU memory pool (MB)")
    device_id: int = option(0, min=0, max=63, help="CUDA device")
    collect_shapes: bool = option(False, help="collect dynamic shape ranges at first run")
    use_cuda_graph: bool = option(False, help="capture CUDA graphs")


@dataclass(frozen=True)
class TensorRtRecipe:
    """Everything `enable_tensorrt_engine` and its companions need, as data."""

    precision: str  # "int8" | "fp32"
    use_calib_mode: bool  # True: TensorRT calibrates an FP32 model at run time
    workspace_size: int = 1 << 30
    max_batch_size: int = 1
    min_subgraph_size: int = 3
    use_static: bool = True  # serialise engines into the cache dir, reuse across runs
    use_cuda_graph: bool = False
    gpu_memory_mb: int = 256
    device_id: int = 0
    # feed name -> shape, for dynamic shapes given in the profile
    min_shapes: dict = field(default_factory=dict)
    opt_shapes: dict = field(default_factory=dict)
    max_shapes: dict = field(default_factory=dict)
    # collect shapes with collect_shape_range_info, then enable_tuned_tensorrt_dynamic_shape
    collect_shapes: bool = False

    @classmethod
    def for_model(cls, profile: TargetProfile, quantized: bool) -> "TensorRtRecipe":
        options = load_options(TensorRtOptions, profile.options, profile.backend,
                               profile.where)
        ranges = profile.dynamic_shapes
        return cls(
            precision=str(profile.precision),
            # A calibrated (QDQ) model carries its scales: TensorRT must not recalibrate.
            use_calib_mode=profile.precision == Precision.INT8 and not quantized,
            workspace_size=options.workspace_size,
            max_batch_size=options.max_batch_size or max(profile.batch_sizes),
            min_subgraph_size=options.min_subgraph_size,
            use_static=options.use_static,
            use_cuda_graph=options.use_cuda_graph,
            gpu_memory_mb=options.gpu_memory_mb,
            device_id=options.device_id,
            min_shapes={k: list(r.min) for k, r in ranges.items()},
            opt_shapes={k: list(r.opt) for k, r in ranges.items()},
            max_shapes={k: list(r.max) for k, r in ranges.items()},
            collect_shapes=options.collect_shapes and not ranges,
        )

    def apply(self, config, artifact_dir: Path, inference_module=None) -> None:
        """Configure `config` (a `paddle.inference.Config`) for TensorRT on the GPU."""
        if inference_module is None:
            from paddle import inference as inference_module
        precision = inference_module.PrecisionType
        config.enable_use_gpu(self.gpu_memory_mb, self.device_id)
        config.set_optim_cache_dir(str(artifact_dir / ENGINE_CACHE_DIR))
        config.enable_tensorrt_engine(
            workspace_size=self.workspace_size,
            max_batch_size=self.max_batch_size,
            min_subgraph_size=self.min_subgraph_size,
            precision_mode=precision.Int8 if self.precision == "int8" else precision.Float32,
            use_static=self.use_static,
            use_calib_mode=self.use_calib_mode,
            use_cuda_graph=self.use_cuda_graph)
        if self.min_shapes:
            config.set_trt_dynamic_shape_info(self.min_shapes, self.max_shapes,
                                              self.opt_shapes)
        elif self.collect_shapes:
            shape_file = artifact_dir / SHAPE_RANGE_FILE
            if not shape_file.is_file():
                raise QuantkitError(f"{shape_file} missing: run collect_shape_range first "
                                    "(quantkit.targets.tensorrt.collect_shape_range)")
            config.enable_tuned_tensorrt_dynamic_shape(str(shape_file), True)

    def to_dict(self) -> dict:
        return asdict(self)


def collect_shape_range(artifact: Artifact, recipe: TensorRtRecipe,
                        sample_feeds: list[dict[str, np.ndarray]]) -> Path:
    """Run the model on the GPU without TensorRT to record each tensor's shape range."""
    from paddle import inference

    config = inference.Config(str(artifact.folder / PADDLE_MODEL_FILE),
                              str(artifact.folder / PADDLE_PARAMS_FILE))
    config.enable_use_gpu(recipe.gpu_memory_mb, recipe.device_id)
    shape_file = artifact.folder / SHAPE_RANGE_FILE
    config.collect_shape_range_info(str(shape_file))
    predictor = inference.create_predictor(config)
    for feeds in sample_feeds:
        for name in predictor.get_input_names():
            handle = predictor.get_input_handle(name)
            handle.reshape(feeds[name].shape)
            handle.copy_from_cpu(feeds[name])
        predictor.run()
    return shape_file


class TensorRtAdapter:
    backend = Backend.TENSORRT

    def availability(self, profile: TargetProfile) -> Availability:
        from quantkit.targets.gpu import gpu_status

        TensorRtRecipe.for_model(profile, quantized=True)  # a bad profile is refused here
        status = gpu_status()
        return Availability(status.can_run_tensorrt, status.reason)

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        recipe = TensorRtRecipe.for_model(profile, quantized=model.quantized)
        files = copy_paddle_model(model, profile, out_dir)
        return Artifact(folder=out_dir, target=profile.name, backend=self.backend,
                        precision=profile.precision, files=files,
                        settings={"recipe": recipe.to_dict(),
                                  "note": "engines are built on the GPU host at first run "
                                          f"and cached in {ENGINE_CACHE_DIR}/"})

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> PaddlePredictor:
        available = self.availability(profile)
        if not available.can_run:
            raise QuantkitError(f"cannot run {artifact.target} here: {available.reason}")
        try:
            recipe = TensorRtRecipe(**artifact.settings["recipe"])
        except (KeyError, TypeError) as exc:
            raise QuantkitError(f"{artifact.folder}: artifact.json has no TensorRT recipe "
                                f"({exc}); convert the model again") from None
        return open_paddle_predictor(artifact.folder / PADDLE_MODEL_FILE,
                                     artifact.folder / PADDLE_PARAMS_FILE,
                                     lambda config: recipe.apply(config, artifact.folder))
