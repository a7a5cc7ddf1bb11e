"""The timed loop every backend is measured with, here and on remote boards.

Self-contained (standard library only) because it is copied, with `runner.py`, to hosts
that have a runtime (paddlelite, paddle, onnxruntime) but not quantkit.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

# What a timed sample covers: the predictor's run call with its host copies in and out,
# on inputs prepared before the clock starts (trtexec/FastDeploy's "runtime" mode plus
# the copies; no preprocessing, no data loading).
TIMING_MODE = "runtime: predictor.run(feeds) incl. host<->runtime copies; inputs prepared before timing"


def time_calls(call: Callable[[], object], warmup: int, iterations: int | None = None,
               duration_s: float | None = None,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds per call of `call`, after `warmup` untimed calls.

    Runs exactly `iterations` timed calls, or as many as fit in `duration_s` (at least
    one). Only the call sits between the two clock reads.
    """
    if iterations is None and duration_s is None:
        raise ValueError("give iterations or duration_s")
    if iterations is not None and iterations < 1:
        raise ValueError(f"iterations must be >= 1 (got {iterations})")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"duration_s must be > 0 (got {duration_s})")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 (got {warmup})")
    for _ in range(warmup):
        call()
    samples: list[float] = []
    if iterations is not None:
        for _ in range(iterations):
            start = clock()
            call()
            samples.append(clock() - start)
        return samples
    deadline = clock() + duration_s
    while True:
        start = clock()
        call()
        end = clock()
        samples.append(end - start)
        if end >= deadline:
            return samples


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (0 where the OS does not say).

    Linux: VmHWM of /proc/self/status, which starts afresh at exec. getrusage's ru_maxrss
    survives fork+exec, so a runner started by a 1 GB parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB
