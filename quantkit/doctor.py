"""`quantkit doctor`: what this machine offers, in one place (versions, ISA, GPU)."""
from __future__ import annotations

import platform
import sys

from quantkit.machine import cpu_isa, library_versions

# Shown only when installed here; paddlelite lives in the lite side env (listed below).
_OPTIONAL = ("paddlepaddle-gpu", "paddlelite", "onnxruntime-gpu", "openvino", "nncf", "ray")


def _int8_targets():
    """The shipped INT8 profiles and what this CPU gives each (their int8 kernels)."""
    from quantkit.targets.convert import target_statuses

    return [status for status in target_statuses() if status.profile.precision == "int8"]


def environment_report() -> dict[str, str]:
    from quantkit.targets.gpu import gpu_status

    report = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name, version in library_versions(include_missing=True).items():
        if version or name not in _OPTIONAL:
            report[name] = version or "not installed"
    isa = cpu_isa()
    report["cpu"] = isa.summary
    report["cpu isa"] = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in (
        ("AVX2", "avx2" in isa.flags), ("AVX-512", isa.avx512), ("VNNI", isa.vnni),
        ("AMX", isa.amx)))
    report["cpu int8 path"] = ("VNNI/AMX (int8 dot products without int16 sums)" if isa.vnni else
                               "AVX2 u8s8 without VNNI (int16 intermediate sums)"
                               if "avx2" in isa.flags else "no AVX2: int8 kernels unavailable")
    from quantkit import sideenv

    for env in sideenv.describe():
        report[f"side env {env['name']}"] = (f"ready at {env['path']}" if env["ready"] else
                                            f"missing: 'quantkit env install {env['name']}' "
                                            f"({env['why']})")
    for status in _int8_targets():
        report[f"{status.profile.name}"] = ("runs here: " if status.availability.can_run
                                            else "not here: ") + status.availability.reason
    try:
        gpu = gpu_status()
        report["gpu"] = gpu.nvidia_smi or "none visible"
        report["tensorrt target"] = gpu.reason
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        report["gpu"] = f"unknown ({exc})"
    try:
        import onnxruntime

        report["onnxruntime providers"] = ", ".join(onnxruntime.get_available_providers())
    except Exception as exc:  # noqa: BLE001
        report["onnxruntime providers"] = f"unavailable ({exc})"
    return report
