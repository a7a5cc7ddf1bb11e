"""Facts about the machine a measurement or a conversion ran on: CPU, ISA, cores, versions.

One reader of /proc/cpuinfo (x86's "model name"/"flags" and ARM's "Model"/"Hardware"/
"Features") and one list of the libraries worth recording. Standard library only: the
benchmark runner ships this module to boards that have a runtime but not quantkit.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
from dataclasses import dataclass
from pathlib import Path

# What a results file, a bundle manifest and `quantkit doctor` report versions of.
LIBRARIES = ("quantkit", "paddlepaddle", "paddlepaddle-gpu", "paddlelite", "paddle2onnx",
             "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "ray", "numpy")

# ISA flags that decide int8 speed and numerics; the full list is long and says little more.
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp",
              "i8mm", "neon")
X86_ARCHES = ("x86_64", "amd64", "i686", "i386")


@dataclass(frozen=True)
class CpuIsa:
    """The instruction-set facts that decide how int8 kernels behave on a CPU."""

    arch: str
    flags: frozenset = frozenset()
    model: str = "unknown CPU"

    @property
    def is_x86(self) -> bool:
        return self.arch in X86_ARCHES

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def vnni(self) -> bool:
        """int8 dot products without int16 intermediates (VNNI, or AMX tiles)."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def amx(self) -> bool:
        return "amx_int8" in self.flags

    @property
    def u8s8_saturates(self) -> bool:
        """x86 u8 x s8 GEMM via vpmaddubsw sums pairs in int16 and can saturate."""
        return self.is_x86 and not self.vnni

    def describe(self) -> str:
        """The int8-relevant ISA level, e.g. "AVX2 without VNNI" or "AVX-512 VNNI"."""
        if not self.is_x86:
            dot = " with dot product" if "asimddp" in self.flags else ""
            return f"{self.arch}{dot}"
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

    def int8_flags(self) -> list:
        return sorted(flag for flag in INT8_FLAGS if flag in self.flags)


def parse_cpuinfo(text: str) -> tuple:
    """(CPU model, ISA flags) from /proc/cpuinfo text; ARM lists "Features"."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model or "unknown CPU", flags


@functools.lru_cache(maxsize=None)
def cpu_isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuIsa:
    """This host's ISA from /proc/cpuinfo (Linux); elsewhere no flags."""
    try:
        model, flags = parse_cpuinfo(Path(cpuinfo).read_text())
    except OSError:
        model, flags = platform.processor() or "unknown CPU", frozenset()
    return CpuIsa(platform.machine().lower(), flags, model)


def library_versions(names=LIBRARIES, include_missing: bool = False) -> dict:
    """Installed versions of `names` (missing ones as None when `include_missing`)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if include_missing:
                versions[name] = None
    return versions


def machine_facts() -> dict:
    """Where a measurement was taken: CPU, cores, OS, Python and runtime versions."""
    isa = cpu_isa()
    return {
        "hostname": platform.node(),
        "arch": isa.arch,
        "cpu_model": isa.model,
        "isa": isa.describe(),
        "isa_flags": isa.int8_flags(),
        "logical_cores": os.cpu_count() or 0,
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }
