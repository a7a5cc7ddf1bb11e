"""What this machine offers the targets: CPU instruction sets, GPU and TensorRT presence."""
from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuIsa:
    """The instruction-set facts that decide how int8 kernels behave on this CPU."""

    arch: str
    flags: frozenset[str] = frozenset()
    model: str = "unknown CPU"

    @property
    def is_x86(self) -> bool:
        return self.arch in ("x86_64", "amd64", "i686", "i386")

    @property
    def vnni(self) -> bool:
        """int8 dot products without int16 intermediates (VNNI, or AMX tiles)."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def u8s8_saturates(self) -> bool:
        """x86 u8 x s8 GEMM via vpmaddubsw sums pairs in int16 and can saturate."""
        return self.is_x86 and not self.vnni

    def describe(self) -> str:
        """The int8-relevant ISA level, e.g. "AVX2 without VNNI"."""
        if not self.is_x86:
            return self.arch
        for flag, name in (("amx_int8", "AMX"), ("avx512_vnni", "AVX-512 VNNI"),
                           ("avx_vnni", "AVX-VNNI")):
            if flag in self.flags:
                return name
        widest = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                                ("sse4_1", "SSE4.1")) if flag in self.flags),
                      "x86-64")
        return f"{widest} without VNNI"

    @property
    def summary(self) -> str:
        return f"{self.model} ({self.describe()})"


@functools.lru_cache(maxsize=None)
def cpu_isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuIsa:
    """This host's ISA from /proc/cpuinfo (Linux; ARM lists "Features"); else no flags."""
    model, flags = "unknown CPU", frozenset()
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return CpuIsa(platform.machine().lower(), flags, model)


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
