"""Whether this machine can run the TensorRT targets: Paddle's CUDA build, GPUs, TensorRT."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuStatus:
    paddle_cuda: bool
    device_count: int
    tensorrt_version: str | None
    nvidia_smi: str | None

    @property
    def can_run_tensorrt(self) -> bool:
        return self.paddle_cuda and self.device_count > 0 and bool(self.tensorrt_version)

    @property
    def reason(self) -> str:
        if not self.paddle_cuda:
            return ("this paddlepaddle is a CPU build: the TensorRT target needs "
                    "paddlepaddle-gpu (e.g. 2.6.2 with CUDA 11.8/12) with TensorRT, on an "
                    "NVIDIA GPU")
        if self.device_count == 0:
            return "paddlepaddle-gpu is installed but no NVIDIA GPU is visible"
        if not self.tensorrt_version:
            return "paddlepaddle-gpu was built without TensorRT"
        return f"{self.device_count} GPU(s), TensorRT {self.tensorrt_version}"


def gpu_status() -> GpuStatus:
    import paddle

    cuda = paddle.device.is_compiled_with_cuda()
    count = paddle.device.cuda.device_count() if cuda else 0
    trt = None
    if cuda:
        from paddle import inference

        version = inference.get_trt_compile_version()
        trt = ".".join(map(str, version)) if any(version) else None
    smi = None
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        smi = result.stdout.strip() or None
    return GpuStatus(cuda, count, trt, smi)
