"""The smoke check of a bundle: one seeded input batch, the outputs it gave, and the rule
that says whether outputs computed elsewhere still match them.

The files are written without timestamps (`numpy.savez` stamps each zip member with the
current time), so the same arrays always give the same bytes and the same sha256.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.data.feeds import FeedSpec
from quantkit.packaging.manifest import Tolerance

INPUT_FILE = "input.npz"
OUTPUT_FILE = "output.npz"
SEED = 0
ROWS = 1
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip member can carry

# Same runtime and CPU give bit-identical outputs; these cover other CPUs and thread
# counts (summation order) for FP32, and other int8 kernels (VNNI vs AVX2 u8s8 vs ARM
# sdot, different requantisation rounding) for INT8, where one quantisation step of an
# output can move by a few percent of its range.
TOLERANCES = {
    "fp32": Tolerance(rtol=1e-4, atol_fraction=1e-4,
                      basis="fp32: float kernels differ between CPUs and thread counts only "
                            "in summation order (observed <= 1e-6 relative)"),
    "int8": Tolerance(rtol=0.0, atol_fraction=0.05,
                      basis="int8: int8 kernels differ between CPUs (VNNI, AVX2 u8s8, ARM) "
                            "in requantisation rounding; 5% of the outputs' range allows a "
                            "few quantisation steps, a broken model misses it by far"),
}


def tolerance_for(precision: str) -> Tolerance:
    if precision not in TOLERANCES:
        raise QuantkitError(f"no smoke tolerance for precision {precision!r} (known: "
                            f"{', '.join(TOLERANCES)})")
    return TOLERANCES[precision]


def smoke_inputs(feeds: Sequence[FeedSpec], input_shapes: Mapping[str, Sequence[int]],
                 seed: int = SEED, rows: int = ROWS) -> dict[str, np.ndarray]:
    """Seeded inputs of `rows` rows per feed; a profile's `input_shapes` fill dynamic dims."""
    from quantkit.data.synthetic import synthetic_inputs

    return synthetic_inputs(tuple(feeds), rows, seed, shapes=input_shapes)


def output_arrays(outputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Predictor outputs (fetch order) under stable names: output_0, output_1, ..."""
    return {f"output_{index}": np.asarray(array) for index, array in enumerate(outputs)}


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """`numpy.savez` without timestamps: same arrays, same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]),
                                      allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            member.external_attr = 0o644 << 16
            archive.writestr(member, buffer.getvalue())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise QuantkitError(f"{path}: not a readable .npz ({exc})") from None


@dataclass(frozen=True)
class Comparison:
    matches: bool
    max_abs_diff: float
    allowed: float  # the atol the rule gave for these outputs
    detail: str


def compare(got: Sequence[np.ndarray], recorded: Mapping[str, np.ndarray],
            tolerance: Tolerance) -> Comparison:
    """Outputs computed now against the recorded ones, by the bundle's tolerance rule."""
    expected = [recorded[f"output_{index}"] for index in range(len(recorded))
                if f"output_{index}" in recorded]
    if len(expected) != len(recorded) or len(got) != len(expected):
        return Comparison(False, float("inf"), 0.0,
                          f"the model gave {len(got)} output(s), {len(recorded)} recorded")
    worst, allowed, problems = 0.0, 0.0, []
    for index, (now, then) in enumerate(zip(got, expected)):
        now, then = np.asarray(now, dtype=np.float64), np.asarray(then, dtype=np.float64)
        if now.shape != then.shape:
            problems.append(f"output_{index} has shape {list(now.shape)}, recorded "
                            f"{list(then.shape)}")
            worst = float("inf")
            continue
        spread = float(then.max() - then.min()) if then.size else 0.0
        atol = tolerance.atol_fraction * (spread if spread > 0 else
                                          max(float(np.abs(then).max(initial=0.0)), 1.0))
        diff = np.abs(now - then)
        largest = float(diff.max(initial=0.0)) if np.isfinite(now).all() else float("inf")
        worst, allowed = max(worst, largest), max(allowed, atol)
        if not np.all(diff <= atol + tolerance.rtol * np.abs(then)):
            problems.append(f"output_{index} max abs diff {largest:.3g} > allowed "
                            f"{atol:.3g} (+ rtol {tolerance.rtol:g})")
    if problems:
        return Comparison(False, worst, allowed, "; ".join(problems))
    return Comparison(True, worst, allowed,
                      f"max abs diff {worst:.3g} within {allowed:.3g} "
                      f"(atol_fraction {tolerance.atol_fraction:g} of the output range, "
                      f"rtol {tolerance.rtol:g})")
