"""The int8 kernel families a test can exercise on this host, and running an artifact on one.

Hosts of our machine kind are AVX2-only or AVX-512 VNNI. oneDNN and ONNX Runtime pick
other int8 kernels on each, with other rounding, so a numeric bound checked on one host
only may fail on the other. On an AVX-512 host the tests therefore run the Paddle Inference
INT8 checks twice: with the host's own kernels and with oneDNN's AVX2 kernels
(`ONEDNN_MAX_CPU_ISA=AVX2`, read once when oneDNN starts: hence a child process). ONNX
Runtime's two x86 int8 GEMMs are chosen per session (`int8_precision` exact / fast), so
those run in-process.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from quantkit.machine import cpu_isa

NATIVE = "native"
AVX2 = "avx2"


def onednn_isas() -> list:
    """pytest params: the host's own oneDNN kernels, plus AVX2's where the host has more."""
    wider = "avx512f" in cpu_isa().flags
    return [pytest.param(NATIVE, id=f"onednn-{cpu_isa().describe().replace(' ', '-')}"),
            pytest.param(AVX2, id="onednn-AVX2", marks=() if wider else pytest.mark.skip(
                reason="this host has no ISA above AVX2: its native run is the AVX2 run"))]


def vnni_host() -> bool:
    """Whether this host's int8 kernels are the VNNI / AMX ones the INT8 bars were measured on."""
    return bool({"avx512_vnni", "amx_int8"} & set(cpu_isa().flags))


def unmeasured_openvino_int8() -> pytest.MarkDecorator:
    """OpenVINO INT8 bars were measured on VNNI only: ONEDNN_MAX_CPU_ISA does not steer
    OpenVINO's kernels (it crashed there), and no AVX2-only host was at hand."""
    return pytest.mark.xfail(not vnni_host(), reason="OpenVINO int8 without VNNI: not "
                             "measured (no such host here)")


def onednn_environment(isa: str) -> dict[str, str]:
    env = {**os.environ, "GLOG_minloglevel": "2"}
    if isa == AVX2:
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    return env


def run_artifact(folder: Path, feeds: dict[str, np.ndarray], isa: str = NATIVE,
                 extra_env: dict[str, str] | None = None, batch: int | None = None
                 ) -> tuple[list[np.ndarray], str]:
    """(outputs, stdout) of the artifact on `feeds`, in a child process with `isa`'s kernels;
    `batch` rows per call (default: all at once)."""
    work = Path(folder).parent / f".run-{isa}-{os.getpid()}"
    work.mkdir(exist_ok=True)
    np.savez(work / "feeds.npz", **feeds)
    script = textwrap.dedent(f"""
        import numpy as np
        from quantkit.targets.convert import open_artifact
        feeds = dict(np.load({str(work / 'feeds.npz')!r}))
        predictor = open_artifact({str(folder)!r})
        rows = len(next(iter(feeds.values())))
        step = {batch!r} or rows
        parts = [predictor.run({{k: v[i:i + step] for k, v in feeds.items()}})
                 for i in range(0, rows, step)]
        outputs = [np.concatenate(column) for column in zip(*parts)]
        np.savez({str(work / 'outputs.npz')!r}, *outputs)
    """)
    env = {**onednn_environment(isa), **(extra_env or {})}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(work / "outputs.npz") as saved:
        outputs = [saved[f"arr_{index}"] for index in range(len(saved.files))]
    return outputs, result.stdout
