"""Two packagings of the same inputs give equal manifests, except what they document.

From the tiny FP32 model (tests/data/paddle3), the same calibration data and settings:
calibrate twice into two folders, convert each calibrated model independently for three
INT8 targets, package every conversion, and compare the two bundles of each target.

What varies, and where it is handled:
- `.nb` offsets 11-17: Paddle Lite opt writes its version into a 16-byte field from a
  shorter string and leaves the rest uninitialised. Documented per bundle in
  `non_deterministic`; `sha256_stable` zeroes those bytes.
- `created_utc` (and, between machines only, `packaged_on`, the smoke outputs and a Lite
  artifact.json's `settings.opt_path`).
- Not in bundles but found on the way: Paddle's save wrote the *caller's* Python stack
  into the calibrated `.pdmodel` (`op_callstack` of the feed/fetch ops: file, line and
  source text of every frame, venv paths included) and named one variable from Paddle's
  process-wide unique_name counter (`save_infer_model/scale_0.tmp_N`, N growing with each
  save in a process). quantkit now strips the call stacks and saves in a fresh
  unique_name scope, so the two calibrations below, from two call sites in one process,
  are byte-identical.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401  - before paddle: importing paddle first breaks gzip
from quantkit.packaging import Manifest, package, verify
from quantkit.packaging.bundle import nb_masked_range

DATA = Path(__file__).parent / "data" / "paddle3"
INT8_TARGETS = ("intel-onednn-int8", "onnxruntime-int8", "arm-lite-int8")


def _calibrate(out: Path) -> Path:
    """One calibration of the tiny model (abs_max on its four reference images)."""
    import paddle

    import quantkit as slim

    with np.load(DATA / "reference.npz") as data:
        images = data["images"]
    paddle.enable_static()
    slim.quant.quant_post_static(
        paddle.static.Executor(paddle.CPUPlace()), str(DATA), str(out),
        batch_generator=lambda: iter([images[:2], images[2:]]),
        model_filename="model.pdmodel", params_filename="model.pdiparams",
        batch_size=2, batch_nums=2, algo="abs_max", onnx_format=True,
        scope=paddle.static.Scope())
    return out


def _calibrate_from_elsewhere(out: Path) -> Path:
    """The same calibration from another call site (another Python stack)."""
    return [_calibrate(folder) for folder in (out,)][0]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("calibrated")
    return _calibrate(root / "first"), _calibrate_from_elsewhere(root / "second")


@pytest.fixture(scope="module")
def bundle_pairs(calibrated, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """target -> (bundle of the first calibration's conversion, of the second's)."""
    from quantkit.targets.convert import convert

    root = tmp_path_factory.mktemp("repro")
    pairs = {}
    for target in INT8_TARGETS:
        folders = []
        for index, model in enumerate(calibrated):
            artifact = convert(model, target, root / f"conv{index}" / target)
            folders.append(package(artifact.folder, root / f"dist{index}"))
        pairs[target] = tuple(folders)
    return pairs


def _scales(model_dir: Path) -> dict[str, np.ndarray]:
    """Every persistable tensor of a calibrated model whose name says it is a scale."""
    import paddle

    paddle.enable_static()
    scope, executor = paddle.static.Scope(), paddle.static.Executor(paddle.CPUPlace())
    with paddle.static.scope_guard(scope):
        program, _, _ = paddle.static.load_inference_model(
            str(model_dir / "model"), executor)
        return {var.name: np.array(scope.find_var(var.name).get_tensor())
                for var in program.list_vars()
                if var.persistable and "scale" in var.name and scope.find_var(var.name)}


def test_two_calibrations_give_identical_scales_and_programs(calibrated):
    first, second = calibrated
    assert (first / "model.pdiparams").read_bytes() == (second / "model.pdiparams").read_bytes()
    scales_a, scales_b = _scales(first), _scales(second)
    assert len(scales_a) >= 4, sorted(scales_a)  # weights' and activations' scales
    assert sorted(scales_a) == sorted(scales_b)
    for name, value in scales_a.items():
        np.testing.assert_array_equal(value, scales_b[name], err_msg=name)
    program = (first / "model.pdmodel").read_bytes()
    assert program == (second / "model.pdmodel").read_bytes()
    assert b'File "' not in program and b"site-packages" not in program  # no call stacks


def _differences(a, b, where: str = "") -> list[str]:
    """JSON pointers at which two parsed JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            escaped = key.replace("~", "~0").replace("/", "~1")
            if key not in a or key not in b:
                found.append(f"{where}/{escaped}")
            else:
                found += _differences(a[key], b[key], f"{where}/{escaped}")
        return found
    return [] if a == b else [where]


@pytest.mark.parametrize("target", INT8_TARGETS)
def test_manifests_differ_only_in_documented_fields(target, bundle_pairs):
    first, second = (Manifest.load(folder / "manifest.json")
                     for folder in bundle_pairs[target])
    assert first.non_deterministic == second.non_deterministic
    documented = {item.pointer for item in first.non_deterministic
                  if item.scope == "every-packaging"}
    differing = _differences(first.to_dict(), second.to_dict())
    undocumented = [where for where in differing
                    if not any(where == p or where.startswith(p + "/") for p in documented)]
    assert not undocumented, f"{target}: differs at {undocumented}, not in non_deterministic"
    # The same statement through the public helper (one machine: smoke outputs must match).
    assert first.comparable(between_machines=False) == second.comparable(between_machines=False)
    for folder in bundle_pairs[target]:
        assert verify(folder).ok


@pytest.mark.parametrize("target", ("intel-onednn-int8", "onnxruntime-int8"))
def test_paddle_and_onnx_bundles_are_byte_identical_except_the_manifest(target, bundle_pairs):
    first, second = bundle_pairs[target]
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second).as_posix()
                           for p in second.rglob("*") if p.is_file())
    assert "smoke/output.npz" in names  # this machine runs both: outputs recorded, equal
    for name in names:
        if name != "manifest.json":
            assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_nb_bytes_differ_only_in_the_masked_version_field(bundle_pairs):
    first, second = bundle_pairs["arm-lite-int8"]
    a = (first / "model" / "model.nb").read_bytes()
    b = (second / "model" / "model.nb").read_bytes()
    assert len(a) == len(b)
    start, end = nb_masked_range(a)
    assert (start, end) == (11, 18) == nb_masked_range(b)
    changed = [i for i in range(len(a)) if a[i] != b[i]]
    assert all(start <= i < end for i in changed), changed
    entries = [Manifest.load(folder / "manifest.json").files["model/model.nb"]
               for folder in (first, second)]
    assert entries[0].sha256_stable == entries[1].sha256_stable
    assert (entries[0].sha256 == entries[1].sha256) == (not changed)


def test_lite_artifact_records_are_identical_on_one_machine(bundle_pairs):
    """opt_command is recorded with <model_dir>/<artifact> placeholders, not real paths."""
    folders = bundle_pairs["arm-lite-int8"]
    records = [(folder / "model" / "artifact.json").read_bytes() for folder in folders]
    assert records[0] == records[1]
    command = json.loads(records[0])["settings"]["opt_command"]
    assert command[0] == "paddle_lite_opt"
    assert any(arg.startswith("--optimize_out=<artifact>/") for arg in command)
    entries = [Manifest.load(folder / "manifest.json").files["model/artifact.json"]
               for folder in folders]
    assert entries[0].sha256 == entries[1].sha256
