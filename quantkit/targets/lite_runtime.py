"""The one Paddle Lite predictor: a `.nb` through `paddlelite.lite`, numpy in and out.

Used wherever paddlelite is importable: in the `lite` side environment (the benchmark
runner and the predictor worker, quantkit.targets.side_runtime), on boards that have only
the paddlelite wheel (the runner kit ships this module there), and by the adapter on an
ARM board, so `threads` means the same everywhere. numpy and paddlelite only, and
quantkit.errors (shipped with it).

Paddle Lite aborts the whole process (SIGABRT) on a corrupt `.nb`. Where a crash would
take others down with it (packaging, verify, serve), `open_lite(..., probe=True)` first
loads the file in a child process and turns a crash there into a one-line error.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from quantkit.errors import QuantkitError

PROBE_TIMEOUT_S = 120.0
_PROBED: set = set()  # (path, size, mtime) of files a child process loaded fine


class LiteLoadError(QuantkitError):
    """A .nb that Paddle Lite cannot load (message names the file and what to do)."""


class LitePredictor:
    """A `paddlelite.lite` light predictor on a `.nb`, returning copies of its outputs."""

    def __init__(self, predictor, input_dtypes: Mapping[str, str]) -> None:
        self._predictor = predictor
        self._dtypes = dict(input_dtypes)
        self.input_names: Sequence[str] = tuple(predictor.get_input_names())

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self.input_names:
            if name not in feeds:
                raise QuantkitError(f"missing input '{name}' (the model's inputs: "
                                    f"{', '.join(self.input_names)})")
            array = np.ascontiguousarray(feeds[name], dtype=self._dtypes.get(name, "float32"))
            self._predictor.get_input_by_name(name).from_numpy(array)
        self._predictor.run()
        # Copy: the output tensors' memory is reused by the next run.
        return [np.array(self._predictor.get_output_by_name(name).numpy(), copy=True)
                for name in self._predictor.get_output_names()]


def open_lite(nb: Path, threads: int | None, input_dtypes: Mapping[str, str],
              probe: bool = False) -> LitePredictor:
    """A predictor on `nb` with `threads` (where the Lite build can set them)."""
    nb = Path(nb)
    if not nb.is_file() or nb.stat().st_size == 0:  # Lite aborts on a missing model
        raise LiteLoadError(f"model file missing or empty: {nb} (convert the model again)")
    if probe:
        probe_load(nb)
    from paddlelite.lite import MobileConfig, create_paddle_predictor

    config = MobileConfig()
    config.set_model_from_file(str(nb))
    if threads and hasattr(config, "set_threads"):  # ARM builds; x86 builds lack it
        config.set_threads(int(threads))
    if hasattr(config, "set_power_mode"):
        from paddlelite.lite import PowerMode

        config.set_power_mode(PowerMode.LITE_POWER_HIGH)
    return LitePredictor(create_paddle_predictor(config), input_dtypes)


def probe_load(nb: Path) -> None:
    """Load `nb` in a child process first: a corrupt file aborts the child, not us."""
    stat = nb.stat()
    key = (str(nb.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _PROBED:
        return
    script = ("import sys\nfrom paddlelite.lite import MobileConfig, create_paddle_predictor\n"
              "c = MobileConfig(); c.set_model_from_file(sys.argv[1])\n"
              "create_paddle_predictor(c)\n")
    try:
        result = subprocess.run([sys.executable, "-c", script, str(nb)], capture_output=True,
                                text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LiteLoadError(f"Paddle Lite did not finish loading {nb} within "
                            f"{PROBE_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        if result.returncode < 0:
            try:
                how = f"crashed ({signal.Signals(-result.returncode).name})"
            except ValueError:
                how = f"crashed (signal {-result.returncode})"
        else:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            how = f"failed: {lines[-1].strip()}" if lines else "failed"
        raise LiteLoadError(f"Paddle Lite cannot load {nb}: it {how}; the .nb is corrupt or "
                            "was made by another Paddle Lite version: convert the model again")
    _PROBED.add(key)
