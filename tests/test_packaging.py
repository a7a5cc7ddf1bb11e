"""Release bundles: package, verify (folder and .tar.gz), refuse damage, load, README.

Built on the tiny Paddle 3 CNN in tests/data/paddle3, converted for real (seconds): every
test packages or damages a copy of real bundles, so what is checked is what ships.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401  - before paddle: importing paddle first breaks gzip
from quantkit.errors import QuantkitError
from quantkit.packaging import (Manifest, load_bundle, open_bundle_predictor, package,
                                verify)
from quantkit.packaging.archive import ARCHIVE_MTIME, write_archive
from quantkit.packaging.smoke import read_npz, write_npz
from accuracies import top1_accuracy

DATA = Path(__file__).parent / "data" / "paddle3"
MODEL, PARAMS = "model.pdmodel", "model.pdiparams"
RUNNABLE = ("intel-cpu-fp32", "onnxruntime-fp32", "x86-lite-fp32")
FP32_TARGETS = (*RUNNABLE, "arm-lite-fp32", "nvidia-trt-fp32")
# Every file of each bundle kind: flipping one byte of any of them must fail verify.
BUNDLE_FILES = {
    "intel-cpu-fp32": ("README.md", "model/artifact.json", "model/model.pdiparams",
                       "model/model.pdmodel", "model/profile.json", "smoke/input.npz",
                       "smoke/output.npz"),
    "onnxruntime-fp32": ("README.md", "model/artifact.json", "model/model.onnx",
                         "model/profile.json", "smoke/input.npz", "smoke/output.npz"),
    "x86-lite-fp32": ("README.md", "model/artifact.json", "model/model.nb",
                      "model/profile.json", "smoke/input.npz", "smoke/output.npz"),
    "arm-lite-fp32": ("README.md", "model/artifact.json", "model/model.nb",
                      "model/profile.json", "smoke/input.npz"),
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """The FP32 model converted for each target (artifact folders, as 'quantkit convert')."""
    from quantkit.targets.convert import convert

    root = tmp_path_factory.mktemp("artifacts")
    return {target: convert(DATA, target, root / target, model_filename=MODEL,
                            params_filename=PARAMS).folder for target in FP32_TARGETS}


@pytest.fixture(scope="module")
def bundles(artifacts, tmp_path_factory) -> Path:
    """One bundle (folder + .tar.gz) per target; tests copy before they damage one."""
    out = tmp_path_factory.mktemp("dist")
    for folder in artifacts.values():
        package(folder, out)
    return out


def _copy(bundles: Path, target: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundles / target, tmp_path / target))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _rehash(folder: Path, name: str) -> None:
    """Update a file's manifest entry: a consistent bundle whose content changed."""
    import hashlib

    record = _manifest(folder)
    data = (folder / name).read_bytes()
    record["files"][name].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (folder / "manifest.json").write_text(json.dumps(record, indent=2))


# --- package + verify ------------------------------------------------------------------

@pytest.mark.parametrize("target", RUNNABLE)
def test_package_then_verify_passes_for_folder_and_archive(target, bundles):
    folder, archive = bundles / target, bundles / f"{target}.tar.gz"
    manifest = Manifest.load(folder / "manifest.json")
    assert manifest.to_json() == (folder / "manifest.json").read_text()  # load/save round trip
    assert sorted(manifest.files) == sorted(BUNDLE_FILES[target])
    for report in (verify(folder), verify(archive)):
        assert report.ok and report.smoke_status == "passed", report.lines()
        assert report.files_checked == len(BUNDLE_FILES[target])
        assert report.max_abs_diff == 0.0  # same machine, same runtime: bit-identical
    assert manifest.target == target and manifest.smoke.output == "smoke/output.npz"
    assert manifest.source == {"kind": "artifact", "note": manifest.source["note"]}
    assert manifest.source_model is None and manifest.calibration is None
    assert manifest.benchmark is None and "no run record" in manifest.source["note"]
    for name in ("quantkit", "paddlepaddle", "paddlelite", "paddle2onnx", "onnxruntime",
                 "onnx", "numpy", "python"):
        assert manifest.versions[name], name
    assert manifest.packaged_on["arch"] and manifest.created_utc.endswith("+00:00")
    assert manifest.profile["name"] == target
    pointers = {item.pointer for item in manifest.non_deterministic}
    assert {"/created_utc", "/packaged_on"} <= pointers


def test_arm_bundle_verifies_checksums_and_skips_the_smoke_run(bundles):
    folder = bundles / "arm-lite-fp32"
    manifest = Manifest.load(folder / "manifest.json")
    assert manifest.smoke.output is None and "ARM device" in manifest.smoke.reason
    assert not (folder / "smoke" / "output.npz").exists()
    for report in (verify(folder), verify(bundles / "arm-lite-fp32.tar.gz")):
        assert report.ok and report.files_checked == len(BUNDLE_FILES["arm-lite-fp32"])
        assert report.smoke_status == "skipped"
        assert "ARM device" in report.smoke_detail
        assert "run 'quantkit verify' on the device" in report.smoke_detail


def test_nb_files_carry_a_stable_hash_that_masks_only_the_version_field(bundles):
    """Opt leaves bytes after its version string's NUL uninitialised (offsets 11-17)."""
    import hashlib

    folder = bundles / "arm-lite-fp32"
    manifest = Manifest.load(folder / "manifest.json")
    entry = manifest.files["model/model.nb"]
    data = bytearray((folder / "model" / "model.nb").read_bytes())
    assert data[2:11] == b"v2.13-rc\0"
    data[11:18] = bytes(7)
    assert entry.sha256_stable == hashlib.sha256(data).hexdigest() != entry.sha256
    assert "offsets 11-17" in entry.stable_rule
    nb_item = next(item for item in manifest.non_deterministic
                   if item.pointer == "/files/model~1model.nb/sha256")
    assert nb_item.scope == "every-packaging" and "uninitialised" in nb_item.reason


def test_verify_without_smoke_only_checks_files(bundles):
    report = verify(bundles / "intel-cpu-fp32", smoke=False)
    assert report.ok and report.smoke_status == "not run"


# --- damage ----------------------------------------------------------------------------

def _flip_cases():
    return [(target, name) for target, names in BUNDLE_FILES.items() for name in names]


@pytest.mark.parametrize("target,name", _flip_cases())
def test_flipping_one_byte_of_any_file_fails_naming_it(target, name, bundles, tmp_path):
    folder = _copy(bundles, target, tmp_path)
    path = folder / name
    data = bytearray(path.read_bytes())
    # For the .nb flip a byte its stable hash masks: verify must still use the real sha256.
    offset = 12 if name.endswith(".nb") else len(data) // 2
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    expected = _manifest(folder)["files"][name]["sha256"]
    with pytest.raises(QuantkitError) as caught:
        verify(folder)
    message = str(caught.value)
    assert f"{name}: sha256 " in message and f"expected {expected}" in message
    assert "(changed)" in message and message.count("expected") == 1  # only that file


def test_the_flip_cases_cover_every_file_of_every_bundle(bundles):
    for target, names in BUNDLE_FILES.items():
        assert sorted(_manifest(bundles / target)["files"]) == sorted(names), target


def test_truncated_file_fails_with_sizes(bundles, tmp_path):
    folder = _copy(bundles, "onnxruntime-fp32", tmp_path)
    path = folder / "model" / "model.onnx"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size // 2])
    with pytest.raises(QuantkitError, match=rf"model/model.onnx: size {size // 2} bytes, "
                                            rf"expected {size} \(truncated"):
        verify(folder)


def test_deleted_file_fails_naming_it(bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path)
    (folder / "model" / "model.pdiparams").unlink()
    with pytest.raises(QuantkitError, match="model/model.pdiparams: missing"):
        verify(folder)


@pytest.mark.parametrize("extra", ["model/notes.txt", "extra.bin", "smoke/more/x.npz"])
def test_extra_file_fails_naming_it(extra, bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path)
    (folder / extra).parent.mkdir(parents=True, exist_ok=True)
    (folder / extra).write_bytes(b"not packaged")
    with pytest.raises(QuantkitError, match=f"{re.escape(extra)}: extra file, not in "
                                            "manifest.json"):
        verify(folder)


def test_symbolic_link_in_a_bundle_is_refused(bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path)
    (folder / "model" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(QuantkitError, match="model/passwd: a symbolic link"):
        verify(folder)


def test_every_problem_is_named_at_once(bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path)
    (folder / "README.md").write_text("edited")
    (folder / "smoke" / "input.npz").unlink()
    (folder / "model" / "x").write_text("")
    with pytest.raises(QuantkitError) as caught:
        verify(folder)
    for expected in ("README.md: size", "smoke/input.npz: missing", "model/x: extra file"):
        assert expected in str(caught.value)


def test_damaged_archive_member_fails_naming_it(bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path / "src")
    (folder / "model" / "profile.json").write_text("{}")
    archive = write_archive(folder, tmp_path / "damaged.tar.gz")
    with pytest.raises(QuantkitError, match="model/profile.json.*holds 2 bytes, the manifest "
                                            "declares"):
        verify(archive)


# --- the manifest itself ---------------------------------------------------------------

def test_missing_manifest_is_refused(bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path)
    (folder / "manifest.json").unlink()
    with pytest.raises(QuantkitError, match=r"manifest.json not found: not a quantkit bundle"):
        verify(folder)


def test_malformed_manifest_json_is_refused(bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path)
    path = folder / "manifest.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(QuantkitError, match=r"manifest.json: not valid JSON \(line \d+"):
        verify(folder)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(schema="quantkit.bundle/0"), "field 'schema' is 'quantkit.bundle/0'"),
    (lambda m: m.pop("schema"), "field 'schema' is None"),
    (lambda m: m.pop("smoke"), "missing field 'smoke'"),
    (lambda m: m.update(signature="x"), "unknown field 'signature'"),
    (lambda m: m["files"]["model/model.pdmodel"].update(size="8874"),
     "field 'files.model/model.pdmodel.size' must be a non-negative integer"),
    (lambda m: m["files"]["README.md"].pop("sha256"), "missing field 'files.README.md.sha256'"),
    (lambda m: m["smoke"]["tolerance"].update(rtol=True),
     "field 'smoke.tolerance.rtol' must be a number"),
    (lambda m: m.update(non_deterministic=[{"pointer": "x", "scope": "always",
                                            "reason": ""}]),
     "field 'non_deterministic\\[0\\].pointer' must be a JSON pointer"),
    (lambda m: m["files"].update({"../up": m["files"]["README.md"]}),
     "field 'files' has a bad path '../up'"),
    (lambda m: m["smoke"].update(input="../x.npz"), "field 'smoke.input' names '../x.npz'"),
    (lambda m: m.update(target="other"), "field 'target' is 'other' but the model records"),
])
def test_manifest_with_a_bad_field_is_refused_naming_it(edit, message, bundles, tmp_path):
    folder = _copy(bundles, "intel-cpu-fp32", tmp_path)
    record = _manifest(folder)
    edit(record)
    (folder / "manifest.json").write_text(json.dumps(record))
    with pytest.raises(QuantkitError, match=f"manifest.json: {message}"):
        verify(folder)


def test_missing_bundle_path_and_wrong_file_are_refused(tmp_path):
    with pytest.raises(QuantkitError, match="bundle not found: .*nowhere"):
        verify(tmp_path / "nowhere")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(QuantkitError, match=r"x.zip is a file but not a .tar.gz"):
        verify(tmp_path / "x.zip")
    (tmp_path / "bad.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(QuantkitError, match="bad.tar.gz: not a readable .tar.gz"):
        verify(tmp_path / "bad.tar.gz")
    with pytest.raises(QuantkitError, match="bundle not found"):
        load_bundle(tmp_path / "nowhere")


# --- the smoke run ---------------------------------------------------------------------

@pytest.mark.parametrize("target", RUNNABLE)
def test_smoke_run_detects_a_changed_recorded_output(target, bundles, tmp_path):
    folder = _copy(bundles, target, tmp_path)
    output = folder / "smoke" / "output.npz"
    recorded = read_npz(output)
    logits = recorded["output_0"]
    spread = float(logits.max() - logits.min())
    write_npz(output, {"output_0": logits + np.float32(0.2 * spread)})  # > 5% of range
    _rehash(folder, "smoke/output.npz")
    report = verify(folder)
    assert not report.ok and report.smoke_status == "failed"
    assert report.max_abs_diff == pytest.approx(0.2 * spread, rel=1e-3)
    assert "output_0 max abs diff" in report.smoke_detail and report.lines()[-1] == "FAILED"
    # ...and a change far inside the tolerance still passes (the rule is not "identical").
    write_npz(output, {"output_0": logits + np.float32(1e-6 * spread)})
    _rehash(folder, "smoke/output.npz")
    assert verify(folder).smoke_status == "passed"


def test_smoke_files_carry_no_timestamps(tmp_path):
    """numpy.savez stamps members with the current time; the bundle's npz must not."""
    import zipfile

    arrays = {"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), np.int64)}
    write_npz(tmp_path / "x.npz", arrays)
    with zipfile.ZipFile(tmp_path / "x.npz") as archive:
        assert [(i.filename, i.date_time) for i in archive.infolist()] == [
            ("a.npy", (1980, 1, 1, 0, 0, 0)), ("b.npy", (1980, 1, 1, 0, 0, 0))]
    loaded = read_npz(tmp_path / "x.npz")
    assert sorted(loaded) == ["a", "b"]
    np.testing.assert_array_equal(loaded["a"], arrays["a"])


# --- run folders -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_folder(artifacts, tmp_path_factory) -> Path:
    """A run folder as 'quantkit run' writes it: run.json, results.json, artifacts/<target>.

    The run record comes from the pipeline's own writer; the INT8 artifact is calibrated
    and converted for real; the results are two measured records per target.
    """
    import paddle

    import quantkit as slim
    from quantkit.data.sources import load_dataset
    from quantkit.machine import machine_facts
    from quantkit.benchmark.results import Accuracy, BenchRecord, BenchResults
    from quantkit.calibration.config import CalibrationConfig
    from quantkit.model_files import check_inference_model
    from quantkit.pipeline import RunSettings, write_run_record
    from quantkit.targets.convert import convert

    run = tmp_path_factory.mktemp("run")
    model = check_inference_model(DATA, MODEL, PARAMS)
    with np.load(DATA / "reference.npz") as data:
        images = data["images"]
    np.savez(run / "calib.npz", image=images)
    calib = load_dataset(run / "calib.npz", model.feeds)
    settings = RunSettings(calibration=CalibrationConfig(algo="abs_max", batch_size=4,
                                                         batch_nums=1))
    targets = ["intel-cpu-fp32", "intel-onednn-int8"]
    write_run_record(run, model, settings, calib, targets)
    paddle.enable_static()
    slim.quant.quant_post_static(
        paddle.static.Executor(paddle.CPUPlace()), str(DATA), str(run / "calibrated"),
        batch_generator=lambda: iter([images]), model_filename=MODEL,
        params_filename=PARAMS, batch_nums=1, algo="abs_max", scope=paddle.static.Scope())
    convert(run / "calibrated", "intel-onednn-int8", run / "artifacts" / "intel-onednn-int8")
    shutil.copytree(artifacts["intel-cpu-fp32"], run / "artifacts" / "intel-cpu-fp32")
    records = [BenchRecord(target=target, backend="paddle-inference", precision=precision,
                           device="cpu", status="ok", batch_size=batch, threads=2,
                           latency_ms={"p50_ms": 0.125 * batch, "mean_ms": 0.25 * batch},
                           throughput_sps=4000.0 / batch, size_bytes=size,
                           accuracy=top1_accuracy(4, 0.75, 0.75, 0.0),
                           machine=machine_facts())
               for target, precision, size in (("intel-cpu-fp32", "fp32", 14390),
                                               ("intel-onednn-int8", "int8", 26467))
               for batch in (1, 64)]
    BenchResults(records=records, eval_set=calib.describe()).save(run / "results.json")
    return run


def test_run_folder_with_several_targets_needs_target(run_folder, tmp_path):
    with pytest.raises(QuantkitError, match=r"holds several targets \(intel-cpu-fp32, "
                                            r"intel-onednn-int8\): pick one with --target"):
        package(run_folder, tmp_path)
    with pytest.raises(QuantkitError, match="has no artifact for target 'arm-lite-int8'"):
        package(run_folder, tmp_path, target="arm-lite-int8")


def test_package_from_run_folder_records_provenance_and_numbers(run_folder, tmp_path):
    folder = package(run_folder, tmp_path, target="intel-onednn-int8")
    run = json.loads((run_folder / "run.json").read_text())
    manifest = Manifest.load(folder / "manifest.json")
    assert manifest.source["kind"] == "run"
    assert manifest.source_model == run["source_model"]
    assert manifest.source_model["files"]["model.pdmodel"]["sha256"]
    assert manifest.calibration == run["calibration"]
    assert manifest.calibration["algo"] == "abs_max"
    assert manifest.calibration["data"]["fingerprint"].startswith("sha256:")
    records = manifest.benchmark["records"]
    assert [(r["target"], r["batch_size"]) for r in records] == [("intel-onednn-int8", 1),
                                                                 ("intel-onednn-int8", 64)]
    assert all(r["machine"]["cpu_model"] for r in records)
    readme = (folder / "README.md").read_text()
    assert "| 64 | ok | 8.000 | 16.000 | 62.5 | top1 | 75.00% | 75.00% | 0.00 |" in readme
    assert "algo `abs_max`" in readme and manifest.calibration["data"]["fingerprint"] in readme
    assert verify(folder).ok and verify(tmp_path / "intel-onednn-int8.tar.gz").ok
    # An FP32 target of the same run is not made from the calibrated model: no calibration.
    fp32 = Manifest.load(package(run_folder, tmp_path, target="intel-cpu-fp32")
                         / "manifest.json")
    assert fp32.source_model == run["source_model"] and fp32.calibration is None
    assert "calibration is null: an fp32 target" in fp32.source["note"]
    assert [r["target"] for r in fp32.benchmark["records"]] == ["intel-cpu-fp32"] * 2


def test_package_refuses_to_overwrite_without_force(artifacts, tmp_path):
    package(artifacts["intel-cpu-fp32"], tmp_path)
    with pytest.raises(QuantkitError, match="exists: .*intel-cpu-fp32 "
                                            r"\(pass --force"):
        package(artifacts["intel-cpu-fp32"], tmp_path)
    (tmp_path / "intel-cpu-fp32" / "stale.txt").write_text("from before")
    folder = package(artifacts["intel-cpu-fp32"], tmp_path, force=True)
    assert not (folder / "stale.txt").exists() and verify(folder).ok
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging


def test_package_refuses_bad_sources(artifacts, tmp_path):
    with pytest.raises(QuantkitError, match="source not found"):
        package(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(QuantkitError, match="neither a run folder .* nor an artifact folder"):
        package(tmp_path, tmp_path / "out")
    with pytest.raises(QuantkitError, match="is an artifact of target 'intel-cpu-fp32', not "
                                            "'onnxruntime-fp32'"):
        package(artifacts["intel-cpu-fp32"], tmp_path / "out", target="onnxruntime-fp32")
    assert not (tmp_path / "out").exists()


# --- README ----------------------------------------------------------------------------

README_API = {
    "intel-cpu-fp32": ("inference.Config(\"model/model.pdmodel\"", "config.disable_mkldnn()",
                       "create_predictor(config)"),
    "onnxruntime-fp32": ("ort.SessionOptions()", "ort.InferenceSession(\"model/model.onnx\"",
                         "ORT_ENABLE_ALL"),
    "x86-lite-fp32": ("MobileConfig()", "config.set_model_from_file(\"model/model.nb\")",
                      "CreatePaddlePredictor<MobileConfig>(config)"),
    "arm-lite-fp32": ("config.set_threads(4)", "set_power_mode(LITE_POWER_HIGH)",
                      "CreatePaddlePredictor<MobileConfig>(config)"),
    "nvidia-trt-fp32": ("config.enable_tensorrt_engine(", "PrecisionType.Float32",
                        "config.enable_use_gpu("),
}
OTHER_APIS = ("MobileConfig", "InferenceSession", "enable_tensorrt_engine", "enable_mkldnn")


@pytest.mark.parametrize("target", sorted(README_API))
def test_readme_gives_the_loading_api_of_its_backend(target, bundles):
    readme = (bundles / target / "README.md").read_text()
    for snippet in README_API[target]:
        assert snippet in readme, snippet
    own = {"intel-cpu-fp32": "enable_mkldnn", "onnxruntime-fp32": "InferenceSession",
           "x86-lite-fp32": "MobileConfig", "arm-lite-fp32": "MobileConfig",
           "nvidia-trt-fp32": "enable_tensorrt_engine"}[target]
    for other in OTHER_APIS:
        if other != own and other not in " ".join(README_API[target]):
            assert other not in readme, f"{target} README mentions {other}"
    assert f"quantkit verify {target}.tar.gz" in readme
    assert "No measurements in this bundle" in readme


def _snippet_outputs(folder: Path, monkeypatch) -> list[np.ndarray]:
    """The outputs of the README's Python snippet, run as a user would: in this Python,
    or for a side-env runtime (Paddle Lite, Paddle 3) in that env's Python, without
    quantkit on its path."""
    from quantkit import sideenv
    from quantkit.targets.side_runtime import side_env_of

    loading = (folder / "README.md").read_text().split("## Load it")[1]
    snippet = re.search(r"```python\n(.*?)```", loading, re.S).group(1)
    side = side_env_of(_manifest(folder)["backend"])
    if side is None:
        monkeypatch.chdir(folder)
        scope: dict = {}
        exec(compile(snippet, f"{folder.name}/README.md", "exec"), scope)  # noqa: S102
        return scope["outputs"]
    out = folder.parent / f"{folder.name}-snippet.npz"
    code = snippet + f"\nnp.savez({str(out)!r}, *outputs)\n"
    done = subprocess.run([str(sideenv.require(side)), "-c", code], cwd=folder,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": os.environ["PATH"], "GLOG_minloglevel": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(out) as saved:
        return [saved[f"arr_{index}"] for index in range(len(saved.files))]


@pytest.mark.parametrize("target", RUNNABLE)
def test_readme_python_snippet_runs_and_matches_quantkit(target, bundles, monkeypatch):
    """The snippet a user copies really loads the bundle and gives quantkit's outputs."""
    folder = bundles / target
    outputs = _snippet_outputs(folder, monkeypatch)
    expected = open_bundle_predictor(load_bundle(folder)).run(
        {"image": np.zeros((1, 1, 28, 28), np.float32)})
    np.testing.assert_allclose(outputs[0], expected[0], rtol=0, atol=1e-5)


def test_paddle3_bundle_packages_verifies_and_its_snippet_runs(run_folder, tmp_path,
                                                               monkeypatch):
    """paddle3-onednn-int8 end to end: the bundle's smoke run goes through the Paddle 3
    worker, and the README's snippet (Paddle 3.3.1, legacy pipeline) gives its output."""
    from quantkit.targets.convert import convert

    run = Path(shutil.copytree(run_folder, tmp_path / "run"))
    convert(run / "calibrated", "paddle3-onednn-int8", run / "artifacts" / "paddle3-onednn-int8")
    folder = package(run, tmp_path / "dist", target="paddle3-onednn-int8")
    manifest = _manifest(folder)
    assert manifest["backend"] == "paddle3-inference"
    report = verify(folder)
    assert report.ok and report.smoke_status == "passed", report
    readme = (folder / "README.md").read_text()
    assert "config.enable_new_ir(False)" in readme and "paddlepaddle==3.3.1" in readme
    outputs = _snippet_outputs(folder, monkeypatch)
    expected = open_bundle_predictor(load_bundle(folder)).run(
        {"image": np.zeros((1, 1, 28, 28), np.float32)})
    np.testing.assert_allclose(outputs[0], expected[0], rtol=0, atol=1e-5)


def test_int8_readmes_carry_the_recipe(run_folder, tmp_path):
    folder = package(run_folder, tmp_path, target="intel-onednn-int8")
    readme = (folder / "README.md").read_text()
    assert "config.enable_mkldnn_int8({" in readme and "'fused_conv2d'" in readme


# --- archives --------------------------------------------------------------------------

def test_archive_of_the_same_folder_is_byte_identical(bundles, tmp_path):
    import os

    folder = _copy(bundles, "x86-lite-fp32", tmp_path / "a")
    first = write_archive(folder, tmp_path / "first.tar.gz").read_bytes()
    for path in folder.rglob("*"):  # new times and modes must not leak into the archive
        os.utime(path, (1.7e9, 1.7e9))
        path.chmod(0o700 if path.is_dir() else 0o600)
    second = write_archive(folder, tmp_path / "second.tar.gz").read_bytes()
    assert first == second
    assert (bundles / "x86-lite-fp32.tar.gz").read_bytes() == first  # package wrote the same
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    with tarfile.open(tmp_path / "first.tar.gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert members[0].name == "x86-lite-fp32" and members[0].isdir()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (ARCHIVE_MTIME, 0, 0, "", "")}


def _evil_archive(path: Path, name: str, kind: bytes = tarfile.REGTYPE) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    return path


@pytest.mark.parametrize("name,kind,why", [
    ("bundle/../../escaped.txt", tarfile.REGTYPE, "it leaves the bundle folder"),
    ("/tmp/absolute.txt", tarfile.REGTYPE, "absolute path"),
    ("bundle/model/link", tarfile.SYMTYPE, "a link"),
])
def test_archive_with_unsafe_members_is_refused(name, kind, why, tmp_path):
    archive = _evil_archive(tmp_path / "evil.tar.gz", name, kind)
    with pytest.raises(QuantkitError, match=f"refusing member '{re.escape(name)}': {why}"):
        verify(archive)
    assert not (tmp_path.parent / "escaped.txt").exists()


# --- loading for serving ---------------------------------------------------------------

def test_load_bundle_checks_then_opens_the_predictor(bundles, tmp_path):
    loaded = load_bundle(bundles / "onnxruntime-fp32.tar.gz", extract_to=tmp_path / "x")
    assert loaded.root == tmp_path / "x" / "onnxruntime-fp32"
    assert loaded.model_dir == loaded.root / "model"
    assert [(f.name, f.shape, f.dtype) for f in loaded.feeds] == [
        ("image", (-1, 1, 28, 28), "float32")]
    assert loaded.manifest.backend == "onnxruntime"
    predictor = open_bundle_predictor(loaded, threads=1)
    inputs = read_npz(loaded.root / "smoke" / "input.npz")
    recorded = read_npz(loaded.root / "smoke" / "output.npz")
    np.testing.assert_array_equal(predictor.run(inputs)[0], recorded["output_0"])
    assert verify(loaded.root).ok  # running it wrote nothing into the bundle
    (loaded.model_dir / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(QuantkitError, match="model/model.onnx: size"):
        load_bundle(loaded.root)


def test_open_bundle_predictor_refuses_a_target_this_machine_cannot_run(bundles):
    with pytest.raises(QuantkitError, match="needs an ARM device"):
        open_bundle_predictor(load_bundle(bundles / "arm-lite-fp32"))


# --- CLI -------------------------------------------------------------------------------

def test_cli_package_and_verify(artifacts, bundles, tmp_path):
    from click.testing import CliRunner

    from quantkit.packaging.cli_commands import package_command, verify_command

    runner = CliRunner()
    result = runner.invoke(package_command, [str(artifacts["x86-lite-fp32"]), "--out",
                                             str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "x86-lite-fp32.tar.gz" in result.output
    result = runner.invoke(verify_command, [str(tmp_path / "x86-lite-fp32.tar.gz")])
    assert result.exit_code == 0 and "smoke run: passed" in result.output
    result = runner.invoke(verify_command, ["--no-smoke", str(tmp_path / "x86-lite-fp32")])
    assert result.exit_code == 0 and "smoke run: not run" in result.output
    (tmp_path / "x86-lite-fp32" / "README.md").write_text("x")
    result = runner.invoke(verify_command, [str(tmp_path / "x86-lite-fp32")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bundle ") and "README.md" in lines[0]
    result = runner.invoke(package_command, [str(artifacts["x86-lite-fp32"]), "--out",
                                             str(tmp_path)])
    assert result.exit_code == 2 and "--force" in result.output
